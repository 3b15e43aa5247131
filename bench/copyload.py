"""
Bulk loading for the extra-large scale: while `copy_bulk_create()` is active, every plain
`bulk_create` on PostgreSQL writes its batch with COPY instead of a multi-row INSERT.

The demo steps stay the single description of the data (the same rules at every scale); only
the write changes. Each batch reserves a block of ids from the table's sequence in one statement
and assigns them to the objects before the COPY, so later steps can refer to what was just
written (contacts to their company, answers to their reflection) exactly as after
bulk_create. Constraints and indexes stay in place, so the rows are checked as they go in.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, router
from django.db.models import AutoField, QuerySet
from psycopg import sql


def _reserve_ids(cursor, table: str, column: str, count: int) -> range:
    """A block of `count` consecutive ids from the sequence behind table.column."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
    sequence = cursor.fetchone()[0]
    # One statement: advance the sequence by `count` and return where the block ends.
    cursor.execute(
        "SELECT setval(%s::regclass, nextval(%s::regclass) + %s - 1)", [sequence, sequence, count]
    )
    last = cursor.fetchone()[0]
    return range(last - count + 1, last + 1)


def copy_rows(objs: list, *, using: str) -> list:
    """Write `objs` (all of one model) with COPY; return them with their ids set."""
    if not objs:
        return objs
    model = type(objs[0])
    opts = model._meta
    connection = connections[using]
    fields = [f for f in opts.local_concrete_fields if f.column]
    pk = opts.pk
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor under Django's wrapper
        if isinstance(pk, AutoField) or getattr(pk, "db_returning", False):
            missing = [obj for obj in objs if obj.pk is None]
            if missing:
                ids = _reserve_ids(cursor, opts.db_table, pk.column, len(missing))
                for obj, new_id in zip(missing, ids, strict=True):
                    obj.pk = new_id
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(opts.db_table),
            sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
        )
        # Django's wrapping, so that a broken constraint raises IntegrityError as usual.
        with connection.wrap_database_errors, cursor.copy(statement) as copy:
            for obj in objs:
                copy.write_row(
                    [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
                )
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return objs


@contextmanager
def copy_bulk_create() -> Iterator[None]:
    """Route plain bulk_create calls through COPY for as long as the block runs (PostgreSQL)."""
    original = QuerySet.bulk_create

    def bulk_create(self, objs, batch_size=None, ignore_conflicts=False, **options):
        using = self.db or router.db_for_write(self.model)
        plain = (
            not ignore_conflicts
            and not options.get("update_conflicts")
            and not self.model._meta.parents
            and connections[using].vendor == "postgresql"
        )
        if not plain:
            return original(self, objs, batch_size, ignore_conflicts, **options)
        return copy_rows(list(objs), using=using)

    QuerySet.bulk_create = bulk_create
    try:
        yield
    finally:
        QuerySet.bulk_create = original
