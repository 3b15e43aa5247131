"""
The buyer's voice end to end: a rep closes a deal as lost and asks the buyer; the buyer opens
the e-mailed link on a phone and answers; the rep sees the perception gap and the brief change.
"""

import re
import time
from contextlib import nullcontext

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core import mail

from crm_site.celery import app as celery_app
from insights import services as insight_services
from surveys.models import SurveyRequest, SurveyStatus
from tests.e2e.conftest import axe_violations, login, shot
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
PHONE = {"width": 390, "height": 844}
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _worker():
    """A real worker where there is a broker (CI); the embedded default sends inline."""
    if settings.REDIS_URL:
        return start_worker(celery_app, pool="solo", perform_ping_check=False)
    return nullcontext()


def _wait_for_mail(count: int = 1, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while len(mail.outbox) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(mail.outbox) >= count, "the survey e-mail was not sent"


def test_buyer_answers_on_a_phone_and_the_rep_sees_the_gap_and_the_brief(
    page, browser, live_server, rep, defaults, settings, mailoutbox
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    settings.DEBRIEF_SITE_URL = live_server.url
    company = CompanyFactory(name="Brightwater Foods")
    dana = ContactFactory(company=company, full_name="Dana Buyer", email="dana@bright.example")
    deal = OpportunityFactory(
        owner=rep,
        company=company,
        contact=dana,
        product=ProductFactory(name="Card Terminal"),
        title="Terminals for 12 stores",
        amount="48000.00",
    )
    login(page, rep.email, PASSWORD)

    # The rep closes it lost, reading it as price.
    page.goto(f"/opportunities/{deal.pk}/")
    page.click("a:has-text('Lost')")
    page.wait_for_selector("#modal .modal")
    page.locator("#modal label:has-text('Price') input").first.check()
    page.locator("#modal label:has-text('My own read') input").check()
    page.fill("#modal textarea", "Too expensive for them this year.")
    page.click("#modal button[type=submit]")
    page.wait_for_url(f"**/opportunities/{deal.pk}/")

    # ... and asks the buyer.
    with _worker():
        page.click("button:has-text('Ask Dana Buyer for feedback')")
        page.wait_for_selector("text=A survey is on its way to Dana Buyer")
        _wait_for_mail()
    shot(page, "survey-01-asked")
    message = mail.outbox[0]
    assert message.to == ["dana@bright.example"]
    link = re.search(r"https?://\S+/survey/\S+/", message.body).group(0)
    assert SurveyRequest.objects.get().status == SurveyStatus.SENT

    # The buyer opens the link on a phone, with no login and the policy enforced.
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    buyer = phone.new_page()
    errors: list[str] = []
    buyer.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    buyer.goto(link)
    body = buyer.inner_text("main")
    assert "Card Terminal" in body
    assert "48" not in body and "Too expensive" not in body and "Price" not in body.split("\n")[0]
    # Nothing is wider than the phone.
    assert buyer.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(buyer, "survey-02-phone-form")
    buyer.get_by_role("radio", name="It did not fit what we needed").check()
    buyer.get_by_role("checkbox", name="The timing was wrong for us").check()
    buyer.fill("textarea", "The reporting module was what we needed, and it was not ready.")
    buyer.click("button:has-text('Send my answers')")
    buyer.wait_for_selector("h1:has-text('Thank you')")
    shot(buyer, "survey-03-phone-thanks")
    assert not errors, errors
    phone.close()
    assert SurveyRequest.objects.get().status == SurveyStatus.ANSWERED

    # axe-core on the public page (in a context that lets its inline script run).
    checker = browser.new_context(viewport=PHONE, bypass_csp=True)
    check = checker.new_page()
    check.goto(link)
    found = {"survey": axe_violations(check)}
    check.goto(link + "opt-out/")
    found["opt-out"] = axe_violations(check)
    check.goto(link.replace("/survey/", "/survey/x"))
    found["bad-link"] = axe_violations(check)
    checker.close()
    assert not any(found.values()), found

    # The rep sees the gap in the insights and the buyer's words on the brief.
    insight_services.insights_rebuild()
    page.goto("/insights/?kind=quarter")
    gap = page.locator("section.gap")
    assert "Reps' reads and buyers' words" in gap.inner_text()
    assert "It did not fit" not in gap.inner_text()  # reports use the taxonomy's labels
    assert "Product fit 100%" in gap.inner_text()
    shot(page, "survey-04-gap")
    page.goto(f"/companies/{company.pk}/")
    words = page.locator('section:has(h2:has-text("In the buyer\'s words"))')
    assert "The reporting module was what we needed" in words.inner_text()
    shot(page, "survey-05-brief")
