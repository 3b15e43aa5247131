"""
The close on the embedded default (`make run`: SQLite in WAL mode, eager tasks, no worker):
the close POST's median over a burst of closes with about 2,000 reflections present, then the
dashboard once the refresh has caught up, which must count every close.

    python -m bench.embedded_close                  # 50 closes, 2,000 reflections
    python -m bench.embedded_close --quiet 0        # the refresh starts at once, next to closes
    python -m bench.embedded_close --reseed         # seed the demo base file again

`make bench` measures PostgreSQL with a broker; this is the other half of issue #16 item 4, so it
runs the project's own settings with no DATABASE_URL and no REDIS_URL, on a copy of a seeded
SQLite file under var/ (the copy is thrown away; the base is seeded once with seed_demo, or
with its tiny scale for tests/insights/test_embedded_close.py). The closes go through Django's
test client one after another, as fast as it answers, so the refresh they start runs in this
process next to them, as it would in the dev server. With `--quiet 0` it starts at the first
close instead of when closes pause: every write of the burst then meets the refresh's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "var" / "bench-embedded-base.sqlite3"
CLOSED_DEALS = re.compile(r"<dt>Closed deals</dt><dd class=\"stat\">([\d,]+)</dd>")
NO_DEALS = "No closed deals with a reflection"
TINY_SEED = (
    "import django; django.setup(); from bench import seed; seed.seed_tiny(log=lambda m: None); "
    "from insights import services; services.insights_rebuild_now(detail='Tiny demo data')"
)


def embedded_environment(path: Path) -> dict[str, str]:
    env = {**os.environ, "DEBUG": "true", "SQLITE_PATH": str(path), "LOG_LEVEL": "WARNING"}
    env["DJANGO_SETTINGS_MODULE"] = "crm_site.settings"
    env["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    return env


def seed_base(base: Path, *, reseed: bool, tiny: bool) -> None:
    if base.exists() and not reseed:
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base}{suffix}").unlink(missing_ok=True)
    env = embedded_environment(base)
    seed = ["-c", TINY_SEED] if tiny else ["manage.py", "seed_demo"]
    for command in (["manage.py", "migrate", "--noinput", "-v0"], seed):
        subprocess.run(
            [sys.executable, *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )


def fresh_copy(base: Path) -> Path:
    work = base.with_name(f"{base.stem}-run{base.suffix}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(base) as source, sqlite3.connect(work) as target:
        source.backup(target)
    return work


def wait_for_runs(timeout: float = 300) -> float:
    """Wait until no insight run is queued or running; the seconds it took."""
    from insights.models import ACTIVE_STATUSES, InsightRun

    started = time.perf_counter()
    while InsightRun.objects.filter(status__in=ACTIVE_STATUSES).exists():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"insight runs still active after {timeout:.0f} s")
        time.sleep(0.1)
    return time.perf_counter() - started


def open_deals(needed: int):
    from opportunities.models import OPEN_STAGES, Opportunity

    deals = list(
        Opportunity.objects.filter(stage__in=OPEN_STAGES, owner__is_active=True)
        .select_related("product", "owner")
        .order_by("-id")[:needed]
    )
    if len(deals) < needed:
        raise SystemExit(f"only {len(deals)} open deals; {needed} are needed")
    return deals


def lost_form(deal, forms: dict) -> dict:
    from bench.suite import _answers
    from reflections import selectors
    from reflections.models import Outcome

    line = deal.product.line_id
    if line not in forms:
        forms[line] = _answers(selectors.prompt_set_for(Outcome.LOST, line), Outcome.LOST)
    return forms[line]


def top_up(reflections: int) -> int:
    """Close open deals through the service, in one transaction, until `reflections` exist."""
    from django.db import transaction

    from reflections import selectors, services
    from reflections.forms import ReflectionForm
    from reflections.models import Outcome, Reflection

    missing = reflections - Reflection.objects.count()
    if missing <= 0:
        return 0
    forms: dict = {}
    with transaction.atomic():
        for deal in open_deals(missing):
            prompt_set = selectors.prompt_set_for(Outcome.LOST, deal.product.line_id)
            form = ReflectionForm(lost_form(deal, forms), prompt_set=prompt_set, outcome="lost")
            if not form.is_valid():
                raise SystemExit(f"the lost form does not validate: {form.errors}")
            services.opportunity_close(
                actor=deal.owner,
                opportunity=deal,
                outcome=Outcome.LOST,
                prompt_set=prompt_set,
                answers=form.answers(),
            )
    return missing


def dashboard_deals(client) -> int:
    from django.urls import reverse
    from django.utils import timezone

    from insights.periods import Period

    quarter = Period.containing("quarter", timezone.localdate())
    url = reverse("insights:dashboard")
    response = client.get(url, {"kind": "quarter", "period": quarter.start, "scope": "org"})
    page = response.content.decode()
    match = CLOSED_DEALS.search(page)
    if response.status_code == 200 and not match and NO_DEALS in page:
        return 0
    if response.status_code != 200 or not match:
        raise SystemExit(f"the dashboard shows no closed deals ({response.status_code})")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--closes", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reflections", type=int, default=2000, help="top up to this many")
    parser.add_argument(
        "--quiet", type=float, help="seconds closes must pause before the refresh starts"
    )
    parser.add_argument("--base", type=Path, default=BASE, help="the seeded SQLite file")
    parser.add_argument("--tiny", action="store_true", help="seed the base at the tiny scale")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    seed_base(args.base, reseed=args.reseed, tiny=args.tiny)
    work = fresh_copy(args.base)
    os.environ.update(embedded_environment(work))
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Role, User
    from insights import services
    from insights.models import InsightRun, RunKind, RunStatus
    from reflections.models import Reflection

    if args.quiet is not None:
        services.LOCAL_QUIET_SECONDS = args.quiet
    print(f"SQLite {sqlite3.sqlite_version}, {connection.vendor}, file {work}")
    added = top_up(args.reflections)
    wait_for_runs()
    admin = User.objects.filter(role=Role.ADMIN, is_active=True).order_by("id").first()
    viewer = Client()
    viewer.force_login(admin)
    before = dashboard_deals(viewer)
    print(
        f"{Reflection.objects.count():,} reflections ({added} added); the dashboard counts "
        f"{before:,} closed deals this quarter"
    )

    deals = open_deals(args.warmup + args.closes)
    clients: dict[int, Client] = {}
    forms: dict = {}
    samples, queries, beside_a_run = [], [], 0
    first_refresh = InsightRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    for i, deal in enumerate(deals):
        if deal.owner_id not in clients:
            clients[deal.owner_id] = Client()
            clients[deal.owner_id].force_login(deal.owner)
        url = reverse("reflections:close", args=[deal.pk, "lost"])
        data = {**lost_form(deal, forms)}
        count = [0]

        def counter(execute, sql, params, many, context, count=count):
            count[0] += 1
            return execute(sql, params, many, context)

        beside_a_run += InsightRun.objects.filter(status=RunStatus.RUNNING).exists()
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            response = clients[deal.owner_id].post(url, data)
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 302:
            raise SystemExit(f"close {i}: {response.status_code} {response.content[:400]!r}")
        if i >= args.warmup:
            samples.append(elapsed)
            queries.append(count[0])
    waited = wait_for_runs()
    after = dashboard_deals(viewer)
    runs = InsightRun.objects.filter(pk__gt=first_refresh, kind=RunKind.REFRESH)
    samples.sort()
    p95 = samples[max(0, round(0.95 * len(samples)) - 1)]
    print(
        f"close POST: median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms, "
        f"max {samples[-1]:.1f} ms over {len(samples)} closes ({args.warmup} warm-up), "
        f"{max(queries)} queries at most"
    )
    statuses = sorted(set(runs.values_list("status", flat=True)))
    print(
        f"refresh runs for the {len(deals)} closes: {runs.count()} (statuses {statuses}); "
        f"{beside_a_run} closes began while one ran; caught up {waited:.1f} s after the last"
    )
    print(
        f"dashboard: {before:,} closed deals before, {after:,} after "
        f"({after - before:+,}; {len(deals)} closed)"
    )
    if args.json:
        figures = {
            "median_ms": round(statistics.median(samples), 1),
            "p95_ms": round(p95, 1),
            "queries": max(queries),
            "closes": len(deals),
            "reflections": Reflection.objects.count(),
            "refresh_runs": runs.count(),
            "refresh_statuses": statuses,
            "closes_beside_a_run": beside_a_run,
            "dashboard_before": before,
            "dashboard_after": after,
        }
        args.json.write_text(json.dumps(figures, indent=2))
    if after - before != len(deals):
        raise SystemExit("the dashboard does not count every close")


if __name__ == "__main__":
    main()
