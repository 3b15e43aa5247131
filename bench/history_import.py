"""
The history import at scale: a generated Salesforce-shaped export of 100,000 closed and open
deals (about 5,000 companies, 20,000 contacts, a dozen reason spellings), checked and then
imported in batches on PostgreSQL, with the time and rows per second of each step: the upload
(which reads the file once and keeps its texts), the values page's data, the check (in the
request, and as "Save and check" makes it: a job above DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS
rows), the check page's "is it current" test, and the run.

    python -m bench.history_import                    # 100,000 rows
    python -m bench.history_import --rows 20000
    BENCH_IMPORT_DATABASE_URL=postgres://... python -m bench.history_import

It uses its own database (created and migrated when missing, never the dev SQLite file, the
test database or `make bench`'s), with the project's settings as bench/run.py sets them. Each
run imports under a new system name, so its deals are all new while the companies and contacts
of earlier runs are matched. Not part of CI: it takes minutes.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import random
import subprocess
import sys
import tempfile
import time

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/debrief_import_bench"

REASONS = {
    "Closed Lost": [
        "Price too high",
        "price - too high",
        "Too expensive",
        "went with competitor",
        "Lost to competitor",
        "No budget",
        "Timing",
        "Product fit",
        "",
    ],
    "Closed Won": ["Product fit", "Relationship", "relationship ", "Price", ""],
    "Closed - No Decision": ["Priorities changed", "Budget frozen", ""],
}
STAGES = ["Closed Lost"] * 50 + ["Closed Won"] * 30 + ["Closed - No Decision"] * 10
OPEN = ["Prospecting", "Negotiation/Review"]
PRODUCTS = ["Analytics Suite", "Data Connector", "Support Plan"]
COMPETITORS = ["Tableau", "Looker", "Power BI", "Fivetran", ""]
HEADER = [
    "Opportunity ID",
    "Opportunity Name",
    "Account Name",
    "Website",
    "Primary Contact",
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
    "Description",
]


def generate(rows: int, today: datetime.date, owners: list[str], seed: int = 7) -> bytes:
    """A Salesforce opportunity report of `rows` rows, about a tenth of them open deals."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for n in range(rows):
        company = rng.randrange(5000)
        person = rng.randrange(4)
        closed = today - datetime.timedelta(days=rng.randrange(1, 3 * 365))
        created = closed - datetime.timedelta(days=rng.randrange(7, 200))
        is_open = rng.random() < 0.1
        stage = rng.choice(OPEN) if is_open else rng.choice(STAGES)
        reason = "" if is_open else rng.choice(REASONS[stage])
        writer.writerow(
            [
                f"006B{n:011d}",
                f"Customer {company} - deal {n}",
                f"Customer {company} Ltd",
                f"www.customer{company}.example",
                f"Buyer {person} of {company}",
                f"buyer{person}@customer{company}.example",
                rng.choice(PRODUCTS),
                rng.choice(owners),
                rng.choice(["GBP", "GBP", "EUR", "USD"]),
                f"{rng.randrange(1000, 90000):,}.00",
                stage,
                f"{created:%d/%m/%Y}",
                f"{closed:%d/%m/%Y}",
                rng.choice(COMPETITORS),
                reason,
                "Imported by the benchmark." if n % 10 == 0 else "",
            ]
        )
    return out.getvalue().encode("utf-8")


