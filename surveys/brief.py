"""
The surveys' parts of the deal page (ask the buyer, and what they said) and of the customer's
pre-call brief (the buyer's own words), collected through settings without customers or
opportunities importing this app.
"""

from accounts import access
from opportunities import brief as opportunities_brief
from surveys import selectors, services


def deal_sections(request, opportunity) -> list[dict]:
    """On a closed deal: the survey requests with their status, and ask (or why not)."""
    if opportunity.is_open:
        return []
    requests = list(selectors.requests_of(opportunity).prefetch_related("answers__question"))
    can_act = access.can_act_for(request.user, opportunity.owner)
    # Once this close has its survey, the request above says where it stands.
    asked = any(r.reflection.current for r in requests)
    refusal = services.refusal(opportunity) if can_act and not asked else None
    return [
        {
            "slot": "main",
            "template": "surveys/deal/surveys.html",
            "order": 110,  # after the deal's reflection
            "context": {
                "deal": opportunity,
                "requests": requests,
                "can_ask": can_act and not asked,
                "refusal": refusal,
            },
        }
    ]


def sections(request, company) -> list[dict]:
    """What buyers said in their own words, next to the reps' reflections."""
    return [
        {
            "slot": "main",
            "template": "surveys/brief/buyer_words.html",
            "context": {
                "surveys": selectors.buyer_words(opportunities_brief.deal_ids(request, company))
            },
            # Right after the reps' reflections: the two accounts of the same closes.
            "order": 20,
        }
    ]
