"""
Issue 20, items 2, 3 and 5 in a real browser: a do-not-contact entry blocks the deal form and
the call list; an open deal opened before a "bought" suppression is flagged everywhere and stays
workable; a refusal names every suppression that applies and takes the focus.
"""

import csv
import datetime
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from opportunities.models import Opportunity, Stage
from suppressions import decisions
from suppressions import services as suppressions_services
from suppressions.models import Suppression, SuppressionReason
from tests.e2e.conftest import SCREENSHOTS, axe_violations, login, opened_page, shot
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
)

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def days(n: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=n)


def pick_company(page, company) -> None:
    page.fill("[data-company-input]", company.name[:6])
    page.click(f"[data-company-id='{company.pk}']")


def fill_the_rest(page, contact, product, title: str) -> None:
    page.wait_for_selector(f"#id_contact option[value='{contact.pk}']", state="attached")
    page.select_option("#id_contact", str(contact.pk))
    page.fill("#id_title", title)
    page.select_option("#id_product", str(product.pk))
    page.fill("#id_amount", "18000")
    page.fill("#id_expected_close_date", days(45).isoformat())


def in_viewport(page, selector: str) -> bool:
    return page.eval_on_selector(
        selector,
        """box => { const r = box.getBoundingClientRect();
                    return r.top >= 0 && r.top < window.innerHeight && r.height > 0; }""",
    )


def closed_as(outcome: str, **fields) -> Opportunity:
    """A deal closed today, with the suppressions the default rules derive from it (the close
    service's own step: won gives "bought", lost gives "declined")."""
    deal = OpportunityFactory(stage=outcome, closed_date=timezone.localdate(), **fields)
    suppressions_services.derive_for_close(
        opportunity=deal, outcome=outcome, closed_on=deal.closed_date
    )
    return deal


@pytest.fixture
def payments(defaults):
    return ProductLineFactory(name="Payments")


# --- item 2: do-not-contact blocks ------------------------------------------------------------


def test_a_do_not_contact_contact_is_refused_on_the_deal_form_and_the_call_list(
    page, rep, manager, payments
):
    company = CompanyFactory(name="Harbour Mills", domain="harbourmills.example")
    quiet = ContactFactory(
        company=company,
        full_name="Pat Quiet",
        email="pat@harbourmills.example",
        phone="+44 20 7946 0311",
    )
    open_to_calls = ContactFactory(
        company=company, full_name="Sam Open", email="sam@harbourmills.example"
    )
    product = ProductFactory(line=payments, name="Card Terminal")
    suppressions_services.do_not_contact_add(
        actor=manager, company=company, contact=quiet, note="Asked not to be called again"
    )
    login(page, rep.email, PASSWORD)

    # The company page shows the badge ...
    page.goto(f"/companies/{company.pk}/")
    assert "Do not contact" in page.locator("#contacts tr", has_text="Pat Quiet").inner_text()
    assert axe_violations(page) == []

    # ... and the deal form says the same, live, with the reason, as soon as she is picked.
    page.goto("/opportunities/new/")
    pick_company(page, company)
    fill_the_rest(page, quiet, product, "Terminals for the mill shop")
    status = page.wait_for_selector("#pitch-status .blocked")
    assert "Pat Quiet is on the do-not-contact list since" in status.inner_text()
    assert "Asked not to be called again" in status.inner_text()
    assert "No suppression" not in page.inner_text("#pitch-status")

    # Create is refused, with the same reason, and nothing is saved.
    page.click("button:has-text('Create opportunity')")
    refusal = page.wait_for_selector(".opportunity-blocked")
    text = refusal.inner_text()
    assert "Pat Quiet is on the do-not-contact list" in text
    assert "Asked not to be called again" in text
    # A do-not-contact entry has no exception to ask for: the box says who can lift it.
    assert "Ask a manager for an exception" not in text
    assert "a manager can lift it" in text
    assert not Opportunity.objects.exists()
    assert axe_violations(page) == []
    shot(page, "newcomer-dnc-refused")

    # A colleague at the same company can still be pitched.
    page.select_option("#id_contact", str(open_to_calls.pk))
    page.wait_for_selector("#pitch-status .clear")
    page.click("button:has-text('Create opportunity')")
    page.wait_for_url(re.compile(r"/opportunities/\d+/$"))
    assert Opportunity.objects.get().contact == open_to_calls

    # The call-list check says "yes, do-not-contact" for her, by e-mail and by phone.
    page.goto("/suppressions/check/")
    assert axe_violations(page) == []
    upload = (
        "name,email,phone\n"
        "Pat,pat@harbourmills.example,\n"
        "Pat's mobile,,020 7946 0311\n"
        "Sam,sam@harbourmills.example,\n"
    )
    page.set_input_files(
        "input[type=file]",
        files=[{"name": "campaign.csv", "mimeType": "text/csv", "buffer": upload.encode()}],
    )
    with page.expect_download() as download:
        page.click("button:has-text('Check and download')")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig"))))
    by_name = {row["name"]: row for row in rows}
    for name in ("Pat", "Pat's mobile"):
        assert by_name[name]["suppressed"] == "yes", by_name[name]
        assert "Pat Quiet is on the do-not-contact list" in by_name[name]["reason"]
        assert by_name[name]["until"] == "indefinite"
    assert by_name["Sam"]["suppressed"] == "no"


