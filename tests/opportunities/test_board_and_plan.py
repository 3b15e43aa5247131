import datetime
import zoneinfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.models import Opportunity, Stage, StageChange
from opportunities.selectors import BOARD_CARDS_PER_STAGE, PLAN_LATER_SHOWN
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory
from tests.reflections.conftest import lost_answers

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
# A Wednesday; the week ends on Sunday 29 November.
WEDNESDAY = datetime.datetime(2026, 11, 25, 10, 0, tzinfo=zoneinfo.ZoneInfo("Europe/London"))


def _bulk_deals(owner, n, **fields):
    company = CompanyFactory()
    product = ProductFactory()
    today = WEDNESDAY.date()
    stages = [Stage.PROSPECTING, Stage.QUALIFICATION, Stage.PROPOSAL, Stage.NEGOTIATION]
    Opportunity.objects.bulk_create(
        Opportunity(
            company=company,
            product=product,
            owner=owner,
            title=f"Bulk {i}",
            amount=1000 + i,
            stage=fields.get("stage", stages[i % 4]),
            expected_close_date=today + datetime.timedelta(days=i % 90),
            next_step=f"Step {i}" if i % 2 else "",
            next_step_due=today + datetime.timedelta(days=(i % 20) - 5) if i % 2 else None,
        )
        for i in range(n)
    )


# --- board -------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_board_shows_a_column_per_open_stage_with_own_deals_only(rep_client, rep, teammate):
    mine = OpportunityFactory(owner=rep, stage=Stage.QUALIFICATION, title="Mine")
    OpportunityFactory(owner=teammate, stage=Stage.QUALIFICATION, title="Teammate's")
    OpportunityFactory(owner=rep, stage=Stage.WON, title="Closed one")
    response = rep_client.get(reverse("opportunities:board"))
    assert response.status_code == 200
    columns = response.context["board"]
    assert [c["stage"] for c in columns] == [
        "prospecting",
        "qualification",
        "proposal",
        "negotiation",
    ]
    assert columns[1]["cards"] == [mine] and columns[1]["count"] == 1
    content = response.content.decode()
    assert "Teammate&#x27;s" not in content and "Closed one" not in content


def test_manager_board_shows_team_deals_not_other_teams(manager_client, rep, other_rep):
    OpportunityFactory(owner=rep, title="North deal")
    OpportunityFactory(owner=other_rep, title="South deal")
    content = manager_client.get(reverse("opportunities:board")).content.decode()
    assert "North deal" in content and "South deal" not in content


def test_board_caps_cards_per_column_and_links_to_the_rest(rep_client, rep):
    _bulk_deals(rep, BOARD_CARDS_PER_STAGE + 5, stage=Stage.PROPOSAL)
    column = rep_client.get(reverse("opportunities:board")).context["board"][2]
    assert len(column["cards"]) == BOARD_CARDS_PER_STAGE
    assert column["count"] == BOARD_CARDS_PER_STAGE + 5 and column["hidden"] == 5
    closing = [card.expected_close_date for card in column["cards"]]
    assert closing == sorted(closing)


def test_htmx_move_returns_the_board_fragment_and_records_who_and_when(rep_client, rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROSPECTING)
    response = rep_client.post(
        reverse("opportunities:move", args=[deal.pk]), {"to": "qualification"}, **HTMX
    )
    assert response.status_code == 200
    assert b"<html" not in response.content and b'id="board"' in response.content
    deal.refresh_from_db()
    assert deal.stage == Stage.QUALIFICATION
    change = StageChange.objects.get(opportunity=deal)
    assert change.changed_by == rep and change.from_stage == Stage.PROSPECTING


def test_plain_move_redirects_back_to_the_board(rep_client, rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROSPECTING)
    response = rep_client.post(reverse("opportunities:move", args=[deal.pk]), {"to": "proposal"})
    assert response.status_code == 302 and response.url == reverse("opportunities:board")


@pytest.mark.parametrize("target", ["won", "lost", "bogus", ""])
def test_board_cannot_close_or_invent_stages(rep_client, rep, target):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    response = rep_client.post(
        reverse("opportunities:move", args=[deal.pk]), {"to": target}, **HTMX
    )
    assert response.status_code == 422
    assert b"open stages" in response.content
    deal.refresh_from_db()
    assert deal.stage == Stage.PROPOSAL and not StageChange.objects.exists()


