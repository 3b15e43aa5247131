"""
The pipeline's part of a customer's pre-call brief (listed in DEBRIEF_BRIEF_SECTIONS): the
open deals the user may see, and the customer's closed deals across the organisation.
"""

from django.db.models import Count, Exists, OuterRef

from opportunities.models import CLOSED_STAGES, OPEN_STAGES, Stage
from opportunities.selectors import opportunities_visible_to

CLOSED_SHOWN = 20


def sections(request, company) -> list[dict]:
    visible = opportunities_visible_to(request.user).filter(company=company)
    open_deals = list(
        visible.filter(stage__in=OPEN_STAGES)
        .select_related("owner", "product", "contact")
        .order_by("expected_close_date", "id")
    )
    # The customer's history is everyone's: closed deals are listed org-wide, linked only
    # where the user may open them.
    closed_deals = list(
        company.opportunities.filter(stage__in=CLOSED_STAGES)
        .select_related("owner", "product")
        .annotate(can_open=Exists(visible.filter(pk=OuterRef("pk"))))
        .order_by("-closed_date", "-id")[:CLOSED_SHOWN]
    )
    outcomes = dict(
        company.opportunities.filter(stage__in=CLOSED_STAGES)
        .values_list("stage")
        .annotate(n=Count("id"))
        .order_by()
    )
    closed_total = sum(outcomes.values())
    return [
        {
            "slot": "deals",
            "template": "opportunities/brief/deals.html",
            "context": {
                "company": company,
                "open_deals": open_deals,
                "closed_deals": closed_deals,
                "closed_total": closed_total,
                "closed_hidden": closed_total - len(closed_deals),
                "won_count": outcomes.get(Stage.WON, 0),
                "lost_count": outcomes.get(Stage.LOST, 0),
                "no_decision_count": outcomes.get(Stage.NO_DECISION, 0),
            },
        }
    ]
