"""
Floors: each measured page's data fetched with the fewest queries (one raw SQL statement) and
drawn by a minimal template, behind the same middleware, session and login as the real page. A
page's median divided by its floor's says how much the ORM, the forms, the pager and the full
template cost on top of what the page cannot do without; measured in alternation with the
page, that ratio holds when the machine's speed drifts.

- the pipeline list (first page, a deep page, filtered, searched) for a rep or a manager;
- the company page: the company, its contacts, the deals the user may see, its closed deals
  and their outcome counts, recent suppressions, reflections and call debriefs (not the
  objection playbook, an organisation-wide aggregate the page keeps in a cache);
- the insights dashboard: the stored facts of one period and scope and its trend's summaries.

These views exist only in bench/urls.py, which no deployment serves; they trust the ids they
are given.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse
from django.template import Context, Engine
from django.utils import timezone

from accounts.models import Role, User
from customers.models import Company, Contact
from insights.models import Dimension, InsightFact, PeriodKind, ScopeKind, Source
from insights.periods import Period
from opportunities.models import CLOSED_STAGES, OPEN_STAGES, Opportunity, Product, ProductLine
from opportunities.views import PIPELINE_COUNT_CAP
from reflections.models import CallDebrief, Reflection
from suppressions.models import Suppression

TEMPLATES = Path(__file__).resolve().parent / "templates"
# As the pages show them (opportunities/brief.py, reflections/selectors.py, insights/selectors.py).
CLOSED_SHOWN, SUPPRESSIONS_SHOWN, RECENT_SUPPRESSION_DAYS = 20, 50, 90
REFLECTIONS_SHOWN, DEBRIEFS_SHOWN, TREND_PERIODS = 10, 10, 8


@cache
def _engine() -> Engine:
    # Its own engine with a cached loader: nothing of the site's templates, context processors
    # or base layout.
    return Engine(
        dirs=[str(TEMPLATES)],
        loaders=[
            ("django.template.loaders.cached.Loader", ["django.template.loaders.filesystem.Loader"])
        ],
        libraries={},
        builtins=[],
    )


def _render(template: str, context: dict) -> HttpResponse:
    return HttpResponse(_engine().get_template(template).render(Context(context)))


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _fetch(sql: str, params: list) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [col[0] for col in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _visible(user: User, alias: str = "o") -> tuple[str, list]:
    """The deals a rep or a manager may see, as the pipeline's selector scopes them."""
    if user.role == Role.REP:
        return f"{alias}.owner_id = %s", [user.pk]
    if user.role != Role.MANAGER:
        raise ValueError("The floors are defined for reps and managers.")
    people, managed = _table(User), _table(User.managed_teams.through)
    return (
        f"({alias}.owner_id = %s OR {alias}.owner_id IN (SELECT tu.id FROM {people} tu "
        f"JOIN {managed} mt ON mt.team_id = tu.team_id WHERE mt.user_id = %s))",
        [user.pk, user.pk],
    )