def test_moving_a_closed_deal_is_refused(rep_client, rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.LOST)
    response = rep_client.post(
        reverse("opportunities:move", args=[deal.pk]), {"to": "proposal"}, **HTMX
    )
    assert response.status_code == 422
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST


def test_rep_cannot_move_teammates_deal_by_forged_id(rep_client, teammate):
    deal = OpportunityFactory(owner=teammate, stage=Stage.PROSPECTING)
    response = rep_client.post(reverse("opportunities:move", args=[deal.pk]), {"to": "proposal"})
    assert response.status_code == 404
    deal.refresh_from_db()
    assert deal.stage == Stage.PROSPECTING


def test_manager_moves_team_deal_but_not_another_teams(
    manager_client, other_manager, client, rep, other_rep
):
    mine = OpportunityFactory(owner=rep, stage=Stage.PROSPECTING)
    theirs = OpportunityFactory(owner=other_rep, stage=Stage.PROSPECTING)
    url = reverse("opportunities:move", args=[theirs.pk])
    assert manager_client.post(url, {"to": "proposal"}).status_code == 404
    url = reverse("opportunities:move", args=[mine.pk])
    assert manager_client.post(url, {"to": "proposal"}).status_code == 302
    mine.refresh_from_db()
    assert mine.stage == Stage.PROPOSAL


def test_move_is_post_only(rep_client, rep):
    deal = OpportunityFactory(owner=rep)
    assert rep_client.get(reverse("opportunities:move", args=[deal.pk])).status_code == 405


def test_board_query_count_does_not_grow_with_deals(rep_client, rep):
    counts = []
    for n in (50, 500):
        _bulk_deals(rep, n - Opportunity.objects.filter(owner=rep).count())
        for headers in ({}, HTMX):
            with CaptureQueriesContext(connection) as queries:
                assert rep_client.get(reverse("opportunities:board"), **headers).status_code == 200
            counts.append(len(queries))
    assert counts[0] == counts[2] and counts[1] == counts[3], counts
    # Session, user, one LIMITed query per open stage (4) and the per-stage counts.
    assert counts[0] <= 8, counts


