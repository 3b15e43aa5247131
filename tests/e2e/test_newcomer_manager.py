"""
What a newcomer met as a manager, in a real browser: the exception requests that wait for them
(on their home and counted in the navigation), closing a deal from the board, and "Refresh
now" on the insights page with its progress and its "Figures as of".
"""

import datetime
import re
import time

import pytest
from django.conf import settings
from django.utils import dateformat, timezone

from insights import services as insight_services
from insights.models import InsightRun, RunKind, RunStatus
from opportunities.models import Stage
from suppressions import decisions
from suppressions.models import (
    OverrideStatus,
    Suppression,
    SuppressionOverride,
    SuppressionReason,
    SuppressionScope,
)
from tests.e2e.conftest import axe_violations, login, logout, shot
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory
from tests.insights.conftest import Closer

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def nav_count(page) -> int:
    return page.locator(".nav-links .nav-count").count()


def test_a_manager_sees_what_waits_for_them_and_decides_it_from_home(
    axe_page, rep, manager, defaults
):
    page = axe_page
    company = CompanyFactory(name="Brightwater Foods")
    dana = ContactFactory(company=company, full_name="Dana Buyer")
    product = ProductFactory(name="Card Terminal")
    today = decisions.today()
    Suppression.objects.create(
        company=company,
        contact=dana,
        scope=SuppressionScope.PRODUCT,
        product=product,
        reason=SuppressionReason.DECLINED,
        starts_on=today,
        until=today + datetime.timedelta(days=60),
    )

    # The rep asks for an exception; a rep never sees a count of their own.
    login(page, rep.email, PASSWORD)
    page.goto(
        f"/suppressions/exceptions/new/?company={company.pk}&contact={dana.pk}&product={product.pk}"
    )
    page.fill("textarea[name=justification]", "Their new CFO invited us back before Q3.")
    page.click("button:has-text('Send to my manager')")
    page.wait_for_url("**/suppressions/exceptions/")
    request = SuppressionOverride.objects.get()
    assert nav_count(page) == 0
    logout(page)

    # The manager's home starts with it, and the navigation counts it.
    login(page, manager.email, PASSWORD)
    assert page.get_by_role("link", name="Exceptions 1 waiting").is_visible()
    waiting = page.locator(f"#waiting-{request.pk}")
    text = waiting.inner_text()
    for expected in (rep.full_name, "Card Terminal", "Brightwater Foods", "Dana Buyer", "CFO"):
        assert expected in text, expected
    assert axe_violations(page) == []
    shot(page, "newcomer-manager-home-waiting")

    # Approve it there: back on the home, the request and the count gone.
    waiting.get_by_role("button", name=re.compile("^Approve")).click()
    page.wait_for_selector(".messages .message")
    assert page.url.endswith("/plan/")
    assert f"Approved {rep.full_name}'s request." in page.inner_text(".messages")
    assert nav_count(page) == 0
    assert "Nothing waits for your decision." in page.inner_text("main")
    assert axe_violations(page) == []
    shot(page, "newcomer-manager-home-decided")
    request.refresh_from_db()
    assert request.status == OverrideStatus.APPROVED and request.decided_by == manager


def test_closing_a_deal_from_the_board_comes_back_to_the_board(page, rep, defaults):
    deal = OpportunityFactory(owner=rep, title="Terminals for 12 stores", stage=Stage.PROPOSAL)
    login(page, rep.email, PASSWORD)
    page.goto("/opportunities/board/")
    card = page.locator(f"#card-{deal.pk}")
    card.locator("summary").click()
    card.locator("a:has-text('Lost')").click()
    page.wait_for_selector("#modal .modal")
    page.locator("#modal label:has-text('Price') input").first.check()
    page.locator("#modal label:has-text('The customer said so') input").check()
    page.fill("#modal textarea", "Bring their CFO in before the proposal.")
    page.click("#modal button[type=submit]")

    # The page it lands on is the board again (it was the board before: wait for the message).
    page.wait_for_selector(".messages .message:has-text('is closed as lost')")
    assert page.url.endswith("/opportunities/board/")
    assert page.locator(f"#card-{deal.pk}").count() == 0
    shot(page, "newcomer-board-after-close")
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST


def test_refresh_now_shows_its_progress_and_brings_figures_as_of_up_to_date(
    page, rep, manager, defaults, monkeypatch, embedded_default, background_thread
):
    closer = Closer(rep)
    day = timezone.localdate()
    for n in range(3):
        closer.close("won" if n % 2 else "lost", day - datetime.timedelta(days=n + 3), "Price")
    three_days_ago = timezone.now() - datetime.timedelta(days=3)
    InsightRun.objects.create(
        kind=RunKind.REBUILD, status=RunStatus.SUCCEEDED, progress=100, finished_at=three_days_ago
    )
    # A rebuild that takes a couple of seconds, as on a real database, so the bar is seen.
    rebuild = insight_services.WORK[RunKind.REBUILD]

    def slow_rebuild(progress):
        progress(10)
        time.sleep(2)
        return rebuild(progress=progress)

    monkeypatch.setitem(insight_services.WORK, RunKind.REBUILD, slow_rebuild)

    login(page, manager.email, PASSWORD)
    page.goto("/insights/")
    stale = f"Figures as of {dateformat.format(timezone.localtime(three_days_ago), 'j M Y, H:i')}"
    assert page.inner_text("#figures-as-of") == stale

    # The click answers at once (the run goes on in the background) and the bar moves.
    page.click("button:has-text('Refresh now')")
    page.wait_for_selector("#refresh-status progress")
    page.wait_for_selector("#refresh-status:has-text('under way')")
    shot(page, "newcomer-insights-refresh-progress")

    page.wait_for_selector("#refresh-status:has-text('up to date')", timeout=60_000)
    fresh = page.inner_text("#figures-as-of")
    assert fresh != stale
    assert fresh.startswith(f"Figures as of {dateformat.format(timezone.localdate(), 'j M Y')}")
    assert InsightRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2
    shot(page, "newcomer-insights-refresh-done")