# --- the pipeline -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pipeline:
    """The list the floor draws: the pipeline's defaults, or one of the measured variants."""

    status: str = "open"  # "open" or "all"
    line: int | None = None
    amount_min: Decimal | None = None
    q: str = ""
    by_amount: bool = False  # the page's sort=-amount; else by expected close date
    after: tuple[datetime.date, int] | None = None  # keyset: rows after this (close date, id)

    @classmethod
    def from_query(cls, data) -> "Pipeline":
        after = None
        if data.get("after_close"):
            after = (datetime.date.fromisoformat(data["after_close"]), int(data["after_id"]))
        return cls(
            status="all" if data.get("status") == "all" else "open",
            line=int(data["line"]) if data.get("line") else None,
            amount_min=Decimal(data["amount_min"]) if data.get("amount_min") else None,
            q=data.get("q", "").strip(),
            by_amount=data.get("sort") == "-amount",
            after=after,
        )

    def query(self) -> str:
        values = {"status": self.status, "line": self.line, "amount_min": self.amount_min}
        values |= {"q": self.q, "sort": "-amount" if self.by_amount else ""}
        if self.after:
            values |= {"after_close": self.after[0].isoformat(), "after_id": self.after[1]}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _pipeline_sql(user: User, view: Pipeline) -> tuple[str, list]:
    """The page and the capped count as one statement; portable (PostgreSQL and SQLite)."""
    opp, company, product, line, people = (
        _table(m) for m in (Opportunity, Company, Product, ProductLine, User)
    )
    visible, where_params = _visible(user)
    where = [visible]
    if view.status == "open":
        where.append(f"o.stage IN ({', '.join(['%s'] * len(OPEN_STAGES))})")
        where_params += [str(stage) for stage in OPEN_STAGES]
    if view.line is not None:
        where.append(f"o.product_id IN (SELECT lp.id FROM {product} lp WHERE lp.line_id = %s)")
        where_params.append(view.line)
    if view.amount_min is not None:
        where.append("o.amount_reporting >= %s")
        where_params.append(view.amount_min)
    if view.q:
        like = "LIKE UPPER(%s) ESCAPE '\\'"
        companies = f"SELECT sc.id FROM {company} sc WHERE UPPER(sc.name) {like}"
        # On PostgreSQL, ARRAY(subquery) runs once, before the deals are read, so both sides of
        # the OR are index scans (a BitmapOr), as on the page; a plain IN (subquery) would be
        # tested against every deal in turn.
        postgres = connection.vendor == "postgresql"
        in_companies = f"= ANY(ARRAY({companies}))" if postgres else f"IN ({companies})"
        where.append(f"(UPPER(o.title) {like} OR o.company_id {in_companies})")
        where_params += [_like(view.q)] * 2
    page_where, page_params = list(where), list(where_params)
    if view.after is not None:
        if view.by_amount:
            raise ValueError("The floor's deep page is by expected close date.")
        page_where.append("(o.expected_close_date, o.id) > (%s, %s)")
        page_params += list(view.after)
    order = "amount_reporting DESC, id DESC" if view.by_amount else "expected_close_date, id"
    sql = f"""
        WITH page AS (
            SELECT o.id, o.title, c.name AS company, p.name AS product, l.name AS line,
                   o.stage, u.full_name AS owner, o.currency, o.amount, o.amount_reporting,
                   o.expected_close_date, o.next_step, o.next_step_due
            FROM {opp} o
            JOIN {company} c ON c.id = o.company_id
            JOIN {product} p ON p.id = o.product_id
            JOIN {line} l ON l.id = p.line_id
            JOIN {people} u ON u.id = o.owner_id
            WHERE {" AND ".join(page_where)}
            ORDER BY {", ".join(f"o.{column}" for column in order.split(", "))}
            LIMIT %s
        ), total AS (
            SELECT count(*) AS n
            FROM (SELECT 1 FROM {opp} o WHERE {" AND ".join(where)} LIMIT %s) capped
        )
        SELECT page.*, total.n FROM page, total ORDER BY {order}
    """
    size = settings.DEBRIEF_PIPELINE_PAGE_SIZE
    return sql, [*page_params, size + 1, *where_params, PIPELINE_COUNT_CAP + 1]


def page_rows(user: User, view: Pipeline | None = None) -> tuple[list[dict], int]:
    """A page of the pipeline's rows and the capped count of the whole list, in one query."""
    rows = _fetch(*_pipeline_sql(user, view or Pipeline()))
    count = rows[0]["n"] if rows else 0
    return rows[: settings.DEBRIEF_PIPELINE_PAGE_SIZE], count


@login_required
def pipeline_floor(request):
    rows, count = page_rows(request.user, Pipeline.from_query(request.GET))
    return _render("bench/floor.html", {"rows": rows, "count": count, "cap": PIPELINE_COUNT_CAP})


