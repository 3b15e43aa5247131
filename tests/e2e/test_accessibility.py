"""axe-core on the main pages: no serious or critical accessibility violations."""

import pytest
from django.conf import settings

from tests.e2e.conftest import axe_violations, login, shot
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_main_pages_have_no_serious_accessibility_violations(axe_page, rep, defaults):
    company = CompanyFactory(name="Brightwater Foods")
    contact = ContactFactory(company=company)
    deal = OpportunityFactory(owner=rep, company=company, contact=contact, next_step="Call back")
    page = axe_page
    page.goto("/accounts/login/")
    found = {"login": axe_violations(page)}
    page.goto("/accounts/password/reset/")
    found["password-reset"] = axe_violations(page)
    login(page, rep.email, settings.DEBRIEF_DEMO_PASSWORD)
    pages = {
        "plan": "/plan/",
        "pipeline": "/opportunities/",
        "board": "/opportunities/board/",
        "deal": f"/opportunities/{deal.pk}/",
        "deal-form": "/opportunities/new/",
        "close-form": f"/opportunities/{deal.pk}/close/lost/",
        "company": f"/companies/{company.pk}/",
        "insights": "/insights/",
        "call-list": "/suppressions/check/",
        "exceptions": "/suppressions/exceptions/",
        "companies": "/companies/",
        "new-company": "/companies/new/",
        "debriefs": f"/companies/{company.pk}/debriefs/",
        "my-reflections": "/me/reflections/",
        "my-team": f"/teams/{rep.team_id}/",
        "password-change": "/accounts/password/change/",
    }
    for name, path in pages.items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found[name] = axe_violations(page)
        if found[name]:
            shot(page, f"axe-{name}")
    # The close form also opens inline on the deal page.
    page.goto(f"/opportunities/{deal.pk}/")
    page.click("a:has-text('Lost')")
    page.wait_for_selector("#modal .modal")
    found["close-dialog"] = axe_violations(page)
    # And a page that carries a success message (the live region around the list).
    page.keyboard.press("Escape")
    page.goto(f"/opportunities/{deal.pk}/edit/")
    page.click("main form button[type=submit]")
    page.wait_for_selector(".messages .message")
    found["after-a-message"] = axe_violations(page)
    problems = {name: v for name, v in found.items() if v}
    assert not problems, problems