# --- item 3: an open deal under a later "bought" suppression ---------------------------------


def test_an_open_deal_under_a_later_bought_suppression_is_flagged_and_stays_workable(
    page, rep, teammate, payments
):
    company = CompanyFactory(name="Brightwater Foods")
    dana = ContactFactory(company=company, full_name="Dana Buyer")
    terminal = ProductFactory(line=payments, name="Card Terminal")
    reader = ProductFactory(line=payments, name="Card Reader")
    deal = OpportunityFactory(
        owner=rep,
        company=company,
        contact=dana,
        product=terminal,
        title="Terminals for the Leeds stores",
        stage=Stage.PROPOSAL,
        amount=Decimal("24000"),
    )
    Opportunity.objects.filter(pk=deal.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=20)
    )
    clear = OpportunityFactory(owner=rep, title="Unsuppressed deal", stage=Stage.PROPOSAL)
    # Since then the company bought a reader from a teammate: no more Payments for 180 days.
    closed_as(
        Stage.WON,
        owner=teammate,
        company=company,
        contact=dana,
        product=reader,
        title="Readers for head office",
    )
    bought = Suppression.objects.get()
    assert bought.reason == SuppressionReason.BOUGHT and bought.starts_on == timezone.localdate()
    label = f"Suppressed until {decisions._fmt(bought.until)}"
    login(page, rep.email, PASSWORD)

    # The pipeline row carries the flag; the other deal does not.
    page.goto("/opportunities/")
    row = page.locator(".pipeline-table tbody tr", has_text=deal.title)
    assert row.locator(".suppressed-flag").inner_text() == label
    other = page.locator(".pipeline-table tbody tr", has_text=clear.title)
    assert other.locator(".suppressed-flag").count() == 0
    assert axe_violations(page) == []

    # So does the board card.
    page.goto("/opportunities/board/")
    assert page.locator(f"#card-{deal.pk} .suppressed-flag").inner_text() == label
    assert page.locator(f"#card-{clear.pk} .suppressed-flag").count() == 0
    assert axe_violations(page) == []

    # The deal page says why, and that the deal stays workable.
    page.goto(f"/opportunities/{deal.pk}/")
    box = page.locator("section.deal-suppressed")
    text = box.inner_text()
    assert "This customer is suppressed for this product" in text
    assert "Brightwater Foods bought in “Readers for head office”" in text
    assert "you can keep working it" in text
    assert axe_violations(page) == []
    shot(page, "newcomer-flagged-deal")

    # Its edit form agrees: flagged, no refusal, and saving works.
    page.click("a:has-text('Edit deal')")
    page.wait_for_url(f"**/opportunities/{deal.pk}/edit/")
    status = page.wait_for_selector("#pitch-status .allowed")
    assert "Suppressed since this deal was opened" in status.inner_text()
    assert page.locator("#pitch-status .blocked, .opportunity-blocked").count() == 0
    assert axe_violations(page) == []
    page.fill("#id_next_step", "Confirm delivery dates for Leeds")
    page.click("button:has-text('Save changes')")
    page.wait_for_url(f"**/opportunities/{deal.pk}/")
    assert "Saved your changes" in page.inner_text(".messages")
    deal.refresh_from_db()
    assert deal.next_step == "Confirm delivery dates for Leeds"
    # Still flagged after the save, and the page with its message is axe-clean.
    assert page.locator("section.deal-suppressed").count() == 1
    assert axe_violations(page) == []

    # A new pitch of the same line to this customer is refused.
    page.goto(f"/opportunities/new/?company={company.pk}")
    fill_the_rest(page, dana, terminal, "More terminals")
    page.click("button:has-text('Create opportunity')")
    assert "bought" in page.wait_for_selector(".opportunity-blocked").inner_text()
    assert not Opportunity.objects.filter(title="More terminals").exists()


