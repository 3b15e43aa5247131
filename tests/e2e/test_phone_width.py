"""
Every page a rep and a manager open, on a 390 px phone: nothing scrolls sideways (a table may
scroll inside its own box), the menu folds into one short bar, the pipeline's rows are cards and
its filters fold away behind a "Filters" button that says how many are in use. On a laptop the
menu and the filters stay unfolded.
"""

import datetime
import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from insights import services as insights_services
from opportunities.models import Stage
from reflections import selectors as reflection_selectors
from reflections import services as reflection_services
from reflections.forms import ReflectionForm
from reflections.models import Outcome
from suppressions import decisions
from suppressions import services as suppressions_services
from tests.e2e.conftest import axe_violations, login, logout, shot
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
)
from tests.insights.conftest import Closer
from tests.reflections.conftest import lost_answers

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}
NAV_MAX_HEIGHT = 60
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG = "Featherstonehaugh Infrastructure and Transport Authority International Holdings"
STEP = "Send the revised three-year proposal with the security questionnaire answers attached"


def close_as_lost(actor, deal):
    """Close through the service, as the close form does: a reflection and its suppression."""
    prompt_set = reflection_selectors.prompt_set_for(Outcome.LOST, deal.product.line_id)
    form = ReflectionForm(lost_answers(prompt_set), prompt_set=prompt_set, outcome=Outcome.LOST)
    assert form.is_valid(), form.errors
    return reflection_services.opportunity_close(
        actor=actor,
        opportunity=deal,
        outcome=Outcome.LOST,
        prompt_set=prompt_set,
        answers=form.answers(),
    )


@pytest.fixture
def busy(rep, manager, defaults, settings):
    """A rep's week with long names everywhere, closes, suppressions and an insight report."""
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    today = timezone.localdate()
    payments = ProductLineFactory(name="Payments and Treasury Operations")
    invoicing = ProductFactory(name="Invoicing Automation Enterprise Edition", line=payments)
    company = CompanyFactory(name=LONG, domain="featherstonehaugh.example")
    contact = ContactFactory(
        company=company,
        full_name="Bartholomew Featherstonehaugh-Cholmondeley",
        email="bartholomew.featherstonehaugh-cholmondeley@featherstonehaugh.example",
    )
    stages = [Stage.PROSPECTING, Stage.QUALIFICATION, Stage.PROPOSAL, Stage.NEGOTIATION]
    deals = []
    for n in range(14):
        at = company if n % 2 else CompanyFactory(name=f"{LONG} {n}")
        deals.append(
            OpportunityFactory(
                owner=rep,
                company=at,
                contact=contact if at == company else ContactFactory(company=at),
                product=invoicing if n % 3 else ProductFactory(line=payments),
                title=f"{at.name}: invoicing expansion for the finance shared-service centre",
                stage=stages[n % 4],
                amount=Decimal(1_234_567 + n * 1000),
                currency=("GBP", "EUR", "USD")[n % 3],
                expected_close_date=today + datetime.timedelta(days=n * 5 - 10),
                next_step=STEP if n % 5 else "",
                next_step_due=today + datetime.timedelta(days=n * 4 - 8) if n % 5 else None,
            )
        )
    # A lost close: its reflection, and a suppression that covers the open deals like it.
    reflection = close_as_lost(rep, deals[1])
    lost = decisions.check(
        company_id=company.pk,
        contact_id=contact.pk,
        product_id=invoicing.pk,
        product_line_id=payments.pk,
    ).suppression
    assert lost is not None
    dnc = suppressions_services.do_not_contact_add(
        actor=manager, company=company, contact=ContactFactory(company=company), note="Asked us to"
    )
    # Twelve weeks of closes with lessons: the insight report and the rep's mirror have tables.
    closer = Closer(rep, product=invoicing, company=company)
    for week in range(12):
        closed = today - datetime.timedelta(days=week * 7)
        closer.close("won", closed, "Product fit", text=f"Won: {STEP} {week}")
        closer.close("lost", closed, "Price", text=f"Lost: {STEP} {week}")
    insights_services.insights_rebuild()
    return {
        "company": company,
        "contact": contact,
        "product": invoicing,
        "deal": deals[3],
        "closed": deals[1],
        "reflection": reflection,
        "suppression": lost,
        "dnc": dnc,
    }


