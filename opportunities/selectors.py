"""Reads of the pipeline, always scoped to the user through accounts.access."""

import datetime

from django.db.models import Count, QuerySet
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
