"""
The suppressions app's parts of pages that earlier apps own, collected through settings so
that those apps never import this one: the company page's "Do not pitch" section and its
"Do not contact…" button (DEBRIEF_BRIEF_SECTIONS), and the exception requests waiting at the
top of a manager's home (DEBRIEF_HOME_SECTIONS).
"""

from suppressions import decisions, selectors, services

# Requests shown on a manager's home; the rest are a link away, on the Exceptions page.
WAITING_SHOWN = 5


def sections(request, company) -> list[dict]:
    # The contacts the company page prefetched (selectors.company_for_brief), or read here.
    contacts = list(company.contacts.all())
    suppressions = selectors.suppressions_of(company, contacts=contacts)
    for row in (*suppressions["active"], *suppressions["ended"]):
        row.description = decisions.describe(row)
    context = {
        "company": company,
        "suppressions": suppressions,
        "suppression_groups": selectors.group_suppressions(suppressions["active"]),
        "can_lift": services.can_lift(request.user),
    }
    return [
        {"slot": "actions", "template": "suppressions/brief/actions.html", "context": context},
        {
            "slot": "suppressions",
            "template": "suppressions/brief/suppressions.html",
            "context": context,
        },
    ]


def home_sections(request) -> list[dict]:
    """A manager's (or administrator's) home starts with what waits for their decision."""
    if request.user.is_rep:
        return []
    waiting = list(selectors.overrides_waiting_for(request.user)[:WAITING_SHOWN])
    return [
        {
            "slot": "top",
            "template": "suppressions/brief/waiting.html",
            "context": {"waiting": waiting},
        }
    ]
