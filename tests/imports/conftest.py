"""
History-import fixtures: the three export files of tests/imports/fixtures with their dates moved
so that the newest close is yesterday (the files keep real-looking dates; only the distance
between them matters), the products they name, and helpers to upload, map and run them.
"""

import csv
import datetime
import io
import re
from pathlib import Path

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from imports import parsing, presets, selectors, services
from imports.models import HistoryImport, MappingAction, MappingKind
from reflections.models import Outcome, Reason
from tests.factories import ProductFactory, ProductLineFactory, UserFactory

FIXTURES = Path(__file__).parent / "fixtures"
FILES = {
    "salesforce": "salesforce_opportunities.csv",
    "hubspot": "hubspot_deals.csv",
    "pipedrive": "pipedrive_deals.csv",
}
DATE_FORMAT = {"salesforce": "dmy", "hubspot": "iso", "pipedrive": "iso"}

# What the people who typed the fixtures' reasons meant (the admin's decisions).
MEANINGS = {
    (Outcome.LOST, "price too high"): "Price",
    (Outcome.LOST, "price - too high"): "Price",
    (Outcome.LOST, "too expensive"): "Price",
    (Outcome.LOST, "went with competitor"): "Lost to competitor",
    (Outcome.LOST, "no budget"): "Budget",
    (Outcome.LOST, ""): MappingAction.UNKNOWN,
    (Outcome.WON, ""): MappingAction.UNKNOWN,
    (Outcome.NO_DECISION, ""): MappingAction.UNKNOWN,
}

_SLASHED = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def latest_close(text: str, preset: str) -> datetime.date:
    """The newest closed date of the file's closed deals, read as the import reads it."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    columns = presets.columns_for(preset, header)
    stage, closed = header.index(columns["stage"]), header.index(columns["closed_date"])
    dates = [
        parsing.parse_date(row[closed], DATE_FORMAT[preset])
        for row in reader
        if row and parsing.parse_stage(row[stage]) != parsing.SKIP
    ]
    return max(d for d in dates if d)


def shift_dates(text: str, days: int) -> str:
    def slashed(m: re.Match) -> str:
        day = datetime.date(int(m[3]), int(m[2]), int(m[1])) + datetime.timedelta(days=days)
        return f"{day:%d/%m/%Y}"

    def iso(m: re.Match) -> str:
        day = datetime.date(int(m[1]), int(m[2]), int(m[3])) + datetime.timedelta(days=days)
        return f"{day:%Y-%m-%d}"

    return _ISO.sub(iso, _SLASHED.sub(slashed, text))


def export(preset: str, *, newest_close_days_ago: int = 1) -> str:
    """A fixture's text, its dates moved so that its newest close was that many days ago."""
    text = (FIXTURES / FILES[preset]).read_text(encoding="utf-8")
    target = timezone.localdate() - datetime.timedelta(days=newest_close_days_ago)
    return shift_dates(text, (target - latest_close(text, preset)).days)


def upload(text: str | bytes, name: str = "export.csv") -> SimpleUploadedFile:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="text/csv")


def create(admin, text, preset="salesforce", system="Salesforce", **kwargs) -> HistoryImport:
    options = kwargs.pop("options", {"date_format": DATE_FORMAT.get(preset, "dmy")})
    return services.history_import_create(
        actor=admin,
        uploaded_file=upload(text),
        system=system,
        preset=preset,
        options=options,
        **kwargs,
    )


def map_fixture_texts(admin, history_import: HistoryImport) -> int:
    """Map the texts the way MEANINGS says; the exact matches need nothing."""
    decisions = []
    for row in selectors.value_rows(history_import):
        if row.kind != MappingKind.REASON:
            continue
        meaning = MEANINGS.get((row.outcome, row.key))
        if meaning is None:
            continue
        if meaning == MappingAction.UNKNOWN:
            decisions.append(services.Decision(row.kind, row.outcome, row.key, meaning))
        else:
            reason = Reason.objects.get(outcome=row.outcome, label=meaning)
            decisions.append(
                services.Decision(row.kind, row.outcome, row.key, MappingAction.MAP, reason.pk)
            )
    return services.history_import_save_mappings(
        actor=admin, history_import=history_import, decisions=decisions
    )


def start(admin, history_import, capture) -> HistoryImport:
    """Start a checked import; the job it queues after the commit is run here, in-process."""
    with capture(execute=False) as callbacks:
        started = services.history_import_start(actor=admin, history_import=history_import)
    assert len(callbacks) == 1  # imports.tasks.run, queued after the commit
    assert started.status == "queued"
    return services.history_import_run(import_id=started.pk)


def check_and_run(admin, history_import, django_capture_on_commit_callbacks) -> HistoryImport:
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "checked", checked.errors
    return start(admin, checked, django_capture_on_commit_callbacks)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def frozen_today():
    """The clock stands still (a day boundary mid-test would move every window)."""
    with time_machine.travel(timezone.now(), tick=False):
        yield timezone.localdate()


@pytest.fixture
def products(defaults):
    analytics = ProductFactory(name="Analytics Suite", line=ProductLineFactory(name="Analytics"))
    connector = ProductFactory(name="Data Connector", line=ProductLineFactory(name="Integration"))
    return analytics, connector


@pytest.fixture
def sales_ops(db):
    """The default owner of deals whose owner matches nobody (Jordan left long ago)."""
    return UserFactory(email="sales.ops@example.com", full_name="Sam Sales-Ops")


@pytest.fixture
def world(frozen_today, products, admin_user, rep, teammate, sales_ops):
    """Everything a fixture file needs to import."""
    return admin_user


SF_HEADER = [
    "Opportunity ID",
    "Opportunity Name",
    "Account Name",
    "Website",
    "Contact: Email",
    "Product Name",
    "Owner Email",
    "Amount Currency",
    "Amount",
    "Stage",
    "Created Date",
    "Close Date",
    "Main Competitor(s)",
    "Win/Loss Reason",
]


def sf_row(n: int, *, closed_days_ago: int = 10, **values) -> dict:
    """A good Salesforce report row (deal n), with `values` by header overriding it."""
    today = timezone.localdate()
    closed = today - datetime.timedelta(days=closed_days_ago)
    row = {
        "Opportunity ID": f"006TEST{n:08d}",
        "Opportunity Name": f"Deal {n}",
        "Account Name": f"Customer {n % 50} Ltd",
        "Website": f"customer{n % 50}.example",
        "Contact: Email": f"buyer{n % 80}@customer{n % 50}.example",
        "Product Name": "Analytics Suite",
        "Owner Email": "riley@example.com",
        "Amount Currency": "GBP",
        "Amount": "1,000.00",
        "Stage": "Closed Lost",
        "Created Date": f"{closed - datetime.timedelta(days=40):%d/%m/%Y}",
        "Close Date": f"{closed:%d/%m/%Y}",
        "Main Competitor(s)": "Tableau" if n % 3 == 0 else "",
        "Win/Loss Reason": "Price",
    }
    row.update(values)
    return row


def salesforce_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SF_HEADER, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