# --- the company page ---------------------------------------------------------------------------
def _company_sql(user: User) -> tuple[str, list]:
    """Every section's rows as one UNION ALL: (section, id, a, b, c, d), text but the id."""
    company, contact, opp, people, product = (
        _table(m) for m in (Company, Contact, Opportunity, User, Product)
    )
    suppression, reflection, debrief = (_table(m) for m in (Suppression, Reflection, CallDebrief))
    visible, visible_params = _visible(user)
    open_in = ", ".join(["%s"] * len(OPEN_STAGES))
    closed_in = ", ".join(["%s"] * len(CLOSED_STAGES))
    opened = [str(s) for s in OPEN_STAGES]
    closed = [str(s) for s in CLOSED_STAGES]

    def text(column: str) -> str:
        return f"CAST({column} AS TEXT)"

    parts = [
        (
            f"SELECT 'company' AS section, id, name AS a, domain AS b, segment AS c, "
            f"region AS d FROM {company} WHERE id = %s",
            [],
        ),
        (
            f"SELECT 'contact', id, full_name, title, email, phone FROM {contact} "
            "WHERE company_id = %s",
            [],
        ),
        (
            f"SELECT 'open', o.id, o.title, o.stage, {text('o.amount')}, "
            f"{text('o.expected_close_date')} FROM {opp} o "
            f"WHERE o.company_id = %s AND o.stage IN ({open_in}) AND {visible}",
            [*opened, *visible_params],
        ),
        (
            f"SELECT * FROM (SELECT 'closed', o.id, o.title, o.stage, u.full_name, "
            f"{text('o.closed_date')} FROM {opp} o JOIN {people} u ON u.id = o.owner_id "
            f"WHERE o.company_id = %s AND o.stage IN ({closed_in}) "
            f"ORDER BY o.closed_date DESC, o.id DESC LIMIT {CLOSED_SHOWN}) closed_deals",
            closed,
        ),
        (
            f"SELECT 'outcome', count(*), stage, NULL, NULL, NULL FROM {opp} "
            f"WHERE company_id = %s AND stage IN ({closed_in}) GROUP BY stage",
            closed,
        ),
        (
            f"SELECT * FROM (SELECT 'suppression', id, reason, scope, {text('starts_on')}, "
            f"{text('until')} FROM {suppression} WHERE company_id = %s "
            "AND (until IS NULL OR until >= %s) "
            f"ORDER BY starts_on DESC, id DESC LIMIT {SUPPRESSIONS_SHOWN}) suppressions",
            [timezone.localdate() - datetime.timedelta(days=RECENT_SUPPRESSION_DAYS)],
        ),
        (
            f"SELECT * FROM (SELECT 'reflection', r.id, r.outcome, o.title, u.full_name, "
            f"{text('r.closed_date')} FROM {reflection} r "
            f"JOIN {opp} o ON o.id = r.opportunity_id JOIN {people} u ON u.id = r.author_id "
            "WHERE o.company_id = %s AND r.current "
            f"ORDER BY r.closed_date DESC, r.id DESC LIMIT {REFLECTIONS_SHOWN}) reflections",
            [],
        ),
        (
            f"SELECT * FROM (SELECT 'debrief', d.id, d.customer_said, d.next_step, "
            f"u.full_name, {text('d.call_date')} FROM {debrief} d "
            f"JOIN {people} u ON u.id = d.author_id WHERE d.company_id = %s "
            f"ORDER BY d.call_date DESC, d.id DESC LIMIT {DEBRIEFS_SHOWN}) debriefs",
            [],
        ),
    ]
    return " UNION ALL ".join(sql for sql, _ in parts), parts


def company_rows(user: User, company_id: int) -> dict[str, list[dict]]:
    """The company page's own rows by section, in one query."""
    sql, parts = _company_sql(user)
    params = []
    for _sql, extra in parts:
        # The company id comes first in every part's WHERE.
        params += [company_id, *extra]
    sections: dict[str, list[dict]] = {}
    for row in _fetch(sql, params):
        sections.setdefault(row["section"], []).append(row)
    return sections


@login_required
def company_floor(request, company_id: int):
    sections = company_rows(request.user, company_id)
    return _render("bench/company_floor.html", {"s": sections})


# --- the insights dashboard ---------------------------------------------------------------------
def insight_rows(kind: str, period: Period, scope_kind: str, scope_key: str) -> list[dict]:
    """The facts of one period and scope and its trend's summaries, in one query."""
    trend = [period.shift(-i).start for i in range(TREND_PERIODS - 1, 0, -1)]
    sql = f"""
        SELECT period_start, dimension, source, key, label, outcome, deals, base, rate,
               win_rate, amount_won, amount_lost, avg_cycle_days, prev_rate, change,
               rate_low, rate_high, significant, headline
        FROM {_table(InsightFact)}
        WHERE period_kind = %s AND scope_kind = %s AND scope_key = %s
          AND (period_start = %s
               OR (dimension = %s AND period_start IN ({", ".join(["%s"] * len(trend))})))
        ORDER BY period_start, dimension, deals DESC, label
    """
    params = [kind, scope_kind, scope_key, period.start, Dimension.SUMMARY.value, *trend]
    return _fetch(sql, params)


@login_required
def insights_floor(request):
    kind = request.GET.get("kind") or PeriodKind.QUARTER
    day = request.GET.get("period")
    period = Period.containing(
        kind, datetime.date.fromisoformat(day) if day else timezone.localdate()
    )
    scope_kind, _, scope_key = (request.GET.get("scope") or ScopeKind.ORG).partition(":")
    rows = insight_rows(kind, period, scope_kind, scope_key)
    # str(): SQLite hands back dates as text to a raw cursor.
    current = [r for r in rows if str(r["period_start"]) == period.start.isoformat()]
    summary = next((r for r in current if r["dimension"] == Dimension.SUMMARY), None)
    context = {
        "period": period,
        "k": settings.DEBRIEF_INSIGHT_MIN_SLICE,
        "summary": summary,
        "trend": [r for r in rows if r["dimension"] == Dimension.SUMMARY],
        "facts": [
            r for r in current if r["dimension"] != Dimension.SUMMARY and r["source"] == Source.ALL
        ],
    }
    return _render("bench/insights_floor.html", context)
