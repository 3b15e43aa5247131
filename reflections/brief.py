"""
The reflections' part of a customer's pre-call brief. The company page (customers) renders
the sections listed in settings.DEBRIEF_BRIEF_SECTIONS without importing this app.
"""

from django.core.cache import cache
from django.utils import timezone

from accounts import access
from opportunities.models import OPEN_STAGES, Opportunity
from reflections import selectors, services
from reflections.forms import CallDebriefForm

# The playbook is organisation-wide: the same for every company with the same open products,
# and its two aggregate queries read a year of reflections (about 0.5 s on 60,000 of them).
# Everyone looking at such companies shares one copy for a few minutes; a reflection submitted
# meanwhile shows up when it expires.
PLAYBOOK_CACHE_SECONDS = 600


def cached_playbook(product_ids: list[int]) -> list[dict]:
    if not product_ids:
        return []
    today = timezone.localdate()
    key = f"reflections:playbook:{today.isoformat()}:{','.join(map(str, sorted(product_ids)))}"
    return cache.get_or_set(
        key, lambda: selectors.objection_playbook(product_ids, today=today), PLAYBOOK_CACHE_SECONDS
    )


def debrief_context(request, company, form=None) -> dict:
    return {
        "company": company,
        "debriefs": selectors.recent_debriefs(company.pk),
        "debrief_form": form or CallDebriefForm(company=company, user=request.user),
    }


def sections(request, company) -> list[dict]:
    """Pinned high-card debriefs on top; past reflections, the playbook and debriefs below."""
    product_ids = list(
        Opportunity.objects.filter(company=company, stage__in=OPEN_STAGES)
        .order_by()
        .values_list("product_id", flat=True)
        .distinct()
    )
    return [
        {
            "slot": "top",
            "template": "reflections/brief/pinned.html",
            "context": {"company": company, "pinned": selectors.high_card_debriefs(company.pk)},
        },
        {
            "slot": "main",
            "template": "reflections/brief/reflections.html",
            "context": {"reflections": selectors.company_reflections(company.pk)},
            "order": 10,
        },
        {
            "slot": "main",
            "template": "reflections/brief/playbook.html",
            "context": {
                "playbook": cached_playbook(product_ids),
                "has_open_deals": bool(product_ids),
            },
        },
        {
            "slot": "main",
            "template": "reflections/brief/debriefs.html",
            "context": debrief_context(request, company),
        },
    ]


def deal_sections(request, opportunity) -> list[dict]:
    """On the deal page: close or reopen buttons, and the deal's reflections."""
    can_act = access.can_act_for(request.user, opportunity.owner)
    reflections = list(selectors.reflections_of(opportunity))
    for reflection in reflections:
        reflection.can_amend = services.can_amend(request.user, reflection)
    return [
        {
            "slot": "actions",
            "template": "reflections/deal/actions.html",
            "context": {"deal": opportunity, "can_act": can_act},
        },
        {
            "slot": "main",
            "template": "reflections/deal/reflections.html",
            "context": {"deal": opportunity, "reflections": reflections},
        },
    ]