def test_closing_from_the_board_comes_back_to_the_board(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    board_url = reverse("opportunities:board")
    close_url = reverse("reflections:close", args=[deal.pk, "lost"])
    page = rep_client.get(board_url).content.decode()
    assert f'hx-get="{close_url}?next={board_url}"' in page

    dialog = rep_client.get(close_url, {"next": board_url}, **HTMX).content.decode()
    assert f'<input type="hidden" name="next" value="{board_url}">' in dialog
    answers = {"prompt_set": lost_set.pk, "next": board_url, **lost_answers(lost_set)}
    response = rep_client.post(close_url, answers, **HTMX)
    assert response["HX-Redirect"] == board_url
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST


def test_closing_without_javascript_from_the_board_also_comes_back(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    board_url = reverse("opportunities:board")
    close_url = reverse("reflections:close", args=[deal.pk, "lost"])
    page = rep_client.get(close_url, {"next": board_url}).content.decode()
    assert f'href="{board_url}" data-dismiss-modal>Cancel' in page  # cancel goes back too
    answers = {"prompt_set": lost_set.pk, "next": board_url, **lost_answers(lost_set)}
    response = rep_client.post(close_url, answers)
    assert response.status_code == 302 and response.url == board_url


@pytest.mark.parametrize(
    "target", ["https://evil.example/board/", "//evil.example/board/", "javascript:alert(1)"]
)
def test_close_ignores_a_next_that_leaves_the_site(rep_client, rep, lost_set, target):
    deal = OpportunityFactory(owner=rep)
    close_url = reverse("reflections:close", args=[deal.pk, "lost"])
    dialog = rep_client.get(close_url, {"next": target}, **HTMX).content.decode()
    assert "evil.example" not in dialog and "javascript:" not in dialog
    answers = {"prompt_set": lost_set.pk, "next": target, **lost_answers(lost_set)}
    response = rep_client.post(close_url, answers, **HTMX)
    assert response["HX-Redirect"] == reverse("opportunities:detail", args=[deal.pk])


# --- plan --------------------------------------------------------------------------------------


@time_machine.travel(WEDNESDAY)
def test_plan_groups_next_steps_by_due_date(rep_client, rep):
    overdue = OpportunityFactory(
        owner=rep, next_step="Chase", next_step_due=datetime.date(2026, 11, 20)
    )
    today = OpportunityFactory(
        owner=rep, next_step="Demo", next_step_due=datetime.date(2026, 11, 25)
    )
    sunday = OpportunityFactory(
        owner=rep, next_step="Send", next_step_due=datetime.date(2026, 11, 29)
    )
    monday = OpportunityFactory(
        owner=rep, next_step="Call", next_step_due=datetime.date(2026, 11, 30)
    )
    unplanned = OpportunityFactory(owner=rep)
    OpportunityFactory(
        owner=rep, stage=Stage.WON, next_step="old", next_step_due=datetime.date(2026, 11, 1)
    )
    plan = rep_client.get(reverse("opportunities:plan")).context["plan"]
    assert plan["overdue"] == [overdue]
    assert plan["this_week"] == [today, sunday]
    assert plan["later"] == [monday]
    assert plan["unplanned"] == [unplanned]


@pytest.mark.smoke
@time_machine.travel(WEDNESDAY)
def test_plan_shows_only_the_users_own_deals(manager_client, manager, rep):
    due = WEDNESDAY.date() + datetime.timedelta(days=6)
    OpportunityFactory(owner=rep, next_step="Rep's step", next_step_due=due)
    own = OpportunityFactory(owner=manager, next_step="Own step", next_step_due=due)
    response = manager_client.get(reverse("opportunities:plan"))
    content = response.content.decode()
    assert "Own step" in content and "Rep&#x27;s step" not in content
    assert response.context["plan"]["later"] == [own]


def test_home_opens_the_plan(rep_client):
    response = rep_client.get(reverse("home"))
    assert response.status_code == 302 and response.url == reverse("opportunities:plan")


def test_empty_plan_says_what_to_do(rep_client):
    assert b"Create your first opportunity" in rep_client.get(reverse("opportunities:plan")).content


def test_inline_edit_form_then_save_rerenders_the_plan(rep_client, rep):
    deal = OpportunityFactory(owner=rep, next_step="Old", next_step_due=datetime.date(2026, 12, 1))
    url = reverse("opportunities:next_step", args=[deal.pk])
    form = rep_client.get(url, **HTMX)
    assert form.status_code == 200 and b'name="next_step"' in form.content
    assert b"<html" not in form.content
    response = rep_client.post(
        url, {"next_step": " Book workshop ", "next_step_due": "2026-12-10"}, **HTMX
    )
    assert response.status_code == 200 and b'id="plan"' in response.content
    deal.refresh_from_db()
    assert (deal.next_step, deal.next_step_due) == ("Book workshop", datetime.date(2026, 12, 10))


def test_inline_edit_due_date_without_step_is_refused(rep_client, rep):
    deal = OpportunityFactory(owner=rep, next_step="Old", next_step_due=datetime.date(2026, 12, 1))
    url = reverse("opportunities:next_step", args=[deal.pk])
    response = rep_client.post(url, {"next_step": "  ", "next_step_due": "2026-12-10"}, **HTMX)
    assert response.status_code == 422
    assert response["HX-Retarget"] == f"#deal-{deal.pk}"
    assert b"not only when" in response.content
    deal.refresh_from_db()
    assert deal.next_step == "Old"


def test_inline_edit_rejects_a_bad_date(rep_client, rep):
    deal = OpportunityFactory(owner=rep)
    url = reverse("opportunities:next_step", args=[deal.pk])
    response = rep_client.post(url, {"next_step": "Call", "next_step_due": "31/02/2026"})
    assert response.status_code == 422 and b"Enter a valid date" in response.content
    deal.refresh_from_db()
    assert deal.next_step == ""


def test_next_step_of_teammates_deal_is_404(rep_client, teammate):
    deal = OpportunityFactory(owner=teammate)
    url = reverse("opportunities:next_step", args=[deal.pk])
    assert rep_client.get(url).status_code == 404
    assert rep_client.post(url, {"next_step": "Hijack"}).status_code == 404
    deal.refresh_from_db()
    assert deal.next_step == ""


def test_next_step_of_closed_deal_is_404(rep_client, rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.WON)
    assert rep_client.get(reverse("opportunities:next_step", args=[deal.pk])).status_code == 404


def test_plain_post_saves_and_redirects_to_plan(rep_client, rep):
    deal = OpportunityFactory(owner=rep)
    url = reverse("opportunities:next_step", args=[deal.pk])
    response = rep_client.post(url, {"next_step": "Call CFO", "next_step_due": "2026-12-02"})
    assert response.status_code == 302 and response.url == reverse("opportunities:plan")


@time_machine.travel(WEDNESDAY)
def test_plan_query_count_does_not_grow_with_deals(rep_client, rep):
    counts = []
    for n in (50, 500):
        _bulk_deals(rep, n - Opportunity.objects.filter(owner=rep).count())
        with CaptureQueriesContext(connection) as queries:
            assert rep_client.get(reverse("opportunities:plan")).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    # Session, user, overdue and this week, the first of later (with its total), unplanned.
    assert counts[0] <= 5, counts


@time_machine.travel(WEDNESDAY)
def test_plan_shows_the_next_later_steps_and_says_how_many_more(rep_client, rep):
    company, product = CompanyFactory(), ProductFactory()
    monday = datetime.date(2026, 11, 30)
    Opportunity.objects.bulk_create(
        Opportunity(
            company=company,
            product=product,
            owner=rep,
            title=f"Later {i:02d}",
            amount=1000,
            stage=Stage.PROPOSAL,
            expected_close_date=monday,
            next_step=f"Step {i:02d}",
            next_step_due=monday + datetime.timedelta(days=i),
        )
        for i in range(PLAN_LATER_SHOWN + 7)
    )
    overdue = OpportunityFactory(
        owner=rep, next_step="Chase", next_step_due=datetime.date(2026, 11, 2)
    )
    response = rep_client.get(reverse("opportunities:plan"))
    plan = response.context["plan"]
    assert [d.title for d in plan["later"]] == [f"Later {i:02d}" for i in range(PLAN_LATER_SHOWN)]
    assert plan["later_total"] == PLAN_LATER_SHOWN + 7
    assert plan["more_later"] == 7
    assert plan["overdue"] == [overdue]
    content = response.content.decode()
    assert f"These are the next {PLAN_LATER_SHOWN}; 7 more next steps are due after" in content
    assert f'<span class="badge">{PLAN_LATER_SHOWN + 7}</span>' in content


def test_inline_edit_shows_the_due_date_in_the_date_input_format(rep_client, rep):
    deal = OpportunityFactory(owner=rep, next_step="Call", next_step_due=datetime.date(2026, 12, 3))
    form = rep_client.get(reverse("opportunities:next_step", args=[deal.pk]), **HTMX)
    # <input type="date"> only understands ISO dates; a localised one shows as empty.
    assert b'value="2026-12-03"' in form.content


# --- a manager's home: what waits for their decision ------------------------------------------
def _waiting_request(requester, company_name="Brightwater", justification=None):
    """A pending exception request by `requester`, made through the service."""
    from suppressions import decisions
    from suppressions import services as suppressions_services
    from suppressions.models import Suppression, SuppressionReason, SuppressionScope

    company = CompanyFactory(name=company_name)
    contact = ContactFactory(company=company, full_name="Dana Buyer")
    product = ProductFactory(name="Card Terminal")
    today = decisions.today()
    Suppression.objects.create(
        company=company,
        contact=contact,
        scope=SuppressionScope.PRODUCT,
        product=product,
        reason=SuppressionReason.DECLINED,
        starts_on=today,
        until=today + datetime.timedelta(days=60),
    )
    return suppressions_services.override_request(
        actor=requester,
        company=company,
        contact=contact,
        product=product,
        justification=justification or "Their new CFO asked us to come back with a quote.",
    )


def test_manager_home_shows_the_requests_waiting_for_them(manager_client, rep):
    request = _waiting_request(rep)
    response = manager_client.get(reverse("home"), follow=True)
    html = response.content.decode()
    assert "Waiting for your decision" in html
    section = html[html.index(f'id="waiting-{request.pk}"') :]
    for text in ("Riley Rep", "Card Terminal", "Brightwater", "Dana Buyer", "new CFO asked"):
        assert text in section[:3000], text
    decide = reverse("suppressions:override_decide", args=[request.pk])
    assert f'action="{decide}"' in section
    assert f'name="next" value="{reverse("opportunities:plan")}"' in section
    # The navigation counts it, on this page and every other one.
    assert (
        'Exceptions <span class="nav-count"' in html
        and '>1<span class="visually-hidden"> waiting</span>' in html
    )
    board = manager_client.get(reverse("opportunities:board")).content.decode()
    assert '>1<span class="visually-hidden"> waiting</span>' in board


def test_approving_from_the_home_comes_back_and_the_count_goes(manager_client, rep):
    request = _waiting_request(rep)
    response = manager_client.post(
        reverse("suppressions:override_decide", args=[request.pk]),
        {"decision": "approve", "next": reverse("opportunities:plan")},
    )
    assert response.status_code == 302 and response.url == reverse("opportunities:plan")
    request.refresh_from_db()
    assert request.status == "approved"
    html = manager_client.get(response.url).content.decode()
    assert "Approved Riley Rep&#x27;s request." in html
    assert "nav-count" not in html and "Nothing waits for your decision." in html


def test_deciding_ignores_a_next_that_leaves_the_site(manager_client, rep):
    request = _waiting_request(rep)
    response = manager_client.post(
        reverse("suppressions:override_decide", args=[request.pk]),
        {"decision": "approve", "next": "https://evil.example/"},
    )
    assert response.url == reverse("suppressions:override_list")


def test_only_requests_the_manager_may_decide_are_shown_and_counted(
    client, rep, other_rep, manager, other_manager, admin_user
):
    mine = _waiting_request(rep, company_name="Brightwater")
    theirs = _waiting_request(other_rep, company_name="Southgate")
    decided = _waiting_request(rep, company_name="Oldfield")
    decided.status = "declined"
    decided.save()
    client.force_login(manager)
    html = client.get(reverse("opportunities:plan")).content.decode()
    assert f'id="waiting-{mine.pk}"' in html and f'id="waiting-{theirs.pk}"' not in html
    assert "Oldfield" not in html and '>1<span class="visually-hidden"> waiting' in html
    client.force_login(other_manager)
    html = client.get(reverse("opportunities:plan")).content.decode()
    assert f'id="waiting-{theirs.pk}"' in html and f'id="waiting-{mine.pk}"' not in html
    client.force_login(admin_user)
    html = client.get(reverse("opportunities:plan")).content.decode()
    assert f'id="waiting-{mine.pk}"' in html and f'id="waiting-{theirs.pk}"' in html
    assert '>2<span class="visually-hidden"> waiting' in html


def test_reps_never_see_the_count_or_the_section(rep_client, rep, teammate):
    _waiting_request(rep)
    _waiting_request(teammate, company_name="Southgate")
    for url in (reverse("opportunities:plan"), reverse("suppressions:override_list")):
        html = rep_client.get(url).content.decode()
        assert "nav-count" not in html and "Waiting for your decision" not in html


def test_a_manager_with_nothing_waiting_sees_a_plain_line_and_no_badge(manager_client, other_rep):
    _waiting_request(other_rep)  # another team's: not theirs to decide
    html = manager_client.get(reverse("opportunities:plan")).content.decode()
    assert "Nothing waits for your decision." in html and "nav-count" not in html


def test_a_manager_does_not_decide_their_own_request(client, manager, north, admin_user):
    manager.team = north  # a member of the team they manage, asking for an exception
    manager.save()
    own = _waiting_request(manager)
    client.force_login(manager)
    html = client.get(reverse("opportunities:plan")).content.decode()
    assert f'id="waiting-{own.pk}"' not in html and "nav-count" not in html
    client.force_login(admin_user)
    assert f'id="waiting-{own.pk}"' in client.get(reverse("opportunities:plan")).content.decode()


@time_machine.travel(WEDNESDAY)
def test_manager_home_shows_the_oldest_few_and_links_to_the_rest(manager_client, rep):
    from suppressions.brief import WAITING_SHOWN

    requests = [_waiting_request(rep, company_name=f"Co {i}") for i in range(WAITING_SHOWN + 2)]
    html = manager_client.get(reverse("opportunities:plan")).content.decode()
    assert html.count('<li id="waiting-') == WAITING_SHOWN
    assert f'id="waiting-{requests[0].pk}"' in html  # the one waiting longest comes first
    assert f"See all {WAITING_SHOWN + 2} waiting requests" in html


@time_machine.travel(WEDNESDAY)
def test_manager_home_query_count_does_not_grow_with_requests(manager_client, rep):
    counts = []
    for n in (1, 8):
        while _count_waiting(rep) < n:
            _waiting_request(rep, company_name=f"Co {_count_waiting(rep)}")
        with CaptureQueriesContext(connection) as queries:
            assert manager_client.get(reverse("opportunities:plan")).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    # Session, user, the plan's groups (overdue and this week, later with its total, unplanned),
    # the requests shown, and the navigation's count: one query for it on every page.
    assert counts[0] == 7, counts
    count_sql = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len([sql for sql in count_sql if "suppressionoverride" in sql]) == 1


def _count_waiting(requester):
    from suppressions.models import SuppressionOverride

    return SuppressionOverride.objects.filter(requested_by=requester).count()
