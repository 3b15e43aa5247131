"""Each preset's export imports end to end, and the presets read their documented headers."""

from decimal import Decimal

import pytest
from django.utils import timezone

from customers.models import Company, Contact
from imports import presets
from imports.models import HistoryImport, ImportedDeal
from opportunities.models import Competitor, Opportunity, StageChange
from reflections.models import Answer, Origin, QuestionKind, Reflection
from reflections.signals import reflection_submitted, reflections_imported
from tests.factories import CompanyFactory, ContactFactory

from .conftest import FILES, FIXTURES, check_and_run, create, export, map_fixture_texts

# Per preset: closed deals, open rows, companies and contacts the import creates (two companies
# and one contact exist before it), and the deal checked field by field.
EXPECTED = {
    "salesforce": {
        "deals": 16,
        "skipped": 2,
        "companies": 11,
        "contacts": 10,
        "deal": "0065g00000KZt1E",
        "amount": Decimal("18000.00"),
        "currency": "EUR",
        "title": "Litware - Analytics Suite",
        "won": ("0065g00000KZt1B", "Product fit"),
    },
    "hubspot": {
        "deals": 14,
        "skipped": 2,
        "companies": 10,
        "contacts": 9,
        "deal": "9518247305",
        "amount": Decimal("18000.00"),
        "currency": "EUR",
        "title": "Litware - Analytics",
        "won": ("9518247302", "Product fit"),  # from "Closed Won Reason"
    },
    "pipedrive": {
        "deals": 14,
        "skipped": 2,
        "companies": 10,
        "contacts": 9,
        "deal": "105",
        "amount": Decimal("18000.00"),
        "currency": "EUR",
        "title": "Litware analytics deal",
        "won": ("102", None),  # Pipedrive keeps no won reason: "(no reason given)", unknown
    },
}


@pytest.fixture
def existing_customers(db):
    northwind = CompanyFactory(name="Northwind Traders", domain="northwind.example")
    nancy = ContactFactory(
        company=northwind, full_name="Nancy Davolio", email="nancy.davolio@northwind.example"
    )
    coho = CompanyFactory(name="COHO WINERY", domain="")  # matched by name, any case
    return northwind, nancy, coho


