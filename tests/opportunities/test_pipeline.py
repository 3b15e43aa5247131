"""The pipeline list (filters, sorting, keyset pages, capped count, htmx) and the deal page."""

import datetime
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import access
from opportunities import views
from opportunities.models import Opportunity, Stage, StageChange
from tests.factories import (
    CompanyFactory,
    CompetitorFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
    StageChangeFactory,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
PIPELINE = reverse("opportunities:pipeline")
TODAY = timezone.localdate()


def days(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def deal_ids(response) -> list[int]:
    """Deal ids in the order the list shows them (one link per row)."""
    html = response.content.decode()
    return [int(i) for i in re.findall(r'<td><a href="/opportunities/(\d+)/">', html)]


def link(response, rel: str) -> str | None:
    match = re.search(rf'rel="{rel}" href="([^"]+)"', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else None


# --- who sees what ------------------------------------------------------------------------------
@pytest.mark.smoke
def test_rep_sees_only_own_deals(rep_client, rep, teammate, other_rep):
    mine = OpportunityFactory(owner=rep)
    OpportunityFactory(owner=teammate)
    OpportunityFactory(owner=other_rep)
    response = rep_client.get(PIPELINE)
    assert response.status_code == 200
    assert deal_ids(response) == [mine.pk]


def test_manager_sees_only_their_teams_deals(manager_client, rep, teammate, other_rep):
    north = [OpportunityFactory(owner=rep).pk, OpportunityFactory(owner=teammate).pk]
    OpportunityFactory(owner=other_rep)
    assert sorted(deal_ids(manager_client.get(PIPELINE))) == sorted(north)


def test_admin_sees_every_deal(admin_client_, rep, other_rep):
    everyone = [OpportunityFactory(owner=rep).pk, OpportunityFactory(owner=other_rep).pk]
    assert sorted(deal_ids(admin_client_.get(PIPELINE))) == sorted(everyone)


def test_pipeline_requires_login(client):
    response = client.get(PIPELINE)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


# --- status and filters ------------------------------------------------------------------------
def test_pipeline_shows_open_deals_by_default(rep_client, rep):
    open_deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    won = OpportunityFactory(owner=rep, stage=Stage.WON)
    assert deal_ids(rep_client.get(PIPELINE)) == [open_deal.pk]
    assert deal_ids(rep_client.get(PIPELINE, {"status": "closed"})) == [won.pk]
    assert sorted(deal_ids(rep_client.get(PIPELINE, {"status": "all"}))) == sorted(
        [open_deal.pk, won.pk]
    )


def test_text_search_matches_title_or_company_name(rep_client, rep):
    by_title = OpportunityFactory(owner=rep, title="Payroll rollout")
    by_company = OpportunityFactory(owner=rep, company=CompanyFactory(name="Payroll Partners"))
    OpportunityFactory(owner=rep, title="Something else")
    found = deal_ids(rep_client.get(PIPELINE, {"q": "payroll"}))
    assert sorted(found) == sorted([by_title.pk, by_company.pk])


def test_stage_filter_takes_several_stages_without_distinct(rep_client, rep):
    proposal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    negotiation = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    OpportunityFactory(owner=rep, stage=Stage.PROSPECTING)
    with CaptureQueriesContext(connection) as ctx:
        response = rep_client.get(PIPELINE, {"stage": ["proposal", "negotiation"]})
    assert sorted(deal_ids(response)) == sorted([proposal.pk, negotiation.pk])
    assert not any("DISTINCT" in q["sql"].upper() for q in ctx.captured_queries)


def test_product_filter(rep_client, rep):
    product = ProductFactory()
    wanted = OpportunityFactory(owner=rep, product=product)
    OpportunityFactory(owner=rep)
    assert deal_ids(rep_client.get(PIPELINE, {"product": product.pk})) == [wanted.pk]


def test_product_line_filter(rep_client, rep):
    line = ProductLineFactory(name="Analytics")
    wanted = OpportunityFactory(owner=rep, product=ProductFactory(line=line))
    OpportunityFactory(owner=rep, product=ProductFactory(line=ProductLineFactory(name="Payroll")))
    assert deal_ids(rep_client.get(PIPELINE, {"line": line.pk})) == [wanted.pk]


def test_owner_filter_narrows_a_managers_list(manager_client, rep, teammate):
    OpportunityFactory(owner=rep)
    tess = OpportunityFactory(owner=teammate)
    assert deal_ids(manager_client.get(PIPELINE, {"owner": teammate.pk})) == [tess.pk]


def test_owner_filter_rejects_forged_owner_with_a_form_error(manager_client, rep, other_rep):
    OpportunityFactory(owner=rep)
    OpportunityFactory(owner=other_rep)
    response = manager_client.get(PIPELINE, {"owner": other_rep.pk})
    assert response.status_code == 200
    assert deal_ids(response) == []
    assert "Owner: Select a valid choice" in response.content.decode()


def test_rep_is_not_offered_the_owner_filter_and_it_cannot_widen_the_list(
    rep_client, rep, teammate
):
    mine = OpportunityFactory(owner=rep)
    OpportunityFactory(owner=teammate)
    response = rep_client.get(PIPELINE, {"owner": teammate.pk})
    assert deal_ids(response) == [mine.pk]
    assert 'name="owner"' not in response.content.decode()


def test_close_date_range_filter(rep_client, rep):
    OpportunityFactory(owner=rep, expected_close_date=days(5))
    inside = OpportunityFactory(owner=rep, expected_close_date=days(20))
    OpportunityFactory(owner=rep, expected_close_date=days(40))
    params = {"close_from": days(10).isoformat(), "close_to": days(30).isoformat()}
    assert deal_ids(rep_client.get(PIPELINE, params)) == [inside.pk]


def test_amount_range_filter(rep_client, rep):
    OpportunityFactory(owner=rep, amount=Decimal("500"))
    inside = OpportunityFactory(owner=rep, amount=Decimal("5000"))
    OpportunityFactory(owner=rep, amount=Decimal("50000"))
    params = {"amount_min": "1000", "amount_max": "10000"}
    assert deal_ids(rep_client.get(PIPELINE, params)) == [inside.pk]


def test_malformed_filter_values_show_errors_not_a_crash(rep_client, rep):
    OpportunityFactory(owner=rep)
    response = rep_client.get(PIPELINE, {"close_from": "next week", "amount_min": "-5"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Closes from: Enter a valid date." in html
    assert "Amount from (GBP): Ensure this value is greater than or equal to 0." in html


# --- sorting -----------------------------------------------------------------------------------
@pytest.fixture
def three_deals(rep):
    return [
        OpportunityFactory(
            owner=rep,
            title="Bravo",
            amount=Decimal("300"),
            expected_close_date=days(10),
            company=CompanyFactory(name="Charlie Co"),
        ),
        OpportunityFactory(
            owner=rep,
            title="Alpha",
            amount=Decimal("100"),
            expected_close_date=days(30),
            company=CompanyFactory(name="Bravo Co"),
        ),
        OpportunityFactory(
            owner=rep,
            title="Charlie",
            amount=Decimal("200"),
            expected_close_date=days(20),
            company=CompanyFactory(name="Alpha Co"),
        ),
    ]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("close", [0, 2, 1]),
        ("-close", [1, 2, 0]),
        ("amount", [1, 2, 0]),
        ("-amount", [0, 2, 1]),
        ("title", [1, 0, 2]),
        ("-title", [2, 0, 1]),
        ("company", [2, 1, 0]),
        ("-company", [0, 1, 2]),
    ],
)
def test_sort_orders_rows_both_ways(rep_client, three_deals, sort, expected):
    response = rep_client.get(PIPELINE, {"sort": sort})
    assert deal_ids(response) == [three_deals[i].pk for i in expected]


@pytest.mark.parametrize("sort", ["owner__password", "--amount", "id; drop", ""])
def test_unknown_sort_falls_back_to_expected_close_date(rep_client, three_deals, sort):
    response = rep_client.get(PIPELINE, {"sort": sort})
    assert response.status_code == 200
    assert deal_ids(response) == [three_deals[i].pk for i in (0, 2, 1)]


def test_sort_headers_link_to_the_opposite_direction(rep_client, three_deals):
    html = rep_client.get(PIPELINE, {"sort": "amount"}).content.decode()
    assert 'aria-sort="ascending"' in html
    assert 'href="?sort=-amount"' in html


# --- keyset pages -------------------------------------------------------------------------------
@pytest.fixture
def small_pages(settings):
    settings.DEBRIEF_PIPELINE_PAGE_SIZE = 5


def test_next_page_continues_after_the_last_row_without_overlap(
    rep_client, rep, small_pages, bulk_deals
):
    deals = bulk_deals(rep, 12, expected_close_date=days(7))  # all tie on the sort key
    expected = sorted(d.pk for d in deals)
    first = rep_client.get(PIPELINE, {"q": "Bulk"})
    assert deal_ids(first) == expected[:5]
    assert link(first, "prev") is None
    second = rep_client.get(PIPELINE + link(first, "next"))
    assert deal_ids(second) == expected[5:10]
    third = rep_client.get(PIPELINE + link(second, "next"))
    assert deal_ids(third) == expected[10:]
    assert link(third, "next") is None
    # Filters stay in the links.
    assert parse_qs(urlsplit(link(second, "next")).query)["q"] == ["Bulk"]


def test_previous_link_goes_back_to_the_same_rows(rep_client, rep, small_pages, bulk_deals):
    bulk_deals(rep, 12)
    first = rep_client.get(PIPELINE, {"sort": "-amount"})
    second = rep_client.get(PIPELINE + link(first, "next"))
    back = rep_client.get(PIPELINE + link(second, "prev"))
    assert deal_ids(back) == deal_ids(first)
    assert link(back, "prev") is None
    assert set(deal_ids(first)).isdisjoint(deal_ids(second))


def test_descending_pages_on_tied_amounts_visit_every_deal_once(
    rep_client, rep, small_pages, bulk_deals
):
    deals = bulk_deals(rep, 11, amount=Decimal("750.50"))
    seen, url = [], f"{PIPELINE}?sort=-amount"
    while url:
        response = rep_client.get(url)
        seen += deal_ids(response)
        next_link = link(response, "next")
        url = PIPELINE + next_link if next_link else None
    assert seen == sorted((d.pk for d in deals), reverse=True)


def test_garbage_cursor_shows_the_first_page(rep_client, rep, small_pages, bulk_deals):
    deals = bulk_deals(rep, 7)
    response = rep_client.get(PIPELINE, {"after": "not-a-cursor", "sort": "amount"})
    assert response.status_code == 200
    assert deal_ids(response) == [d.pk for d in deals[:5]]


def _forged(cursor: str, value) -> str:
    """A real cursor with its first sort value replaced, as a hostile client would send it."""
    import base64
    import json

    ordering, values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    values[0] = value
    payload = json.dumps([ordering, values]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "sort, value",
    [
        ("expected_close_date", 123),
        ("expected_close_date", [1]),
        ("expected_close_date", "2026-02-31"),
        ("amount", "1e999999"),
        ("amount", "NaN"),
        ("amount", {"a": 1}),
        ("title", "Deal\u0000"),
        ("title", "x" * 10_000),
    ],
)
def test_forged_cursors_show_the_first_page(rep_client, rep, small_pages, bulk_deals, sort, value):
    bulk_deals(rep, 7)
    first = rep_client.get(PIPELINE, {"sort": sort})
    cursor = parse_qs(urlsplit(link(first, "next")).query)["after"][0]
    response = rep_client.get(PIPELINE, {"sort": sort, "after": _forged(cursor, value)})
    assert response.status_code == 200
    assert deal_ids(response) == deal_ids(first)


def test_pages_run_no_offset_and_no_full_count(rep_client, rep, small_pages, bulk_deals):
    bulk_deals(rep, 12)
    first = rep_client.get(PIPELINE)
    with CaptureQueriesContext(connection) as ctx:
        rep_client.get(PIPELINE + link(first, "next"))
    sqls = [q["sql"].upper() for q in ctx.captured_queries]
    assert not any("OFFSET" in sql for sql in sqls)
    counts = [sql for sql in sqls if "COUNT(" in sql]
    assert len(counts) == 1 and "LIMIT 1001" in counts[0]


def test_count_is_capped(rep_client, rep, bulk_deals, monkeypatch):
    monkeypatch.setattr(views, "PIPELINE_COUNT_CAP", 3)
    bulk_deals(rep, 4)
    assert "3+ open deals" in rep_client.get(PIPELINE).content.decode()
    monkeypatch.setattr(views, "PIPELINE_COUNT_CAP", 1000)
    assert "4 open deals" in rep_client.get(PIPELINE).content.decode()


# --- htmx, empty states, rows ------------------------------------------------------------------
def test_htmx_request_gets_only_the_results_fragment(rep_client, rep):
    deal = OpportunityFactory(owner=rep)
    page = rep_client.get(PIPELINE)
    fragment = rep_client.get(PIPELINE, {"stage": "proposal"}, **HTMX)
    assert "<html" in page.content.decode() and 'id="pipeline-filters"' in page.content.decode()
    html = fragment.content.decode()
    assert "<html" not in html and 'id="pipeline-filters"' not in html
    assert 'id="pipeline-results"' in html and deal_ids(fragment) == [deal.pk]
    assert "HX-Request" in fragment["Vary"]


def test_htmx_history_restore_gets_the_whole_page(rep_client, rep):
    response = rep_client.get(
        PIPELINE, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in response.content.decode()


def test_the_same_list_again_adds_no_history_entry(rep_client, rep):
    query = "?stage=proposal&q=Acme"
    again = rep_client.get(
        PIPELINE + query,
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver{PIPELINE}{query}",
    )
    changed = rep_client.get(
        PIPELINE + query, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{PIPELINE}"
    )
    assert again["HX-Push-Url"] == "false"
    assert "HX-Push-Url" not in changed


def test_filter_form_is_wired_for_htmx_and_plain_get(rep_client, rep):
    html = rep_client.get(PIPELINE).content.decode()
    assert 'hx-get="/opportunities/"' in html and 'hx-target="#pipeline-results"' in html
    assert 'hx-push-url="true"' in html and 'method="get"' in html
    # No htmx snapshot: Back draws the form and the list from the URL (see the e2e test).
    assert 'hx-history="false"' in html
    assert 'name="sort" value="close" form="pipeline-filters"' in html


def filter_count(html: str) -> str:
    """What the folded "Filters" button says beside its name ("" when no filter is in use)."""
    match = re.search(r'<span id="pipeline-filter-count"[^>]*>(.*?)</span></summary>', html)
    if match is None:  # the fragment's out-of-band copy, which has no summary around it
        match = re.search(r'<span id="pipeline-filter-count"[^>]*>(.*?</span>)?</span>', html)
    assert match, "no filter count"
    return re.sub(r"<[^>]+>", "", match.group(1) or "").strip()


def test_folded_filters_say_how_many_are_in_use(rep_client, rep):
    html = rep_client.get(PIPELINE).content.decode()
    assert '<details id="pipeline-filters-fold" class="filters-fold" data-remember-open>' in html
    assert filter_count(html) == ""
    # Status other than open deals, a search, and two stages ticked (one filter): 3.
    query = {"status": "all", "q": "Acme", "stage": ["proposal", "negotiation"], "sort": "amount"}
    assert filter_count(rep_client.get(PIPELINE, query).content.decode()) == "3 active"
    assert filter_count(rep_client.get(PIPELINE, {"status": "open"}).content.decode()) == ""


def test_a_filter_change_updates_the_folded_count_out_of_band(rep_client, rep):
    fragment = rep_client.get(PIPELINE, {"q": "Acme", "product": ""}, **HTMX).content.decode()
    assert '<span id="pipeline-filter-count" hx-swap-oob="true">' in fragment
    assert filter_count(fragment) == "1 active"
    # A whole page (first visit, or Back) draws the count in place, never out of band.
    restore = rep_client.get(
        PIPELINE, {"q": "Acme"}, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    ).content.decode()
    assert "hx-swap-oob" not in restore and filter_count(restore) == "1 active"


def test_filters_that_could_not_be_used_unfold_and_count(rep_client, rep):
    html = rep_client.get(PIPELINE, {"amount_min": "lots", "status": "open"}).content.decode()
    assert 'class="filters-fold" data-remember-open open>' in html
    assert filter_count(html) == "1 active"


def test_empty_pipeline_invites_to_create_a_deal(rep_client, rep):
    html = rep_client.get(PIPELINE).content.decode()
    assert "No open deals yet." in html and reverse("opportunities:create") in html


def test_no_match_offers_to_clear_filters(rep_client, rep):
    OpportunityFactory(owner=rep, title="Payroll")
    html = rep_client.get(PIPELINE, {"q": "zzz"}).content.decode()
    assert "No deals match these filters." in html and "Clear filters" in html


def test_overdue_next_step_is_flagged_in_the_row(rep_client, rep):
    OpportunityFactory(owner=rep, next_step="Send pricing", next_step_due=days(-2))
    html = rep_client.get(PIPELINE).content.decode()
    assert 'class="overdue"' in html and "Overdue" in html


def _pipeline_queries(client, count_queries, **extra):
    n, response = count_queries(lambda: client.get(PIPELINE, **extra))
    assert response.status_code == 200
    return n


@pytest.mark.parametrize("as_htmx", [False, True])
@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_pipeline_query_count_does_not_grow_with_deals(
    client, rep, manager, bulk_deals, count_queries, as_htmx, persona
):
    client.force_login(rep if persona == "rep" else manager)
    extra = HTMX if as_htmx else {}
    bulk_deals(rep, 50)
    client.get(PIPELINE)  # the product catalogue is cached from the first full page on
    with_50 = _pipeline_queries(client, count_queries, **extra)
    bulk_deals(rep, 450)
    with_500 = _pipeline_queries(client, count_queries, **extra)
    # Session, user, the page with its capped count, the page's suppressions and exceptions
    # (flags); the full page draws the product and line choices from the cached catalogue; a
    # manager adds the people they may see (visibility and owner choices in one), and on the
    # full page the navigation's count of requests waiting.
    expected = {("rep", False): 4, ("rep", True): 4, ("manager", False): 6, ("manager", True): 5}
    assert with_50 == with_500 == expected[persona, as_htmx]


def test_a_managers_list_is_the_deals_access_lets_them_see(
    manager_client, manager, rep, teammate, other_rep
):
    own = OpportunityFactory(owner=manager, title="Mine")
    team = [OpportunityFactory(owner=person) for person in (rep, teammate)]
    OpportunityFactory(owner=other_rep, title="Other team")
    html = manager_client.get(PIPELINE)
    expected = Opportunity.objects.filter(access.owner_q(manager)).values_list("pk", flat=True)
    assert sorted(deal_ids(html)) == sorted(expected) == sorted([own.pk, *(d.pk for d in team)])
    assert "3 open deals" in html.content.decode()


def test_count_rides_on_the_page_and_counts_the_whole_filtered_list(
    rep_client, rep, small_pages, bulk_deals
):
    bulk_deals(rep, 12)
    OpportunityFactory(owner=rep, stage=Stage.WON)
    first = rep_client.get(PIPELINE)
    second = rep_client.get(PIPELINE + link(first, "next"))
    for response in (first, second):
        assert "12 open deals" in response.content.decode()
    assert "13 deals" in rep_client.get(PIPELINE, {"status": "all"}).content.decode()


@pytest.mark.parametrize(
    "amount, shown",
    [
        ("0", "0.00"),
        ("0.004", "0.00"),
        ("-0.004", "0.00"),
        ("0.005", "0.01"),
        ("999.995", "1,000.00"),
        ("1234567.125", "1,234,567.13"),
        ("-1234.5", "-1,234.50"),
        ("12", "12.00"),
    ],
)
def test_amounts_are_drawn_as_floatformat_draws_them(amount, shown):
    from django.template.defaultfilters import floatformat

    from opportunities.templatetags.pipeline_table import _Formats

    value = Decimal(amount)
    assert _Formats().amount(value, 2) == floatformat(value, "2g") == shown
    assert _Formats().amount(value, 0) == floatformat(value, "0g")
    assert _Formats().amount(Decimal("2.5"), 0) == floatformat(Decimal("2.5"), "0g") == "3"


# --- deal page ----------------------------------------------------------------------------------
def detail(deal) -> str:
    return reverse("opportunities:detail", args=[deal.pk])


@pytest.mark.smoke
def test_rep_cannot_open_other_teams_deal(rep_client, other_rep):
    assert rep_client.get(detail(OpportunityFactory(owner=other_rep))).status_code == 404


def test_rep_cannot_open_teammates_deal(rep_client, teammate):
    assert rep_client.get(detail(OpportunityFactory(owner=teammate))).status_code == 404


def test_other_manager_cannot_open_north_deal(client, other_manager, rep):
    client.force_login(other_manager)
    assert client.get(detail(OpportunityFactory(owner=rep))).status_code == 404


def test_missing_deal_is_404(rep_client):
    assert rep_client.get("/opportunities/999999/").status_code == 404


def test_deal_page_shows_everything_about_the_deal(rep_client, rep):
    competitor = CompetitorFactory(name="Rivalsoft")
    deal = OpportunityFactory(
        owner=rep,
        title="Finance rollout",
        amount=Decimal("12345.60"),
        currency="EUR",
        primary_competitor=competitor,
        next_step="Send pricing",
        next_step_due=days(-1),
    )
    StageChangeFactory(
        opportunity=deal, from_stage=Stage.QUALIFICATION, to_stage=Stage.PROPOSAL, changed_by=rep
    )
    html = rep_client.get(detail(deal)).content.decode()
    for text in [
        "Finance rollout",
        reverse("customers:company_detail", args=[deal.company_id]),
        deal.contact.full_name,
        deal.product.name,
        deal.product.line.name,
        "EUR 12,345.60",
        "Rivalsoft",
        "Send pricing",
        "Overdue",
        "Qualification → Proposal",
        "Riley Rep",
        reverse("opportunities:edit", args=[deal.pk]),
    ]:
        assert text in html, text


def test_closed_deal_page_has_no_edit_button(rep_client, rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.LOST)
    html = rep_client.get(detail(deal)).content.decode()
    assert reverse("opportunities:edit", args=[deal.pk]) not in html
    assert "Reopen it to edit." in html


def test_manager_gets_edit_button_on_team_deal(manager_client, rep):
    deal = OpportunityFactory(owner=rep)
    html = manager_client.get(detail(deal)).content.decode()
    assert reverse("opportunities:edit", args=[deal.pk]) in html


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_deal_page_query_count_does_not_grow_with_history(
    client, rep, manager, count_queries, persona
):
    client.force_login(rep if persona == "rep" else manager)
    deal = OpportunityFactory(owner=rep)

    def add_changes(n):
        StageChange.objects.bulk_create(
            StageChange(
                opportunity=deal, from_stage="proposal", to_stage="negotiation", changed_by=rep
            )
            for _ in range(n)
        )

    add_changes(50)
    with_50, _ = count_queries(lambda: client.get(detail(deal)))
    add_changes(450)
    with_500, response = count_queries(lambda: client.get(detail(deal)))
    assert response.status_code == 200
    # Session, user, deal, history, its reflections, the suppression check (an unsuppressed deal:
    # no exception to look up); a manager adds their team ids once, and the navigation's count
    # of exception requests waiting for them.
    assert with_50 == with_500 == {"rep": 6, "manager": 8}[persona]
    assert response.content.decode().count("Proposal → Negotiation") == 500


def test_deal_page_lists_only_its_own_history(rep_client, rep):
    deal = OpportunityFactory(owner=rep)
    other = OpportunityFactory(owner=rep)
    StageChangeFactory(opportunity=other, to_stage=Stage.NEGOTIATION)
    assert (
        "Negotiation" not in rep_client.get(detail(deal)).content.decode().split("Stage history")[1]
    )
    assert Opportunity.objects.count() == 2


# --- the rows, built in Python (opportunities/templatetags/pipeline_table.py) -------------------
def test_pipeline_rows_escape_everything_people_typed(manager_client, rep):
    evil = "<script>alert('x')</script> & \"quotes\""
    rep.full_name = f"Rep {evil}"
    rep.save()
    product = ProductFactory(name=f"Prod {evil}", line=ProductLineFactory(name=f"Line {evil}"))
    OpportunityFactory(
        owner=rep,
        title=f"Deal {evil}",
        company=CompanyFactory(name=f"Co {evil}"),
        product=product,
        next_step=f"Step {evil}",
        next_step_due=days(3),
    )
    html = manager_client.get(PIPELINE).content.decode()
    assert "<script>" not in html
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;"
    for prefix in ("Deal", "Co", "Prod", "Line", "Rep", "Step"):
        assert f"{prefix} {escaped}" in html, prefix
    assert f'<td class="owner" data-label="Owner">Rep {escaped}</td>' in html


def test_pipeline_row_shows_what_a_rep_needs_to_act(rep_client, rep):
    deal = OpportunityFactory(
        owner=rep,
        title="Payroll rollout",
        amount=Decimal("12345.50"),
        currency="EUR",
        expected_close_date=days(91),
        next_step="x" * 70,
        next_step_due=days(-2),
        stage=Stage.PROPOSAL,
    )
    closed = OpportunityFactory(owner=rep, stage=Stage.WON, title="Old win")
    html = rep_client.get(PIPELINE, {"status": "all"}).content.decode()
    row = html[html.index(f'<a href="/opportunities/{deal.pk}/">') :]
    row = row[: row.index("</tr>")]
    assert "EUR 12,345.50" in row and f"{days(91):%-d %b %Y}" in row
    # Each cell says what it is, for the cards a phone shows instead of the table (debrief.css).
    assert '<td class="company">' in row and '<td class="product">' in row
    assert '<td class="stage"><span class="badge">Proposal</span></td>' in row
    assert '<td class="num amount">EUR 12,345.50' in row
    assert f'<td class="date" data-label="Closes">{days(91):%-d %b %Y}</td>' in row
    assert '<td class="next-step" data-label="Next step">' + "x" * 59 in row
    assert '<td class="close"><details class="close-menu">' in row
    assert "x" * 59 + "…" in row and "x" * 61 not in row
    assert 'class="badge badge-lost">Overdue' in row
    for outcome in ("won", "lost", "no_decision"):
        url = reverse("reflections:close", args=[deal.pk, outcome])
        assert f'href="{url}" hx-get="{url}"' in row
    assert f'<tr class="overdue"><td><a href="/opportunities/{deal.pk}/">' in html
    closed_row = html[html.index(f'<a href="/opportunities/{closed.pk}/">') :]
    closed_row = closed_row[: closed_row.index("</tr>")]
    assert "badge-won" in closed_row and "close-menu" not in closed_row


def test_catalogue_is_cached_and_forgotten_when_a_product_or_line_changes(rep_client, rep):
    product = ProductFactory(name="Payroll Basic")
    assert "Payroll Basic" in rep_client.get(PIPELINE).content.decode()
    # Cached: drawing the filters again reads no products.
    with CaptureQueriesContext(connection) as queries:
        rep_client.get(PIPELINE)
    assert not [q for q in queries if q["sql"].startswith('SELECT "opportunities_product"."id"')]
    product.name = "Payroll Plus"
    product.save()
    html = rep_client.get(PIPELINE).content.decode()
    assert "Payroll Plus" in html and "Payroll Basic" not in html
    product.line.name = "Renamed line"
    product.line.save()
    assert "Renamed line" in rep_client.get(PIPELINE).content.decode()
    ProductFactory(name="Brand new")
    assert "Brand new" in rep_client.get(PIPELINE).content.decode()
