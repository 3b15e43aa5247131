"""
The insights' part of a customer's pre-call brief (listed in DEBRIEF_BRIEF_SECTIONS): the
objection playbook, read from the rows the rollup stores.
"""

from insights.playbook import playbook_for


def sections(request, company) -> list[dict]:
    """The objection playbook for the products of the company's open deals."""
    return [
        {
            "slot": "main",
            "template": "insights/brief/playbook.html",
            "context": playbook_for(company.pk),
            # After past outcomes (10) and the buyers' own words (20), before call debriefs.
            "order": 50,
        }
    ]
