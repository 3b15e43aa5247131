"""
`make bench`: seed the large demo set into the benchmark database if it is missing, measure,
print a table and write bench/results.json.

    python -m bench.run                       # the large set, full iterations
    python -m bench.run --scale tiny --iterations 2   # a quick check of the harness itself
    python -m bench.run --reseed              # drop the benchmark database and seed it again

It only ever connects to BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/debrief_bench, created when missing), never to DATABASE_URL,
and runs with DEBUG off like production. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/debrief_bench"
RESULTS = BENCH_DIR / "results.json"
# Git-ignored: when and how the large set was seeded into the benchmark database.
SEED_RECORD = BENCH_DIR / "large-seed.done"
XL_URL = "postgres://postgres@127.0.0.1:5432/debrief_bench_xl"
XL_SEED_RECORD = BENCH_DIR / "xl-seed.done"


def bench_environment(url: str) -> None:
    """Production-like settings for this process and its children (seed_demo, call list)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50)
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    # One JSON line per request would bury the table; the logging calls still happen.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Closes queue an insights refresh; without a broker of its own the benchmark publishes to
    # an in-memory one (bench/settings.py) rather than to a developer's Redis and worker.
    os.environ.pop("REDIS_URL", None)
    if os.environ.get("BENCH_REDIS_URL"):
        os.environ["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def format_table(rows: list[dict]) -> str:
    """
    Ratio to the floor first (it holds while the host's speed drifts), then the absolute
    times; rows that are not pages say why they have no floor, under the table.
    """

    def cell(value, digits: int = 1) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.{digits}f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    header = (
        "measurement",
        "x floor",
        "target x",
        "median ms",
        "floor ms",
        "p95 ms",
        "queries",
        "target ms",
        "RSS MB",
        "ok",
    )
    lines = [header]
    for row in rows:
        rss = row.get("peak_rss_mb")
        if row.get("rss_growth_mb") is not None:
            rss = f"+{row['rss_growth_mb']:.0f} (≤{row['target_rss_growth_mb']})"
        elif rss is not None and row.get("target_rss_mb"):
            rss = f"{rss:.0f} (≤{row['target_rss_mb']})"
        ok = {True: "yes", False: "MISS", None: ""}[row.get("pass")]
        queries = cell(row["queries"])
        if row.get("floor_queries") is not None:
            queries = f"{queries} / {row['floor_queries']}"
        ratio = row.get("floor_ratio")
        lines.append(
            (
                row["name"],
                f"{ratio:.2f}x" if ratio is not None else ("none" if row.get("no_floor") else "-"),
                f"{row['target_ratio']}x" if row.get("target_ratio") is not None else "-",
                cell(row["median_ms"], 2),
                cell(row.get("floor_median_ms"), 2),
                cell(row["p95_ms"], 2),
                queries,
                cell(row["target_ms"]),
                cell(rss),
                ok,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                str(v).ljust(w) if i == 0 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    if any(row.get("floor_ratio") is not None for row in rows):
        out.append(
            "\nx floor: the page's median over its floor's (the same data in one raw query and a"
            "\nminimal template, fetched in alternation); queries: the page's / the floor's."
        )
    no_floor = [row for row in rows if row.get("no_floor")]
    if no_floor:
        out.append("No floor:")
        out += [f"  {row['name']}: {row['no_floor']}" for row in no_floor]
    return "\n".join(out)


def execute(
    plan, *, output: Path | None, seed: dict | None = None, only=None, log=print
) -> list[dict]:
    """Run the suite on the configured database, print the table, write `output`."""
    from bench.suite import run_suite, seed_row

    started = time.perf_counter()
    rows = run_suite(plan, only=only, log=log)
    seed_result = seed_row(seed)
    if seed_result:
        rows.append(seed_result)
    log("")
    log(format_table(rows))
    log(f"\n({time.perf_counter() - started:.0f} s of measuring)")
    if output is not None:
        output.write_text(json.dumps(rows, indent=2) + "\n")
        log(f"Wrote {output}")
    return rows


def _seed_record(url: str, seeded: dict, scale: str = "large") -> dict | None:
    """This run's seeding, or the recorded one for the same database."""
    from bench.suite import now_iso

    path = XL_SEED_RECORD if scale == "xl" else SEED_RECORD

    if seeded.get("seeded"):
        record = {**seeded, "database": url, "measured_at": now_iso()}
        path.write_text(json.dumps(record, indent=2) + "\n")
        return record
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("database") == url else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[1])
    parser.add_argument("--scale", choices=["large", "xl", "tiny"], default="large")
    parser.add_argument("--iterations", type=int, help="timed runs per page (default 30; tiny: 2)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--reseed", action="store_true", help="drop the database and seed again")
    parser.add_argument(
        "--only", nargs="+", metavar="PREFIX", help="measure only names starting with these"
    )
    args = parser.parse_args(argv)

    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    if args.scale == "xl" and url == DEFAULT_URL:
        url = XL_URL  # never the large set's database: the XL set has its own
    if not url.startswith(("postgres://", "postgresql://")):
        parser.error("BENCH_DATABASE_URL must be a PostgreSQL URL.")
    bench_environment(url)
    from bench import seed

    if args.reseed:
        seed.drop_database(url)
    if seed.ensure_database(url):
        print(f"Created the benchmark database ({url}).")

    import django

    django.setup()
    from dataclasses import replace

    from django.core.management import call_command

    from bench.suite import Plan

    print(f"Debrief benchmark on {machine()}")
    print(f"Database: {url}")
    if args.scale in ("large", "xl"):
        record = _seed_record(url, seed.prepare_large(scale=args.scale), scale=args.scale)
        seed.refresh_statistics()
        plan = Plan()
        if args.iterations:
            plan = replace(plan, pages=args.iterations)
    else:
        call_command("migrate", interactive=False, verbosity=0)
        if not seed.seeded_deals():
            seed.seed_tiny(log=lambda message: None)
        record = None
        plan = Plan.smoke(args.iterations or 2)
    print(f"Load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    execute(plan, output=args.output, seed=record, only=args.only)
    print(f"Load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