@pytest.mark.parametrize("preset", ["salesforce", "hubspot", "pipedrive"])
def test_each_presets_export_imports_end_to_end(
    preset,
    world,
    rep,
    teammate,
    sales_ops,
    products,
    existing_customers,
    frozen_today,
    django_capture_on_commit_callbacks,
):
    admin = world
    northwind, nancy, coho = existing_customers
    analytics, _ = products
    submitted, imported_dates = [], []

    def on_submitted(sender, **kwargs):
        submitted.append(kwargs)

    def on_imported(sender, dates, **kwargs):
        imported_dates.append(set(dates))

    reflection_submitted.connect(on_submitted, dispatch_uid="test-import-submitted")
    reflections_imported.connect(on_imported, dispatch_uid="test-import-imported")
    try:
        history_import = create(admin, export(preset), preset=preset, default_owner=sales_ops)
        map_fixture_texts(admin, history_import)
        done = check_and_run(admin, history_import, django_capture_on_commit_callbacks)
    finally:
        reflection_submitted.disconnect(dispatch_uid="test-import-submitted")
        reflections_imported.disconnect(dispatch_uid="test-import-imported")

    expected = EXPECTED[preset]
    assert done.status == "done", done.errors
    assert (done.deals_created, done.rows_skipped, done.deals_existing) == (
        expected["deals"],
        expected["skipped"],
        0,
    )
    assert done.rows_done == done.rows_total == expected["deals"] + expected["skipped"]
    assert done.companies_created == expected["companies"]
    assert done.contacts_created == expected["contacts"]
    assert Opportunity.objects.count() == expected["deals"]
    assert not done.file, "the uploaded file is deleted once imported"

    # Companies: matched by domain, then by name; contacts by e-mail at the company.
    assert Company.objects.filter(name__iexact="northwind traders").count() == 1
    assert Company.objects.filter(name__iexact="coho winery").count() == 1
    northwind_deals = Opportunity.objects.filter(company=northwind)
    assert northwind_deals.exists()
    assert set(northwind_deals.values_list("contact", flat=True)) <= {nancy.pk}
    assert Opportunity.objects.filter(company=coho).count() == 1
    contoso = Company.objects.get(name="Contoso Ltd")
    assert contoso.domain == "contoso.example"
    assert contoso.created_by is None
    assert Contact.objects.filter(company=contoso).count() == 2

    # Owners by e-mail (or, where the export only names them, by full name), else the default.
    owners = {
        o.imported_from.external_id: o.owner_id
        for o in Opportunity.objects.select_related("imported_from")
    }
    jordans = [k for k, owner in owners.items() if owner == sales_ops.pk]
    assert len(jordans) == 2  # Jordan Former's two deals
    assert set(owners.values()) == {rep.pk, teammate.pk, sales_ops.pk}

    deal = Opportunity.objects.get(imported_from__external_id=expected["deal"])
    assert deal.title == expected["title"]
    assert (deal.amount, deal.currency) == (expected["amount"], expected["currency"])
    assert deal.stage == "lost"
    assert deal.owner == teammate
    assert deal.product == analytics
    assert deal.primary_competitor.name == "Power BI"
    assert deal.expected_close_date == deal.closed_date
    assert deal.closed_date < frozen_today
    assert deal.created_at.date() < deal.closed_date
    change = StageChange.objects.get(opportunity=deal)
    assert (change.from_stage, change.to_stage, change.changed_by) == ("", "lost", admin)

    # Honest provenance: imported, by the admin, with the reason or "unknown" and nothing else.
    reflection = Reflection.objects.get(opportunity=deal)
    assert reflection.origin == Origin.IMPORTED
    assert reflection.author == admin
    assert reflection.in_reports is True
    assert reflection.current is True
    assert reflection.closed_date == deal.closed_date
    assert reflection.prompt_set.outcome == "lost"
    answers = {a.question.kind: a for a in reflection.answers.select_related("question")}
    assert set(answers) == {QuestionKind.PRIMARY_REASON, QuestionKind.COMPETITOR}
    assert answers[QuestionKind.PRIMARY_REASON].reason.label == "Price"
    assert answers[QuestionKind.PRIMARY_REASON].reason_source == ""
    assert answers[QuestionKind.COMPETITOR].competitor == deal.primary_competitor
    assert deal.imported_from.reason_text.casefold() == "too expensive"
    assert Reflection.objects.exclude(origin=Origin.IMPORTED).count() == 0
    assert set(Reflection.objects.values_list("author", flat=True)) == {admin.pk}
    unknown = Answer.objects.filter(is_unknown=True).count()
    assert unknown >= 1  # the empty reasons mapped to "Unknown"
    assert (
        Answer.objects.filter(
            question__kind=QuestionKind.PRIMARY_REASON, reason__isnull=True, is_unknown=False
        ).count()
        == 0
    )

    won_id, won_reason = expected["won"]
    won = Answer.objects.get(
        reflection__opportunity__imported_from__external_id=won_id,
        question__kind=QuestionKind.PRIMARY_REASON,
    )
    assert won.reflection.outcome == "won"
    assert (won.reason.label if won.reason else None, won.is_unknown) == (
        won_reason,
        won_reason is None,
    )

    # Competitors matched by name in any case, created once each.
    assert set(Competitor.objects.values_list("name", flat=True)) >= {
        "Tableau",
        "Looker",
        "Power BI",
        "Fivetran",
    }
    assert Competitor.objects.filter(name__iexact="tableau").count() == 1

    # No survey goes out for history; insights hear of the dates once per batch.
    assert submitted == []
    assert imported_dates == [set(Reflection.objects.values_list("closed_date", flat=True))]
    assert ImportedDeal.objects.filter(history_import=done).count() == expected["deals"]
    assert set(ImportedDeal.objects.values_list("system_key", flat=True)) == {"salesforce"}


