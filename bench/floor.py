"""
The floor: the pipeline's first page (open deals, soonest expected close first, the capped count)
fetched with ONE raw SQL query and rendered by a minimal template, behind the same middleware,
session and login as the real page. The pipeline page's median divided by this one's says how
much the ORM, the filter form, the pager and the full template cost on top of what the page
cannot do without.
"""

from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse
from django.template import Context, Engine

from accounts.models import Role, User
from customers.models import Company
from opportunities.models import OPEN_STAGES, Opportunity, Product, ProductLine
from opportunities.views import PIPELINE_COUNT_CAP

TEMPLATES = Path(__file__).resolve().parent / "templates"


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


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@cache
def _sql(scope: str) -> str:
    """The page and the capped count as one statement; portable (PostgreSQL and SQLite)."""
    opp, company, product, line, user = (
        _table(m) for m in (Opportunity, Company, Product, ProductLine, User)
    )
    managed = _table(User.managed_teams.through)
    stages = ", ".join(["%s"] * len(OPEN_STAGES))
    if scope == "rep":
        visible = "o.owner_id = %s"
    else:
        visible = (
            f"(o.owner_id = %s OR o.owner_id IN (SELECT tu.id FROM {user} tu "
            f"JOIN {managed} mt ON mt.team_id = tu.team_id WHERE mt.user_id = %s))"
        )
    where = f"{visible} AND o.stage IN ({stages})"
    return f"""
        WITH page AS (
            SELECT o.id, o.title, c.name AS company, p.name AS product, l.name AS line,
                   o.stage, u.full_name AS owner, o.currency, o.amount, o.expected_close_date,
                   o.next_step, o.next_step_due
            FROM {opp} o
            JOIN {company} c ON c.id = o.company_id
            JOIN {product} p ON p.id = o.product_id
            JOIN {line} l ON l.id = p.line_id
            JOIN {user} u ON u.id = o.owner_id
            WHERE {where}
            ORDER BY o.expected_close_date, o.id
            LIMIT %s
        ), total AS (
            SELECT count(*) AS n FROM (SELECT 1 FROM {opp} o WHERE {where} LIMIT %s) capped
        )
        SELECT page.*, total.n FROM page, total ORDER BY page.expected_close_date, page.id
    """


def page_rows(user: User) -> tuple[list[dict], int]:
    """The first page's rows and the capped count, in one query."""
    if user.role == Role.ADMIN:
        raise ValueError("The floor is defined for reps and managers.")
    scope = "rep" if user.role == Role.REP else "manager"
    size = settings.DEBRIEF_PIPELINE_PAGE_SIZE
    where = [user.pk] if scope == "rep" else [user.pk, user.pk]
    where += [str(stage) for stage in OPEN_STAGES]
    params = [*where, size + 1, *where, PIPELINE_COUNT_CAP + 1]
    with connection.cursor() as cursor:
        cursor.execute(_sql(scope), params)
        names = [col[0] for col in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    count = rows[0]["n"] if rows else 0
    return rows[:size], count


@login_required
def pipeline_floor(request):
    rows, count = page_rows(request.user)
    html = (
        _engine()
        .get_template("bench/floor.html")
        .render(Context({"rows": rows, "count": count, "cap": PIPELINE_COUNT_CAP}))
    )
    return HttpResponse(html)
