"""
The change log behind the pull feed (GET /api/suppressions/changes) and the webhooks: every
suppression that starts, is lifted (or withdrawn) or ends is recorded once, as a
SuppressionChange holding a snapshot of what a receiver needs.

Recording is one INSERT ... SELECT per call, in the caller's transaction: the snapshot's
company, contact and product columns are joined in the database, so a close pays one query
whatever it derived, and a change can never commit without its suppression (nor the other way
round). `ON CONFLICT DO NOTHING` on (suppression, kind) makes a second recording of the same
change (the daily "ended" run twice, a lift racing a reopen) record nothing. Webhooks are
handed the new changes once the transaction commits (webhooks.changes_dispatch).

The cursor contract (docs/suppression-feed.md). On PostgreSQL each change carries the id of
the transaction that wrote it (`txid`, a column default). Rows are served in (txid, id) order
and only when txid is below the horizon of the reading statement's snapshot (FeedHorizon: the
oldest transaction of this database still running, like the snapshot's xmin but leaving out
other databases' sessions): every transaction that could still commit a change then has a
txid at or above it, so it sorts after everything served and no page ever skips a row that
commits late. An
id alone cannot be a cursor: a transaction that took id 10 and commits after id 11 was served
would be skipped; nor can id order with the xmin filter, since transaction ids are taken at a
transaction's first write, not in the order its changes get their ids. Changes wait while an
older writing transaction is open in this database (usually milliseconds; the guide tells
operators about long ones). On SQLite, writers take turns: txid is 0 and id order is
commit order.
"""

import dataclasses
import datetime
import re
from collections.abc import Iterable

from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from customers.models import Company, Contact
from opportunities.models import Product, ProductLine
from suppressions.models import ChangeKind, Suppression, SuppressionChange

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# Ids per INSERT ... SELECT when recording a list (imports): well below SQLite's limit on
# parameters per statement.
ID_CHUNK = 500
# Cursor "<txid>_<id>", each at most 18 digits (always below 2**63). Opaque to clients: the
# form may change, an old cursor keeps working.
CURSOR = re.compile(r"(0|[1-9][0-9]{0,17})_(0|[1-9][0-9]{0,17})")
CURSOR_PATTERN = rf"^{CURSOR.pattern}$"  # the same, for the OpenAPI document
START = (0, 0)


class FeedHorizon(models.Func):
    """
    PostgreSQL: the oldest transaction that was still running when the reading statement
    began and that may belong to this database (the snapshot's in-progress list, less the
    transactions of sessions connected to other databases of the server), or the snapshot's
    xmax when there is none. Every transaction that could still commit a change has an id at
    or above it. Sessions of other databases are left out because they cannot write here: a
    long job elsewhere on the server does not hold the feed back. pg_stat_activity shows every
    session's database and transaction id to any role; a transaction it does not list (a
    prepared one, one that just ended) counts as this database's, which can only delay.
    """

    output_field = models.BigIntegerField()
    arity = 0
    sql = """(SELECT COALESCE(
        (SELECT MIN(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
         WHERE NOT (x::xid = ANY (ARRAY(
            SELECT backend_xid FROM pg_stat_activity
            WHERE backend_xid IS NOT NULL AND datname IS NOT NULL
              AND datname <> current_database()
         )))),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint
    ))"""

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.sql, []


# --- recording ---------------------------------------------------------------------------------


def _insert_sql(where: str) -> str:
    quote = connection.ops.quote_name
    return f"""
        INSERT INTO {quote(SuppressionChange._meta.db_table)} (
            kind, suppression_id, occurred_at, company_pk, company_domain, contact_pk,
            contact_email, contact_phone, scope, product_name, product_line_name, reason,
            starts_on, until
        )
        SELECT %s, s.id, %s, s.company_id, co.domain, s.contact_id,
            COALESCE(ct.email, ''), COALESCE(ct.phone_normalized, ''), s.scope,
            COALESCE(p.name, ''), COALESCE(pl.name, ''), s.reason, s.starts_on, s.until
        FROM {quote(Suppression._meta.db_table)} s
        JOIN {quote(Company._meta.db_table)} co ON co.id = s.company_id
        LEFT JOIN {quote(Contact._meta.db_table)} ct ON ct.id = s.contact_id
        LEFT JOIN {quote(Product._meta.db_table)} p ON p.id = s.product_id
        LEFT JOIN {quote(ProductLine._meta.db_table)} pl ON pl.id = s.product_line_id
        WHERE s.id IN ({where})
        ORDER BY s.id
        ON CONFLICT (suppression_id, kind) DO NOTHING
        RETURNING id
    """


