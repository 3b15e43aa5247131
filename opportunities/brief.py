"""
The pipeline's part of a customer's pre-call brief (listed in DEBRIEF_BRIEF_SECTIONS): the
open deals the user may see, and the customer's closed deals across the organisation.
"""

from django.db.models import Count, Exists, OuterRef, Q, Window

from opportunities.models import CLOSED_STAGES, OPEN_STAGES, Opportunity, Stage
from opportunities.selectors import opportunities_visible_to

CLOSED_SHOWN = 20


def open_deals(request, company) -> list[Opportunity]:
    """
    The open deals at `company` that the user may see, closing soonest first. Read once per
    request: the deals section lists them and the debrief form (reflections) offers them.
    """
    memo = request.__dict__.setdefault("_brief_open_deals", {})
    if company.pk not in memo:
        memo[company.pk] = list(
            opportunities_visible_to(request.user)
            .filter(company=company, stage__in=OPEN_STAGES)
            .select_related("owner", "product", "contact")
            .order_by("expected_close_date", "id")
        )
    return memo[company.pk]


def deal_ids(request, company) -> list[int]:
    """
    The ids of every deal at `company`, read once per request. Later apps' sections ask for
    "the latest N of this company's reflections / surveys" by these ids: joined to the deals
    instead, PostgreSQL walks the whole table by date looking for an old company's few
    (1.5 s on the extra-large set), as it cannot know the company's rows are all old.
    """
    memo = request.__dict__.setdefault("_brief_deal_ids", {})
    if company.pk not in memo:
        memo[company.pk] = list(
            Opportunity.objects.filter(company=company).order_by().values_list("id", flat=True)
        )
    return memo[company.pk]


def sections(request, company) -> list[dict]:
    visible = opportunities_visible_to(request.user).filter(company=company)
    # The customer's history is everyone's: closed deals are listed org-wide, linked only
    # where the user may open them. Each row carries the counts of every outcome there (a
    # window over all of them, taken before the LIMIT), so the totals cost no query of their own.
    closed_deals = list(
        company.opportunities.filter(stage__in=CLOSED_STAGES)
        .select_related("owner", "product")
        .annotate(
            can_open=Exists(visible.filter(pk=OuterRef("pk"))),
            **{
                f"total_{stage}": Window(Count("id", filter=Q(stage=stage)))
                for stage in CLOSED_STAGES
            },
        )
        .order_by("-closed_date", "-id")[:CLOSED_SHOWN]
    )
    first = closed_deals[0] if closed_deals else None
    outcomes = {stage: getattr(first, f"total_{stage}", 0) for stage in CLOSED_STAGES}
    closed_total = sum(outcomes.values())
    return [
        {
            "slot": "deals",
            "template": "opportunities/brief/deals.html",
            "context": {
                "company": company,
                "open_deals": open_deals(request, company),
                "closed_deals": closed_deals,
                "closed_total": closed_total,
                "closed_hidden": closed_total - len(closed_deals),
                "won_count": outcomes.get(Stage.WON, 0),
                "lost_count": outcomes.get(Stage.LOST, 0),
                "no_decision_count": outcomes.get(Stage.NO_DECISION, 0),
            },
        }
    ]