def test_amount_forms_are_read_as_documented():
    from imports.parsing import ValueProblem, parse_amount

    assert parse_amount("1,234.50") == (Decimal("1234.50"), "")
    assert parse_amount("£1,234") == (Decimal("1234"), "GBP")
    assert parse_amount("1.234,50") == (Decimal("1234.50"), "")
    assert parse_amount("EUR 18.000,00") == (Decimal("18000.00"), "EUR")
    assert parse_amount("1 234,5 €") == (Decimal("1234.5"), "EUR")
    assert parse_amount("12,5") == (Decimal("12.5"), "")
    assert parse_amount("31250.5") == (Decimal("31250.5"), "")
    assert parse_amount("") == (Decimal("0"), "")
    for bad in ("-10", "12.3.4,5", "1,23,4", "abc", "1.234", "10 CHF", "1,000.123"):
        with pytest.raises(ValueProblem):
            parse_amount(bad)


def test_dates_read_iso_always_and_slashes_as_the_import_says():
    from imports.parsing import ValueProblem, parse_date

    day = timezone.localdate()
    assert parse_date(f"{day:%Y-%m-%d}") == day
    assert parse_date(f"{day:%Y-%m-%d} 14:30") == day  # HubSpot
    assert parse_date(f"{day:%Y-%m-%d} 14:30:05") == day  # Pipedrive
    assert parse_date(f"{day:%d/%m/%Y}", "dmy") == day  # Salesforce, UK locale
    assert parse_date(f"{day:%m/%d/%Y}", "mdy") == day  # Salesforce, US locale
    assert parse_date(f"{day:%Y-%m-%d}", "mdy") == day
    with pytest.raises(ValueProblem, match="yyyy-mm-dd"):
        parse_date(f"{day:%d/%m/%Y}", "iso")
    with pytest.raises(ValueProblem, match="not a real date"):
        parse_date(f"{day.year}-02-30")


@pytest.mark.parametrize(
    ("cell", "outcome"),
    [
        ("Closed Won", "won"),
        ("closedwon", "won"),
        ("Closed Lost", "lost"),
        ("closedlost", "lost"),
        ("won", "won"),
        ("lost", "lost"),
        ("Closed - No Decision", "no_decision"),
        ("Negotiation/Review", "skip"),
        ("Appointment Scheduled", "skip"),
        ("open", "skip"),
    ],
)
def test_stages_of_the_three_crms(cell, outcome):
    from imports.parsing import parse_stage

    assert parse_stage(cell) == outcome


@pytest.mark.parametrize("preset", ["salesforce", "hubspot", "pipedrive"])
def test_each_fixture_has_its_presets_documented_headers(preset):
    header = (FIXTURES / FILES[preset]).read_text().splitlines()[0].replace('"', "").split(",")
    columns = presets.columns_for(preset, header)
    assert presets.missing_fields(columns) == []
    for name, found in columns.items():
        assert found in presets.PRESET_COLUMNS[preset][name]


def test_the_guide_lists_every_presets_documented_headers():
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "importing-history.md").read_text()
    for columns in presets.PRESET_COLUMNS.values():
        for accepted in columns.values():
            if accepted:
                assert f"`{accepted[0]}`" in guide


def test_generic_files_get_their_columns_guessed():
    header = ["Deal Id", "Company", "Closed on", "Amount (GBP)", "Status", "Product", "Why lost"]
    guessed = presets.suggest_columns(header)
    assert guessed["external_id"] == "Deal Id"
    assert guessed["amount"] == "Amount (GBP)"
    assert guessed["stage"] == "Status"
    assert guessed["product"] == "Product"
    assert presets.columns_for("generic", header) == guessed
    assert len(set(guessed.values())) == len(guessed)


def test_an_import_keeps_its_preset_columns(world):
    history_import = create(world, export("hubspot"), preset="hubspot")
    assert history_import.columns["closed_date"] == "Close Date"
    assert history_import.columns["won_reason"] == "Closed Won Reason"
    assert history_import.rows_total == 16
    assert HistoryImport.objects.get().status == "uploaded"
