"""Reads of the pipeline, always scoped to the user through accounts.access."""

import datetime

from django.core.cache import cache
from django.db.models import Count, IntegerField, QuerySet, Window
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts import access
from accounts.models import Role, User
from crm_site.urlmakers import id_url
from opportunities.guard import guard
from opportunities.models import OPEN_STAGES, Opportunity, Product


def opportunities_visible_to(user: User) -> QuerySet[Opportunity]:
    """Deals the user may see: own (rep), their teams' (manager), all (admin)."""
    return Opportunity.objects.filter(access.owner_q(user))


def _with_related(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    return queryset.select_related(
        "company", "contact", "product", "product__line", "owner", "primary_competitor"
    )


def _for_lists(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    """Just what a row in a list shows (company, product and line, owner): a narrower join."""
    return queryset.select_related("company", "product__line", "owner")


# What a pipeline row shows (opportunities/templatetags/pipeline_table.py), as plain dicts:
# a page of rows then costs no model building, and the joins follow from the lookups.
PIPELINE_COLUMNS = (
    "id",
    "title",
    "stage",
    "amount",
    "currency",
    "amount_reporting",
    "expected_close_date",
    "next_step",
    "next_step_due",
    "company__name",
    "product__name",
    "product__line__name",
    "owner__full_name",
    # What the pitch guard's flags_for_deals() needs to flag the deals a suppression now covers.
    "company_id",
    "contact_id",
    "product_id",
    "product__line_id",
)


def pipeline_people(user: User) -> list[tuple[int, str]] | None:
    """
    For a manager, the people whose deals they may see, as (id, name) by name: the owner
    filter's choices, and (passed to pipeline_for) the pipeline's visibility, so one query
    serves both instead of the owner choices and the manager's team ids. None for others.
    """
    if user.role != Role.MANAGER:
        return None
    return [
        (pk, full_name or email)
        for pk, full_name, email in access.users_visible_to(user)
        .order_by("full_name", "email")
        .values_list("pk", "full_name", "email")
    ]


def pipeline_for(
    user: User, *, people: list[tuple[int, str]] | None = None
) -> QuerySet[Opportunity]:
    """
    The pipeline's deals before filtering: those the user may see (filters narrow it). With a
    manager's `people` (pipeline_people), the deals of those people: the same rows as
    access.owner_q gives, read without the team ids and the join to each deal's owner.
    """
    if people is not None:
        return Opportunity.objects.filter(owner_id__in=[pk for pk, _name in people])
    return opportunities_visible_to(user)


# The key under which each pipeline row carries the capped count of the whole list.
PIPELINE_COUNT_KEY = "pipeline_capped_count"


def pipeline_rows(queryset: QuerySet[Opportunity], *, count_upto: int | None = None) -> QuerySet:
    """
    A filtered pipeline queryset as one dict per deal with PIPELINE_COLUMNS (every sort key is
    among them). With `count_upto`, every row also carries, under PIPELINE_COUNT_KEY, how many
    rows the filtered queryset has, counting no further than count_upto: a scalar subquery the
    database runs once, so a page and its count cost one round trip. The count reads the
    filtered queryset itself, without the joins the columns need.
    """
    rows = queryset.values(*PIPELINE_COLUMNS)
    if count_upto is None:
        return rows
    sql, params = queryset.order_by().values("pk")[:count_upto].query.sql_with_params()
    count = RawSQL(f"SELECT COUNT(*) FROM ({sql}) capped", params, output_field=IntegerField())
    return rows.annotate(**{PIPELINE_COUNT_KEY: count})


def opportunity_for(user: User, opportunity_id: int) -> Opportunity:
    """One deal the user may see, or 404 (a forged id looks like a missing one)."""
    return access.get_or_404(_with_related(opportunities_visible_to(user)), pk=opportunity_id)


def open_opportunity_counts_by_stage(user: User) -> dict[str, int]:
    """How many open deals sit in each stage, in one GROUP BY."""
    rows = (
        opportunities_visible_to(user)
        .filter(stage__in=OPEN_STAGES)
        .values("stage")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {stage.value: 0 for stage in OPEN_STAGES}
    counts.update({row["stage"]: row["n"] for row in rows})
    return counts


def next_steps_for(user: User) -> QuerySet[Opportunity]:
    """The user's own open deals that have a next step, soonest due first."""
    return _for_lists(
        Opportunity.objects.filter(owner=user, stage__in=OPEN_STAGES, next_step_due__isnull=False)
    ).order_by("next_step_due", "id")


def week_bounds(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    """Today and the last day of this week (Sunday), in the organisation's time zone."""
    today = today or timezone.localdate()
    return today, today + datetime.timedelta(days=6 - today.weekday())


# Products and lines change in the admin, rarely; the pipeline's filters list them on every
# view. Saving or deleting either clears this (opportunities/receivers.py); the timeout is a
# backstop for changes that skip model signals (bulk updates).
CATALOGUE_CACHE_KEY = "opportunities:catalogue"
CATALOGUE_CACHE_SECONDS = 300


def catalogue() -> list[Product]:
    """Every product (retired ones too) with its line, by line name and product name."""
    products = cache.get(CATALOGUE_CACHE_KEY)
    if products is None:
        products = list(Product.objects.select_related("line").order_by("line__name", "name"))
        cache.set(CATALOGUE_CACHE_KEY, products, CATALOGUE_CACHE_SECONDS)
    return products


def forget_catalogue() -> None:
    cache.delete(CATALOGUE_CACHE_KEY)


def products_for_picking() -> QuerySet[Product]:
    return Product.objects.filter(active=True, line__active=True).select_related("line")


BOARD_CARDS_PER_STAGE = 30
# The "Close as …" links of a deal in a list (board cards, pipeline rows), in this order.
CLOSE_AS = (("won", "Won"), ("lost", "Lost"), ("no_decision", "No decision"))
PLAN_UNPLANNED_SHOWN = 15
PLAN_LATER_SHOWN = 20


def board_for(user: User) -> list[dict]:
    """
    One column per open stage with the deals closing soonest (at most BOARD_CARDS_PER_STAGE
    each) and the column's full count. One LIMITed query per stage: each is a short walk of
    the open-deal index, where ranking every visible open deal with a window function cost a
    manager 280 ms on 100,000 deals. (A UNION ALL of the four would save three round trips,
    but SQLite refuses LIMIT inside a compound statement.)
    """
    visible = _for_lists(opportunities_visible_to(user)).order_by("expected_close_date", "id")
    cards = {
        stage.value: list(visible.filter(stage=stage)[:BOARD_CARDS_PER_STAGE])
        for stage in OPEN_STAGES
    }
    # Up to 120 cards with five links each: paths reversed once, not once per link.
    detail_url, move_url = id_url("opportunities:detail"), id_url("opportunities:move")
    close_urls = [(id_url("reflections:close", outcome), label) for outcome, label in CLOSE_AS]
    every_card = [card for column in cards.values() for card in column]
    flags = guard().flags_for_deals(
        (c.pk, c.company_id, c.contact_id, c.product_id, c.product.line_id) for c in every_card
    )
    for card in every_card:
        card.detail_url, card.move_url = detail_url(card.pk), move_url(card.pk)
        card.close_urls = [(url(card.pk), label) for url, label in close_urls]
        card.suppression_flag = flags.get(card.pk)
    counts = open_opportunity_counts_by_stage(user)
    columns = []
    for index, stage in enumerate(OPEN_STAGES):
        columns.append(
            {
                "stage": stage.value,
                "label": stage.label,
                "cards": cards[stage.value],
                "count": counts[stage.value],
                "hidden": counts[stage.value] - len(cards[stage.value]),
                "previous": OPEN_STAGES[index - 1] if index > 0 else None,
                "next": OPEN_STAGES[index + 1] if index + 1 < len(OPEN_STAGES) else None,
            }
        )
    return columns


def plan_for(user: User, today: datetime.date | None = None) -> dict:
    """
    The user's own open deals by next-step due date: everything overdue and due this week,
    the next PLAN_LATER_SHOWN due later (with how many more there are), and a few open deals
    with no next step yet, so nothing drifts.
    """
    today, end_of_week = week_bounds(today)
    plan: dict = {"overdue": [], "this_week": [], "today": today}
    steps = next_steps_for(user)
    for opportunity in steps.filter(next_step_due__lte=end_of_week):
        group = "overdue" if opportunity.next_step_due < today else "this_week"
        plan[group].append(opportunity)
    # The whole group's size rides along on every row (a window over the unsliced set).
    later = list(
        steps.filter(next_step_due__gt=end_of_week).annotate(group_size=Window(Count("id")))[
            :PLAN_LATER_SHOWN
        ]
    )
    plan["later"] = later
    plan["later_total"] = later[0].group_size if later else 0
    plan["more_later"] = plan["later_total"] - len(later)
    unplanned = list(
        _for_lists(
            Opportunity.objects.filter(
                owner=user, stage__in=OPEN_STAGES, next_step_due__isnull=True
            )
        ).order_by("expected_close_date", "id")[: PLAN_UNPLANNED_SHOWN + 1]
    )
    plan["unplanned"] = unplanned[:PLAN_UNPLANNED_SHOWN]
    plan["more_unplanned"] = len(unplanned) > PLAN_UNPLANNED_SHOWN
    plan["has_any"] = any(plan[k] for k in ("overdue", "this_week", "later", "unplanned"))
    return plan