def changes_record(kind: str, suppressions: models.QuerySet) -> list[int]:
    """
    Record `kind` for each suppression of the queryset (read as the statement runs), in the
    current transaction; returns the new changes' ids. Call it before a delete, and before or
    after an update that leaves the queryset's rows in place.
    """
    subquery = suppressions.order_by().values("pk").query
    where, params = subquery.get_compiler(connection=connection).as_sql()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(where), [kind, now, *params])
        ids = [row[0] for row in cursor.fetchall()]
    _announce(ids)
    return ids


def changes_record_ids(kind: str, suppression_ids: Iterable[int]) -> list[int]:
    """changes_record() for suppressions known by id (bulk inserts), a chunk per statement."""
    ids = list(suppression_ids)
    recorded: list[int] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        recorded += changes_record(kind, Suppression.objects.filter(pk__in=chunk))
    return recorded


def _announce(change_ids: list[int]) -> None:
    if not change_ids:
        return
    from suppressions import webhooks  # it reads the changes; nothing here needs it sooner

    transaction.on_commit(lambda: webhooks.changes_dispatch(change_ids))


def without_an_end(suppressions: models.QuerySet) -> models.QuerySet:
    """Those of `suppressions` for which neither an end nor a lift was reported."""
    return suppressions.exclude(
        Exists(
            SuppressionChange.objects.filter(
                suppression=OuterRef("pk"), kind__in=[ChangeKind.ENDED, ChangeKind.LIFTED]
            )
        )
    )


@transaction.atomic
def changes_record_ended(*, on: datetime.date | None = None) -> int:
    """
    The daily run: report `ended` for every suppression whose last day (`until`) is before
    `on` (default today in the organisation's time zone), that was reported started, and
    whose end or lift was not reported yet. Safe to run twice, or late: it reports each end
    once, on the first run after the day passed. Returns how many it recorded.
    """
    day = on or timezone.localdate()
    started = SuppressionChange.objects.filter(suppression=OuterRef("pk"), kind=ChangeKind.STARTED)
    due = without_an_end(
        Suppression.objects.filter(until__lt=day, lifted_at__isnull=True).filter(Exists(started))
    )
    return len(changes_record(ChangeKind.ENDED, due))


# --- reading -----------------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


def cursor_encode(position: tuple[int, int]) -> str:
    return f"{position[0]}_{position[1]}"


def cursor_decode(value: str) -> tuple[int, int]:
    match = CURSOR.fullmatch(value)
    if match is None:
        raise BadCursor(value)
    return int(match[1]), int(match[2])


@dataclasses.dataclass(frozen=True)
class Page:
    changes: list[SuppressionChange]
    next: str
    has_more: bool


def feed_page(*, since: tuple[int, int] = START, limit: int = DEFAULT_LIMIT) -> Page:
    """
    The changes after `since` in commit order, at most `limit`, and the cursor to ask for the
    next ones. Every change is served exactly once to a client that always passes the `next`
    it was given, however writers interleave (see the module's docstring).
    """
    txid, pk = since
    # (txid, id) > since, written so that the index's range starts at the cursor's txid.
    rows = SuppressionChange.objects.filter(Q(txid__gte=txid) & (Q(txid__gt=txid) | Q(pk__gt=pk)))
    if connection.vendor == "postgresql":
        rows = rows.filter(txid__lt=FeedHorizon())
    page = list(rows.order_by("txid", "pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    last = (page[-1].txid, page[-1].pk) if page else since
    return Page(changes=page, next=cursor_encode(last), has_more=has_more)


def event(change: SuppressionChange) -> dict:
    """A change as the feed and the webhooks send it (docs/suppression-feed.md)."""
    contact = None
    if change.contact_pk is not None:
        contact = {
            "id": change.contact_pk,
            "email": change.contact_email or None,
            "phone": change.contact_phone or None,
        }
    return {
        "id": change.pk,
        "kind": change.kind,
        "occurred_at": change.occurred_at.isoformat(),
        "suppression": {
            "id": change.suppression_id,
            "reason": change.reason,
            "scope": change.scope,
            "product": change.product_name or None,
            "product_line": change.product_line_name or None,
            "starts_on": change.starts_on.isoformat(),
            "until": change.until.isoformat() if change.until else None,
            "company": {"id": change.company_pk, "domain": change.company_domain or None},
            "contact": contact,
        },
    }