# --- item 5: from the company page, a refusal that names all and takes the focus -------------


def test_new_deal_from_the_company_page_is_refused_naming_every_suppression_with_focus(
    browser, live_server, rep, teammate, payments
):
    # A short window, so that the refusal at the top of the form is out of sight of Create.
    with opened_page(browser, live_server.url, viewport={"width": 1280, "height": 640}) as page:
        refused_naming_every_suppression(page, rep, teammate, payments)


def refused_naming_every_suppression(page, rep, teammate, payments):
    company = CompanyFactory(name="Northwind Traders")
    dana = ContactFactory(company=company, full_name="Dana Buyer")
    ContactFactory(company=company, full_name="Lee Other")
    terminal = ProductFactory(line=payments, name="Card Terminal")
    # The company bought a terminal (Payments, whole company) and Dana declined one.
    closed_as(
        Stage.WON,
        owner=teammate,
        company=company,
        contact=ContactFactory(company=company, full_name="Ola Finance"),
        product=terminal,
        title="Terminals for the depot",
    )
    closed_as(
        Stage.LOST, owner=rep, company=company, contact=dana, product=terminal, title="Shop pilot"
    )
    assert Suppression.objects.count() == 2

    login(page, rep.email, PASSWORD)
    page.goto(f"/companies/{company.pk}/")
    page.click("a:has-text('New opportunity for this company')")
    page.wait_for_url(re.compile(rf"/opportunities/new/\?company={company.pk}$"))
    # The company is picked already: its name shows, the hidden field holds it, and its people
    # are offered without typing anything.
    assert page.input_value("[data-company-input]") == "Northwind Traders"
    assert page.input_value("#deal-form input[name=company]") == str(company.pk)
    offered = page.eval_on_selector_all(
        "#id_contact option", "options => options.map(o => o.textContent.trim())"
    )
    assert any(name.startswith("Dana Buyer") for name in offered)
    assert any(name.startswith("Lee Other") for name in offered)
    assert axe_violations(page) == []

    fill_the_rest(page, dana, terminal, "Terminals for the new shop")
    status = page.wait_for_selector("#pitch-status .blocked")
    assert "2 apply" in status.inner_text()

    page.locator("button:has-text('Create opportunity')").scroll_into_view_if_needed()
    assert not in_viewport(page, "main h1")  # the top of the form is out of sight
    page.click("button:has-text('Create opportunity')")
    refusal = page.wait_for_selector(".opportunity-blocked")
    text = refusal.inner_text()
    assert "2 suppressions apply" in text
    assert "Northwind Traders bought in “Terminals for the depot”" in text
    assert "Dana Buyer declined in “Shop pilot”" in text
    assert "Ask a manager for an exception" in text  # unlike do-not-contact, these can be
    # The focus moves to the refusal once htmx has settled the swap, and it is on screen.
    page.wait_for_function(
        "() => document.querySelector('.opportunity-blocked').contains(document.activeElement)"
    )
    assert in_viewport(page, ".opportunity-blocked")
    assert not Opportunity.objects.filter(title="Terminals for the new shop").exists()
    assert axe_violations(page) == []
    shot(page, "newcomer-refusal-names-all")
    # And what the rep sees: the window as it stands after Create.
    page.screenshot(path=str(SCREENSHOTS / "newcomer-refusal-in-view.png"))
