"""
What a newcomer met on the demo, in a real browser: the pipeline's Back button, do-not-contact
that blocks, deals under a suppression, the deal form's refusal, phone widths, the call-list
result and what waits for a manager.
"""

import datetime
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from django.conf import settings
from django.utils import timezone

from opportunities.models import Stage
from tests.e2e.conftest import login, shot
from tests.factories import OpportunityFactory, ProductFactory

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def form_state(page) -> dict:
    """What the pipeline's filter form shows: the search text, the ticked stages, the sort."""
    return {
        "q": page.input_value("#id_q"),
        "stage": sorted(
            page.eval_on_selector_all(
                "#pipeline-filters input[name=stage]:checked", "boxes => boxes.map(b => b.value)"
            )
        ),
        "sort": page.eval_on_selector("input[name=sort]", "input => input.value"),
    }


def url_state(page) -> dict:
    query = parse_qs(urlparse(page.url).query)
    return {
        "q": (query.get("q") or [""])[0],
        "stage": sorted(query.get("stage", [])),
        "sort": (query.get("sort") or ["close"])[0],
    }


def shown_titles(page) -> list[str]:
    return page.eval_on_selector_all(
        ".pipeline-table tbody tr td:first-child a", "links => links.map(a => a.textContent.trim())"
    )


def go_back(page, forward: bool = False) -> None:
    """Back (or Forward), and wait for htmx to draw the page the server sent for that URL."""
    with page.expect_response(
        lambda response: response.request.headers.get("hx-history-restore-request") == "true"
    ):
        page.go_forward() if forward else page.go_back()
    page.wait_for_load_state("networkidle")


def test_back_in_the_pipeline_shows_the_form_the_list_was_drawn_with(page, rep, defaults):
    product = ProductFactory()
    today = timezone.localdate()
    for n in range(30):
        OpportunityFactory(
            owner=rep,
            product=product,
            title=f"{'Alpha' if n % 2 else 'Beta'} deal {n:02}",
            stage=Stage.NEGOTIATION if n % 3 else Stage.PROSPECTING,
            amount=Decimal(1000 + n * 100),
            expected_close_date=today + datetime.timedelta(days=n + 1),
        )
    login(page, rep.email, PASSWORD)
    page.goto("/opportunities/")

    # Filter by stage, then search, then sort, then page on: four history entries.
    with page.expect_response(re.compile(r"/opportunities/\?")):
        page.check("#pipeline-filters input[name=stage][value=negotiation]")
    page.wait_for_url(re.compile(r"stage=negotiation"))
    with page.expect_response(re.compile(r"q=Alpha")):
        page.fill("#id_q", "Alpha")
    page.wait_for_url(re.compile(r"q=Alpha"))
    page.click(".pipeline-table th a:has-text('Amount')")
    page.wait_for_url(re.compile(r"sort=amount"))
    filtered_sorted = shown_titles(page)
    assert filtered_sorted and all(title.startswith("Alpha") for title in filtered_sorted)

    # Back, and Back again: each time the form shows what the URL and the list say.
    go_back(page)
    page.wait_for_url(lambda url: "sort=amount" not in url)
    page.wait_for_selector("#pipeline-filters")
    assert (
        form_state(page)
        == url_state(page)
        == {
            "q": "Alpha",
            "stage": ["negotiation"],
            "sort": "close",
        }
    )
    assert all(title.startswith("Alpha") for title in shown_titles(page))

    go_back(page)
    page.wait_for_url(lambda url: "q=Alpha" not in url)
    page.wait_for_selector("#pipeline-filters")
    assert (
        form_state(page) == url_state(page) == {"q": "", "stage": ["negotiation"], "sort": "close"}
    )
    titles = shown_titles(page)
    assert any(title.startswith("Beta") for title in titles)
    shot(page, "newcomer-pipeline-back")

    # The next change builds on what the form shows: the stage filter is kept.
    with page.expect_response(re.compile(r"q=Beta")):
        page.fill("#id_q", "Beta")
    page.wait_for_url(re.compile(r"q=Beta"))
    assert url_state(page)["stage"] == ["negotiation"]
    assert all(title.startswith("Beta") for title in shown_titles(page))

    # Forward restores too.
    go_back(page)
    go_back(page, forward=True)
    page.wait_for_url(re.compile(r"q=Beta"))
    page.wait_for_selector("#pipeline-filters")
    assert form_state(page) == url_state(page)
