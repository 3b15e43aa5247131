"""
Preparing the benchmark database: create it if missing, migrate, and seed the demo data unless
it is already there. Also the "tiny" scale the smoke test uses: seed_demo's own steps with
smaller counts, so the smoke test exercises the same code as the large set.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from random import Random

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils.module_loading import import_string
from psycopg import sql

# Fewer than this many deals means the large set is not (fully) there.
LARGE_MIN_DEALS = 90_000
# The small scale's four teams (the demo managers manage them by name), with fewer of the rest.
TINY = {"reps_per_team": 2, "companies": 80, "deals": 400}
# The extra-large scale (#16, shared with #14 "Suppression at bank scale"): ten times the large
# set's deals and ten contacts a company; the same rules then give ≈600,000 reflections,
# ≈3.6M answers and ≈230,000 active suppressions (3% do-not-contact, the rest derived).
# `fraction` shrinks every count alike (a rehearsal, the test).
XL = {
    "reps_per_team": 25,
    "companies": 100_000,
    "deals": 1_000_000,
    "contacts_per_company": ([8, 10, 12], [25, 50, 25]),
}
XL_MIN_DEALS = 900_000


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in `url` if it does not exist. True if created."""
    conninfo = psycopg.conninfo.conninfo_to_dict(url)
    name = conninfo.pop("dbname")
    with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    conninfo = psycopg.conninfo.conninfo_to_dict(url)
    name = conninfo.pop("dbname")
    with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def refresh_statistics(log=print) -> None:
    """
    VACUUM (ANALYZE) the benchmark database. A bulk-loaded database has no planner statistics
    until autovacuum gets to it, and this server may run without autovacuum: with no
    statistics the planner guesses, and the company page took 16 s instead of 0.4 s.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        if cursor.fetchone()[0] != "on":
            log("Note: autovacuum is off on this server; statistics come from this VACUUM only.")
        started = time.perf_counter()
        cursor.execute("VACUUM (ANALYZE)")
    log(f"VACUUM (ANALYZE) in {time.perf_counter() - started:.1f} s.")


def seeded_deals() -> int:
    from opportunities.models import Opportunity

    return Opportunity.objects.count()


@contextmanager
def tiny_scale() -> Iterator[str]:
    """Teach the demo steps a "tiny" scale for as long as the block runs."""
    from accounts import demo as accounts_demo
    from customers import demo as customers_demo
    from opportunities import demo as opportunities_demo

    tables = [
        (accounts_demo.TEAMS, accounts_demo.TEAMS["small"]),
        (accounts_demo.REPS_PER_TEAM, TINY["reps_per_team"]),
        (customers_demo.COMPANIES, TINY["companies"]),
        (opportunities_demo.DEALS, TINY["deals"]),
    ]
    for table, value in tables:
        table["tiny"] = value
    try:
        yield "tiny"
    finally:
        for table, _ in tables:
            table.pop("tiny", None)


@contextmanager
def xl_scale(fraction: float = 1.0) -> Iterator[str]:
    """
    Teach the demo steps an "xl" scale for as long as the block runs, and write their batches
    with COPY (bench.copyload) instead of INSERT. `fraction` scales the counts (tests, rehearsals).
    """
    from accounts import demo as accounts_demo
    from bench.copyload import copy_bulk_create
    from customers import demo as customers_demo
    from opportunities import demo as opportunities_demo

    tables = [
        (accounts_demo.TEAMS, accounts_demo.TEAMS["large"]),
        (accounts_demo.REPS_PER_TEAM, max(2, round(XL["reps_per_team"] * fraction))),
        (customers_demo.COMPANIES, max(1, round(XL["companies"] * fraction))),
        (opportunities_demo.DEALS, max(1, round(XL["deals"] * fraction))),
    ]
    saved = customers_demo.CONTACTS_PER_COMPANY
    for table, value in tables:
        table["xl"] = value
    customers_demo.CONTACTS_PER_COMPANY = XL["contacts_per_company"]
    try:
        with copy_bulk_create():
            yield "xl"
    finally:
        for table, _ in tables:
            table.pop("xl", None)
        customers_demo.CONTACTS_PER_COMPANY = saved


def run_demo_steps(scale: str, *, seed: int = 2026, skip=(), log=print) -> float:
    """seed_demo's steps (settings.DEBRIEF_DEMO_STEPS) in-process; returns the seconds taken."""
    from accounts.demo import DemoContext

    class _Out:
        def write(self, message: str) -> None:
            log(message)

    started = time.perf_counter()
    ctx = DemoContext(rng=Random(seed), scale=scale, stdout=_Out())
    for path in settings.DEBRIEF_DEMO_STEPS:
        if path in skip:
            continue
        with transaction.atomic():
            import_string(path)(ctx)
    return time.perf_counter() - started


def seed_tiny(log=print) -> float:
    # The report build is left out: the suite measures (and so runs) the full rebuild anyway.
    with tiny_scale() as scale:
        return run_demo_steps(scale, skip={"insights.demo.seed"}, log=log)


def prepare_large(*, log=print, scale: str = "large") -> dict:
    """
    Migrate and seed the large set unless it is there. Seeding runs `seed_demo --scale large`
    in a child process under /usr/bin/time when available, so its time and peak RSS are
    recorded. Returns what happened, for results.json.
    """
    import os
    import re
    import shutil
    import subprocess
    import sys

    call_command("migrate", interactive=False, verbosity=0)
    deals = seeded_deals()
    if deals >= (XL_MIN_DEALS if scale == "xl" else LARGE_MIN_DEALS):
        log(f"The {scale} demo set is present ({deals:,} deals); not seeding.")
        return {"seeded": False, "deals": deals}
    if deals:
        raise SystemExit(
            f"The benchmark database has {deals:,} deals, fewer than the {scale} set. "
            "Run `make bench BENCH_ARGS=--reseed` to drop and seed it again."
        )
    log(f"Seeding the {scale} demo set (seed_demo --scale {scale}) ...")
    command = [sys.executable, "manage.py", "seed_demo", "--scale", scale, "--force"]
    timer = shutil.which("time", path="/usr/bin")
    if timer:
        command = [timer, "-v", *command]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=settings.BASE_DIR,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=(60 if scale == "xl" else 30) * 60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        log(done.stdout[-4000:])
        log(done.stderr[-4000:])
        raise SystemExit(f"seed_demo --scale {scale} failed; output above.")
    for line in done.stdout.splitlines():
        log(f"  {line}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    result = {
        "seeded": True,
        "deals": seeded_deals(),
        "seconds": round(elapsed, 1),
        "peak_rss_mb": round(int(peak.group(1)) / 1024, 1) if peak else None,
    }
    log(f"Seeded in {elapsed:.0f} s, peak RSS {result['peak_rss_mb']} MB.")
    return result
