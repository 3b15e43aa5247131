"""Reads of the pipeline, always scoped to the user through accounts.access."""

import datetime

from django.db.models import Count, F, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from accounts import access
from accounts.models import User
from opportunities.models import OPEN_STAGES, Opportunity, Product


def opportunities_visible_to(user: User) -> QuerySet[Opportunity]:
    """Deals the user may see: own (rep), their teams' (manager), all (admin)."""
    return Opportunity.objects.filter(access.owner_q(user))


def _with_related(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    return queryset.select_related(
        "company", "contact", "product", "product__line", "owner", "primary_competitor"
    )


def pipeline_for(user: User) -> QuerySet[Opportunity]:
    """The pipeline list's base queryset (filters and ordering are applied by the view)."""
    return _with_related(opportunities_visible_to(user))


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
    return _with_related(
        Opportunity.objects.filter(owner=user, stage__in=OPEN_STAGES, next_step_due__isnull=False)
    ).order_by("next_step_due", "id")


def week_bounds(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    """Today and the last day of this week (Sunday), in the organisation's time zone."""
    today = today or timezone.localdate()
    return today, today + datetime.timedelta(days=6 - today.weekday())


def products_for_picking() -> QuerySet[Product]:
    return Product.objects.filter(active=True, line__active=True).select_related("line")


BOARD_CARDS_PER_STAGE = 30
PLAN_UNPLANNED_SHOWN = 15


def board_for(user: User) -> list[dict]:
    """
    One column per open stage with the deals closing soonest (at most BOARD_CARDS_PER_STAGE
    each, picked in one query with a window function) and the column's full count.
    """
    ranked = (
        _with_related(opportunities_visible_to(user).filter(stage__in=OPEN_STAGES))
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=F("stage"),
                order_by=[F("expected_close_date").asc(), F("id").asc()],
            )
        )
        .filter(position__lte=BOARD_CARDS_PER_STAGE)
        .order_by("stage", "position")
    )
    cards: dict[str, list[Opportunity]] = {stage.value: [] for stage in OPEN_STAGES}
    for opportunity in ranked:
        cards[opportunity.stage].append(opportunity)
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
    The user's own open deals by next-step due date: overdue, this week, later; and a few
    open deals with no next step yet, so nothing drifts.
    """
    today, end_of_week = week_bounds(today)
    plan: dict = {"overdue": [], "this_week": [], "later": [], "today": today}
    for opportunity in next_steps_for(user):
        if opportunity.next_step_due < today:
            plan["overdue"].append(opportunity)
        elif opportunity.next_step_due <= end_of_week:
            plan["this_week"].append(opportunity)
        else:
            plan["later"].append(opportunity)
    unplanned = list(
        _with_related(
            Opportunity.objects.filter(
                owner=user, stage__in=OPEN_STAGES, next_step_due__isnull=True
            )
        ).order_by("expected_close_date", "id")[: PLAN_UNPLANNED_SHOWN + 1]
    )
    plan["unplanned"] = unplanned[:PLAN_UNPLANNED_SHOWN]
    plan["more_unplanned"] = len(unplanned) > PLAN_UNPLANNED_SHOWN
    plan["has_any"] = any(plan[k] for k in ("overdue", "this_week", "later", "unplanned"))
    return plan
