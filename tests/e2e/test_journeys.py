"""
The product's main journeys in a real browser, with the Content-Security-Policy enforced.
Screenshots of each step go to var/screenshots/ (not committed).
"""

import re
from contextlib import nullcontext

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from crm_site.celery import app as celery_app
from opportunities.models import Opportunity, Stage
from reflections.models import CallDebrief, Reflection
from suppressions.models import OverrideStatus, SuppressionOverride
from tests.e2e.conftest import login, logout, shot
from tests.factories import CompanyFactory, ContactFactory, ProductFactory, ProductLineFactory

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def customer(defaults):
    company = CompanyFactory(name="Brightwater Foods", domain="brightwater.example")
    dana = ContactFactory(company=company, full_name="Dana Buyer", email="dana@bright.example")
    product = ProductFactory(line=ProductLineFactory(name="Payments"), name="Card Terminal")
    return company, dana, product


def fill_new_deal(page, company, contact, product, title):
    page.goto("/opportunities/new/")
    page.fill("[data-company-input]", company.name[:6])
    page.click(f"[data-company-id='{company.pk}']")
    page.wait_for_selector(f"#id_contact option[value='{contact.pk}']", state="attached")
    page.select_option("#id_contact", str(contact.pk))
    page.fill("#id_title", title)
    page.select_option("#id_product", str(product.pk))
    page.fill("#id_amount", "24000")
    page.fill("#id_expected_close_date", "2027-01-31")


def test_rep_closes_a_deal_is_stopped_from_repitching_and_the_manager_approves(
    page, rep, manager, customer, settings
):
    # One reflection is enough to show a slice here (the default hides slices under five).
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    company, dana, product = customer
    login(page, rep.email, PASSWORD)

    # A rep creates a deal.
    fill_new_deal(page, company, dana, product, "Card terminals for 12 stores")
    shot(page, "01-new-deal")
    page.click("button:has-text('Create opportunity')")
    page.wait_for_url(re.compile(r"/opportunities/\d+/$"))
    deal = Opportunity.objects.get(title="Card terminals for 12 stores")
    assert deal.owner == rep and deal.stage == Stage.PROSPECTING

    # ... moves it on the board with one click ...
    page.goto("/opportunities/board/")
    card = page.locator(f"#card-{deal.pk}")
    card.locator("button:has-text('Qualification')").click()
    page.wait_for_selector(f"[data-stage='qualification'] #card-{deal.pk}")
    shot(page, "02-board")
    deal.refresh_from_db()
    assert deal.stage == Stage.QUALIFICATION

    # ... and closes it lost, answering the reflection inline.
    card = page.locator(f"#card-{deal.pk}")
    card.locator("summary").click()
    card.locator("a:has-text('Lost')").click()
    page.wait_for_selector("#modal .modal")
    page.click("#modal button[type=submit]")  # nothing answered: errors, nothing saved
    page.wait_for_selector("#modal .field-error")
    assert Reflection.objects.count() == 0
    page.locator("#modal label:has-text('Price') input").first.check()
    page.locator("#modal label:has-text('The customer said so') input").check()
    page.fill("#modal textarea", "Bring their CFO in before the proposal.")
    shot(page, "03-close-lost")
    page.click("#modal button[type=submit]")
    # Closed from the board: back on the board, the deal gone from it; its page says Lost.
    page.wait_for_selector(".messages .message:has-text('is closed as lost')")
    assert page.url.endswith("/opportunities/board/")
    assert page.locator(f"#card-{deal.pk}").count() == 0
    page.goto(f"/opportunities/{deal.pk}/")
    assert page.locator("h1 .badge").inner_text().strip() == "Lost"
    assert Reflection.objects.get(opportunity=deal).answers.filter(reason__label="Price").exists()

    # Pitching the same product to the same contact is refused, with the reason, live.
    fill_new_deal(page, company, dana, product, "Try again next week")
    page.wait_for_selector("#pitch-status .blocked")
    assert "Dana Buyer declined" in page.inner_text("#pitch-status")
    page.click("button:has-text('Create opportunity')")
    page.wait_for_selector(".opportunity-blocked")
    message = page.inner_text(".opportunity-blocked")
    assert "Card terminals for 12 stores" in message and "(inclusive)" in message
    shot(page, "04-refused")
    assert not Opportunity.objects.filter(title="Try again next week").exists()

    # The rep asks a manager for an exception.
    page.click(".opportunity-blocked a:has-text('Ask a manager for an exception')")
    page.fill("textarea[name=justification]", "Their new CFO invited us back before Q3.")
    page.click("button:has-text('Send to my manager')")
    page.wait_for_url("**/suppressions/exceptions/")
    request = SuppressionOverride.objects.get()
    assert request.status == OverrideStatus.PENDING
    logout(page)

    # The manager approves it.
    login(page, manager.email, PASSWORD)
    page.goto("/suppressions/exceptions/")
    page.locator(f"#override-{request.pk} button:has-text('Approve')").click()
    page.wait_for_selector("text=Approved")
    shot(page, "05-approved")
    request.refresh_from_db()
    assert request.status == OverrideStatus.APPROVED and request.decided_by == manager

    # The manager refreshes insights, watches the progress bar finish, sees the loss reason.
    # With a real broker (CI) a real worker does it; the embedded default, a thread of the server.
    worker = (
        start_worker(celery_app, pool="solo", perform_ping_check=False)
        if settings.REDIS_URL
        else nullcontext()
    )
    with worker:
        page.goto("/insights/")
        page.click("button:has-text('Refresh now')")
        page.wait_for_selector("#refresh-status:has-text('up to date')", timeout=60_000)
    page.wait_for_selector("#report:has-text('Why we lost')")
    page.goto("/insights/")
    lost = page.locator("section.insight-table:has(h3:has-text('Why we lost'))")
    assert "Price" in lost.inner_text()
    shot(page, "06-insights")
    logout(page)

    # Now the rep's deal goes through, exactly once.
    login(page, rep.email, PASSWORD)
    fill_new_deal(page, company, dana, product, "Back with the new CFO")
    page.click("button:has-text('Create opportunity')")
    page.wait_for_url(re.compile(r"/opportunities/\d+/$"))
    request.refresh_from_db()
    assert request.opportunity.title == "Back with the new CFO"


def test_a_high_card_debrief_is_pinned_at_the_top_of_the_brief(page, rep, customer):
    company, dana, _ = customer
    login(page, rep.email, PASSWORD)
    page.goto(f"/companies/{company.pk}/")
    assert page.locator("#pinned-debriefs li").count() == 0
    page.click("summary:has-text('Write a debrief')")
    page.select_option("#debriefs select[name=contact]", str(dana.pk))
    page.fill("#debriefs textarea[name=customer_said]", "Procurement needs three quotes above 50k.")
    page.check("#debriefs input[name=high_card]")
    page.click("#debriefs button:has-text('Save debrief')")
    page.wait_for_selector("#pinned-debriefs li")
    assert "three quotes" in page.inner_text("#pinned-debriefs")
    # It is the first thing on the page after the company's facts.
    order = page.evaluate(
        "() => [...document.querySelectorAll('main section')].map(s => s.id || s.className)"
    )
    assert order.index("pinned-debriefs") < order.index("contacts")
    shot(page, "07-high-card")
    assert CallDebrief.objects.get().high_card
