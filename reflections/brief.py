"""
The reflections' part of a customer's pre-call brief. The company page (customers) renders
the sections listed in settings.DEBRIEF_BRIEF_SECTIONS without importing this app.
"""

from accounts import access
from opportunities import brief as opportunities_brief
from reflections import selectors, services
from reflections.forms import CallDebriefForm


def debrief_context(request, company, form=None, debriefs=None) -> dict:
    return {
        "company": company,
        "debriefs": selectors.recent_debriefs(company.pk) if debriefs is None else debriefs,
        "debrief_form": form or CallDebriefForm(company=company, user=request.user),
    }


def sections(request, company) -> list[dict]:
    """
    Pinned high-card debriefs on top; past reflections and debriefs below. (The objection
    playbook between them is stored by the insights rollup: insights.brief.)
    """
    pinned, debriefs = selectors.brief_debriefs(company.pk)
    # The form offers the company's contacts (prefetched by the company page) and the open
    # deals the deals section lists without reading either again, and the objections as a list.
    form = CallDebriefForm(
        company=company,
        user=request.user,
        contacts=company.contacts.all(),
        deals=opportunities_brief.open_deals(request, company),
        objections=list(selectors.active_objections()),
    )
    return [
        {
            "slot": "top",
            "template": "reflections/brief/pinned.html",
            "context": {"company": company, "pinned": pinned},
        },
        {
            "slot": "main",
            "template": "reflections/brief/reflections.html",
            "context": {
                "reflections": selectors.company_reflections(
                    opportunities_brief.deal_ids(request, company)
                )
            },
            "order": 10,
        },
        {
            "slot": "main",
            "template": "reflections/brief/debriefs.html",
            "context": debrief_context(request, company, form, debriefs),
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