def overflow(page) -> int:
    """How many pixels the page is wider than the phone (0 when nothing scrolls sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def widest(page) -> list[str]:
    """What sticks out past the right edge, outside any box that scrolls: for the message."""
    return page.evaluate(
        """() => [...document.querySelectorAll("body *")]
            .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
            .filter(el => getComputedStyle(el).position === "absolute"
                || !el.parentElement.closest(".table-wrap, pre"))
            .slice(0, 5)
            .map(el => `${el.tagName.toLowerCase()}.${el.className} to ${Math.round(
                el.getBoundingClientRect().right)}px`)"""
    )


def nav_height(page) -> float:
    return page.evaluate("document.querySelector('.site-header').getBoundingClientRect().height")


def visit_all(page, paths: dict[str, str]) -> dict[str, str]:
    """Open each page at phone width; what is too wide (and how), or too tall in the menu."""
    problems = {}
    for name, path in paths.items():
        response = page.goto(path)
        assert response.ok, f"{name} ({path}) answered {response.status}"
        page.wait_for_load_state("networkidle")
        if (extra := overflow(page)) > 0:
            problems[name] = f"{path} is {extra}px too wide: {widest(page)}"
            shot(page, f"phone-too-wide-{name}")
        elif (height := nav_height(page)) > NAV_MAX_HEIGHT:
            problems[name] = f"{path}: the folded menu is {height:.0f}px tall"
    return problems


def test_every_page_a_rep_opens_fits_a_phone(page, rep, busy):
    page.set_viewport_size(PHONE)
    login(page, rep.email, PASSWORD)
    company, deal, product = busy["company"], busy["deal"], busy["product"]
    exception = f"?company={company.pk}&contact={busy['contact'].pk}&product={product.pk}"
    problems = visit_all(
        page,
        {
            "plan": "/plan/",
            "pipeline": "/opportunities/",
            "pipeline-all": "/opportunities/?status=all&sort=-amount",
            "board": "/opportunities/board/",
            "new-deal": "/opportunities/new/",
            "new-deal-for-company": f"/opportunities/new/?company={company.pk}",
            "deal": f"/opportunities/{deal.pk}/",
            "deal-edit": f"/opportunities/{deal.pk}/edit/",
            "close-form": f"/opportunities/{deal.pk}/close/lost/",
            "closed-deal": f"/opportunities/{busy['closed'].pk}/",
            "reflection": f"/reflections/{busy['reflection'].pk}/",
            "companies": "/companies/",
            "company-brief": f"/companies/{company.pk}/",
            "call-list": "/suppressions/check/",
            "exceptions": "/suppressions/exceptions/",
            "exception-request": f"/suppressions/exceptions/new/{exception}",
            "insights": "/insights/",
            "my-reflections": "/me/reflections/",
            "team": "/teams/",
            "password": "/accounts/password/change/",
        },
    )
    assert not problems, problems

    # A page after a success message: the rep asks for an exception.
    page.goto(f"/suppressions/exceptions/new/{exception}")
    page.fill("textarea[name=justification]", "They asked us for a quote on the new edition.")
    page.click("main form button[type=submit]")
    page.wait_for_selector(".messages .message")
    assert overflow(page) <= 0, widest(page)


def test_every_page_a_manager_opens_fits_a_phone(page, rep, manager, busy):
    company, deal = busy["company"], busy["deal"]
    suppressions_services.override_request(
        actor=rep,
        company=company,
        contact=busy["contact"],
        product=busy["product"],
        justification="They asked us for a quote on the new edition.",
    )
    page.set_viewport_size(PHONE)
    login(page, manager.email, PASSWORD)
    problems = visit_all(
        page,
        {
            "plan": "/plan/",
            "pipeline": "/opportunities/",
            "board": "/opportunities/board/",
            "deal": f"/opportunities/{deal.pk}/",
            "deal-edit": f"/opportunities/{deal.pk}/edit/",
            "close-form": f"/opportunities/{deal.pk}/close/won/",
            "companies": "/companies/",
            "company-brief": f"/companies/{company.pk}/",
            "company-edit": f"/companies/{company.pk}/edit/",
            "new-company": "/companies/new/",
            "do-not-contact": f"/companies/{company.pk}/do-not-contact/",
            "lift": f"/suppressions/{busy['suppression'].pk}/lift/",
            "lift-do-not-contact": f"/suppressions/{busy['dnc'].pk}/lift/",
            "call-list": "/suppressions/check/",
            "exceptions": "/suppressions/exceptions/",
            "insights": "/insights/",
            "my-reflections": "/me/reflections/",
            "teams": "/teams/",
            "team": f"/teams/{rep.team_id}/",
            "password": "/accounts/password/change/",
        },
    )
    assert not problems, problems
    # The request waiting for the manager shows on the folded menu too.
    page.goto("/opportunities/")
    assert re.search(r"Menu\s*1", page.inner_text(".nav-menu > summary"))


def test_on_a_phone_the_menu_and_the_filters_fold_and_the_rows_are_cards(page, rep, busy):
    page.set_viewport_size(PHONE)
    login(page, rep.email, PASSWORD)
    page.goto("/opportunities/")

    # One short bar: the brand and "Menu"; the links show when it opens.
    assert nav_height(page) <= NAV_MAX_HEIGHT
    assert not page.is_visible(".nav-links a:has-text('Pipeline')")
    page.click(".nav-menu > summary")
    assert page.is_visible(".nav-links a:has-text('Board')")
    assert overflow(page) <= 0, widest(page)
    page.click(".nav-menu > summary")

    # The filters start folded, the first card shows above the fold.
    assert page.is_visible("#pipeline-filters-fold > summary")
    assert not page.is_visible("#id_q")
    assert page.inner_text("#pipeline-filters-fold > summary").strip() == "Filters"
    first_card = page.locator(".pipeline-table tbody tr").first
    assert first_card.bounding_box()["y"] < PHONE["height"] / 2
    assert first_card.bounding_box()["width"] <= PHONE["width"]
    shot(page, "phone-pipeline")

    # Unfolded, a filter redraws the list under it: the panel stays open and counts the filter.
    page.click("#pipeline-filters-fold > summary")
    assert page.is_visible("#id_q")
    with page.expect_response(re.compile(r"stage=negotiation")):
        page.check("#pipeline-filters input[name=stage][value=negotiation]")
    page.wait_for_url(re.compile(r"stage=negotiation"))
    page.wait_for_function(
        "document.querySelector('#pipeline-filter-count').textContent.includes('1 active')"
    )
    assert page.is_visible("#id_q")
    assert overflow(page) <= 0, widest(page)
    stages = page.eval_on_selector_all(
        ".pipeline-table tbody td.stage", "cells => cells.map(c => c.textContent.trim())"
    )
    assert stages and set(stages) == {"Negotiation"}

    # A sort link from the "Sort by" row; Back redraws the whole page, the panel still open.
    page.click(".pipeline-table thead a:has-text('Amount')")
    page.wait_for_url(re.compile(r"sort=amount"))
    with page.expect_response(
        lambda response: response.request.headers.get("hx-history-restore-request") == "true"
    ):
        page.go_back()
    page.wait_for_load_state("networkidle")
    page.wait_for_url(lambda url: "sort=amount" not in url)
    assert page.get_attribute("#pipeline-filters-fold", "open") is not None
    assert page.inner_text("#pipeline-filter-count").strip() == "1 active"
    # Folded again by hand, it stays folded through the next Back.
    page.click("#pipeline-filters-fold > summary")
    page.click(".pipeline-table thead a:has-text('Deal')")
    page.wait_for_url(re.compile(r"sort=title"))
    with page.expect_response(
        lambda response: response.request.headers.get("hx-history-restore-request") == "true"
    ):
        page.go_back()
    page.wait_for_load_state("networkidle")
    page.wait_for_url(lambda url: "sort=title" not in url)
    assert page.get_attribute("#pipeline-filters-fold", "open") is None
    assert page.inner_text("#pipeline-filter-count").strip() == "1 active"

    page.goto("/plan/")
    assert overflow(page) <= 0, widest(page)
    shot(page, "phone-plan")
    # Editing a next step inline keeps to the width too.
    page.click(".plan-table td.act a >> nth=0")
    page.wait_for_selector("tr.editing input[name=next_step]")
    assert overflow(page) <= 0, widest(page)
    logout_from_the_menu(page)


def logout_from_the_menu(page) -> None:
    page.click(".nav-menu > summary")
    logout(page)


def test_on_a_laptop_the_menu_and_the_filters_stay_unfolded(page, rep, busy):
    page.set_viewport_size(LAPTOP)
    login(page, rep.email, PASSWORD)
    page.goto("/opportunities/?stage=negotiation")
    assert not page.is_visible(".nav-menu > summary")
    assert page.is_visible(".nav-links a:has-text('Board')")
    assert not page.is_visible("#pipeline-filters-fold > summary")
    assert page.is_visible("#id_q") and page.is_visible("#pipeline-filters button[type=submit]")
    # The table is a table: its headings show above the columns, in one row.
    headings = page.locator(".pipeline-table thead th")
    assert headings.first.is_visible()
    tops = {round(box["y"]) for box in (h.bounding_box() for h in headings.all()) if box}
    assert len(tops) == 1
    assert overflow(page) <= 0
    shot(page, "laptop-pipeline")


def test_phone_pages_have_no_serious_accessibility_violations(axe_page, rep, busy):
    page = axe_page
    page.set_viewport_size(PHONE)
    login(page, rep.email, PASSWORD)
    found = {}
    for name, path in {"plan": "/plan/", "pipeline": "/opportunities/"}.items():
        page.goto(path)
        found[name] = axe_violations(page)
    page.click(".nav-menu > summary")
    page.click("#pipeline-filters-fold > summary")
    found["pipeline-unfolded"] = axe_violations(page)
    problems = {name: v for name, v in found.items() if v}
    assert not problems, problems