def ensure_database(url: str) -> None:
    """Create the benchmark's own database when missing (psql's createdb)."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    check = subprocess.run(
        [
            "psql",
            "-h",
            parts.hostname or "127.0.0.1",
            "-U",
            parts.username or "postgres",
            "-p",
            str(parts.port or 5432),
            "-lqt",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if name not in {line.split("|")[0].strip() for line in check.stdout.splitlines()}:
        subprocess.run(
            [
                "createdb",
                "-h",
                parts.hostname or "127.0.0.1",
                "-U",
                parts.username or "postgres",
                "-p",
                str(parts.port or 5432),
                name,
            ],
            check=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history_import")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_IMPORT_DATABASE_URL") or DEFAULT_URL
    if "debrief_bench" in url.rsplit("/", 1)[-1] and "import" not in url:
        sys.exit("Use a database of its own (not make bench's): set BENCH_IMPORT_DATABASE_URL.")
    ensure_database(url)

    from bench.run import bench_environment

    bench_environment(url)
    media = tempfile.mkdtemp(prefix="debrief-import-bench-")
    os.environ["DEBRIEF_MEDIA_ROOT"] = media

    import django

    django.setup()
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Role, User
    from imports import engine, selectors, services
    from imports.models import MappingAction
    from opportunities.models import Product, ProductLine

    call_command("migrate", interactive=False, verbosity=0)
    admin, _ = User.objects.get_or_create(
        email="bench.admin@example.com", defaults={"full_name": "Bench Admin", "role": Role.ADMIN}
    )
    owners = []
    for i in range(20):
        user, _ = User.objects.get_or_create(
            email=f"bench.rep{i}@example.com", defaults={"full_name": f"Bench Rep {i}"}
        )
        owners.append(user.email)
    owners.append("someone.gone@oldcrm.example")  # the default owner takes these
    line, _ = ProductLine.objects.get_or_create(name="Bench line")
    for name in PRODUCTS:
        if not Product.objects.filter(name=name).exists():
            Product.objects.create(line=line, name=name)

    data = generate(args.rows, timezone.localdate(), owners)
    print(f"{args.rows:,} rows, {len(data) / 1e6:.1f} MB, on {connection.vendor} ({url})")
    timings: list[tuple[str, float]] = []

    def timed(label: str, call):
        started = time.perf_counter()
        value = call()
        timings.append((label, time.perf_counter() - started))
        return value

    # Upload: size and encoding checks, header, row count, and the one full read that stores
    # the file's sha256 and distinct texts (HistoryImport.texts).
    history_import = timed(
        "upload (history_import_create)",
        lambda: services.history_import_create(
            actor=admin,
            uploaded_file=SimpleUploadedFile("bench.csv", data),
            system=f"Bench {timezone.now():%Y%m%d%H%M%S}",
            preset="salesforce",
            default_owner=admin,
            options={"date_format": "dmy"},
        ),
    )
    # The values screen's data: what each GET and POST of that page computes (no file read).
    rows = timed(
        "values screen (selectors.value_rows)", lambda: selectors.value_rows(history_import)
    )
    decisions = [
        services.Decision(
            row.kind,
            row.outcome,
            row.key,
            row.suggestion_action or MappingAction.SKIP,
            row.suggestion_id,
        )
        for row in rows
        if row.saved is None
    ]
    services.history_import_save_mappings(
        actor=admin, history_import=history_import, decisions=decisions
    )

    # For comparison, what each view of the values screen cost before the texts were stored.
    timed(
        "(before: values screen read the file, engine.count_texts)",
        lambda: engine.count_texts(history_import),
    )
    # The dry run in the caller's process, as the management command (and small files) run it.
    timed(
        "check in the request (history_import_check)",
        lambda: services.history_import_check(history_import=history_import),
    )

    # The check as the admin's "Save and check" makes it: in the request up to
    # DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS rows, else queued and run by the job
    # (imports.tasks.check, run here), which records its progress after each batch.
    def save_and_check():
        with transaction.atomic():  # a queued task goes to the in-memory broker
            queued = services.history_import_check_queue(actor=admin, history_import=history_import)
        if queued.status != "checking":
            return queued
        return services.history_import_check_run(import_id=history_import.pk)

    limit = settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS
    checked = timed(
        f"check as “Save and check” makes it (a job above {limit:,} rows)", save_and_check
    )
    if checked.status != "checked":
        print(checked.status, checked.errors[:5])
        return 1
    # What the check page asks on each view: is the check still current (no file read).
    current = timed(
        "check page's test (history_import_check_is_current)",
        lambda: services.history_import_check_is_current(checked),
    )
    assert current

    with transaction.atomic():
        services.history_import_start(actor=admin, history_import=checked)
    done = timed(
        "run (history_import_run)", lambda: services.history_import_run(import_id=checked.pk)
    )

    total = done.rows_total
    width = max(len(label) for label, _ in timings)
    for label, seconds in timings:
        rate = f"{total / seconds:>10,.0f} rows/s" if seconds >= 0.05 else ""
        print(f"{label:<{width}}  {seconds:7.2f} s  {rate}")
    print(
        f"{len(rows):,} distinct texts; status {done.status}: {done.deals_created:,} deals, "
        f"{done.rows_skipped:,} left out, {done.companies_created:,} companies, "
        f"{done.contacts_created:,} contacts, {done.suppressions_derived:,} suppressions"
    )
    return 0 if done.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
