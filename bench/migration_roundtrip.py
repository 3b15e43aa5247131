"""
A migration's way back and forth on a copy of a benchmark database, with every table's row
count compared, for migrations that must not lose a row (e.g. the suppression models' move
from customers to suppressions, which changes only Django's bookkeeping).

    python -m bench.migration_roundtrip                      # the suppressions move, large set
    python -m bench.migration_roundtrip --source debrief_bench_xl \
        --back customers:0007_mend_do_not_contact suppressions:zero

The copy (`<source>_roundtrip`) is made with CREATE DATABASE … TEMPLATE, so nothing may be
connected to the source meanwhile; it is dropped at the end. Prints the time of each way and
exits non-zero if any table's count differs.
"""

import argparse
import sys
import time

import psycopg
from psycopg import sql

DEFAULT_BACK = ["customers:0007_mend_do_not_contact", "suppressions:zero"]


def _admin(url: str):
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.pop("dbname", None)
    return psycopg.connect(**info, dbname="postgres", autocommit=True)


def _counts() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        tables = sorted(connection.introspection.table_names(cursor))
        counts = {}
        for table in tables:
            cursor.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cursor.fetchone()[0]
    return counts


def _migrate(targets: list[tuple[str, str | None]]) -> float:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    started = time.perf_counter()
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return time.perf_counter() - started


def _leaves() -> list[tuple[str, str]]:
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    return MigrationLoader(connection).graph.leaf_nodes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--source", default="debrief_bench", help="database to copy")
    parser.add_argument("--back", nargs="+", default=DEFAULT_BACK, metavar="APP:MIGRATION")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    back = [
        (app, None if name == "zero" else name)
        for app, name in (target.split(":", 1) for target in args.back)
    ]
    copy = f"{args.source}_roundtrip"
    with _admin(args.server) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy))
        )
        started = time.perf_counter()
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(copy), sql.Identifier(args.source)
            )
        )
        print(f"Copied {args.source} to {copy} in {time.perf_counter() - started:.1f} s.")
    from bench.run import bench_environment

    bench_environment(f"{args.server.rsplit('/', 1)[0]}/{copy}")
    import django

    django.setup()
    try:
        before = _counts()
        forward_to = _leaves()
        took_back = _migrate(back)
        middle = _counts()
        took_forward = _migrate(forward_to)
        after = _counts()
    finally:
        from django.db import connections

        connections.close_all()
        with _admin(args.server) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy))
            )
    rows = sum(before.values())
    print(
        f"{len(before)} tables, {rows:,} rows. Back to {args.back}: {took_back:.1f} s; "
        f"forward again: {took_forward:.1f} s."
    )
    differ = [
        (table, before.get(table), middle.get(table), after.get(table))
        for table in sorted(set(before) | set(after))
        if table != "django_migrations"
        and not (before.get(table) == middle.get(table) == after.get(table))
    ]
    for table, one, two, three in differ:
        print(f"  {table}: {one} before, {two} moved back, {three} forward again")
    print("Every table's count is equal both ways." if not differ else "Counts differ.")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
