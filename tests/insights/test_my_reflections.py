"""My reflections: a rep's private mirror. Only the signed-in user's data, for everyone."""

import datetime

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from insights import services
from reflections.models import CallDebrief
from tests.factories import CompanyFactory, ProductFactory, ProductLineFactory
from tests.insights.conftest import Closer
from tests.insights.test_perception_gap import buyer_says

pytestmark = pytest.mark.django_db

URL = reverse("insights:my_reflections")
# A Thursday in the middle of Q2 2026; deals close in Q2 and the page shows Q2.
NOW = datetime.datetime(2026, 5, 21, 12, tzinfo=datetime.UTC)
DAY = NOW.date() - datetime.timedelta(days=7)


@pytest.fixture(autouse=True)
def _frozen(settings):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def two_reps(rep, teammate):
    """Riley (rep) and a teammate each close deals with a lesson of their own."""
    mine, theirs = Closer(rep), Closer(teammate)
    for i in range(3):
        mine.close("lost", DAY, "Price", text=f"Riley's own lesson {i}")
        theirs.close("lost", DAY, "Timing", text=f"Teammate's private lesson {i}")
    CallDebrief.objects.create(
        company=mine.company,
        author=rep,
        call_date=DAY,
        customer_said="Riley's call note about budgets",
    )
    CallDebrief.objects.create(
        company=theirs.company,
        author=teammate,
        call_date=DAY,
        customer_said="Teammate's call note",
    )
    services.insights_rebuild()
    return mine, theirs


def test_the_page_shows_only_the_signed_in_users_own_lessons(rep_client, rep, teammate, two_reps):
    # A forged user id anywhere in the query changes nothing: the page takes none.
    for query in ({}, {"user": teammate.pk}, {"owner": teammate.pk}, {"author": teammate.pk}):
        html = rep_client.get(URL, query).content.decode()
        assert "Riley&#x27;s own lesson 2" in html and "Riley&#x27;s call note" in html
        assert "Teammate" not in html
    assert "Only you can see this page." in html


@pytest.mark.parametrize("persona", ["manager", "admin_user", "other_rep"])
def test_managers_admins_and_other_reps_see_their_own_page_never_the_reps(
    request, client, persona, two_reps, rep
):
    client.force_login(request.getfixturevalue(persona))
    for query in ({}, {"user": rep.pk}, {"q": "Riley"}):
        response = client.get(URL, query)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Riley&#x27;s own lesson" not in html and "Riley&#x27;s call note" not in html
        assert "You closed no deals with a reflection" in html


def test_no_admin_page_export_or_digest_carries_a_reps_private_page(
    admin_client_, manager, two_reps, settings
):
    from django.contrib import admin

    assert not any("lesson" in model._meta.model_name for model in admin.site._registry)
    index = admin_client_.get(reverse("admin:index")).content.decode()
    assert "My reflections" not in index
    services.digest_send(manager=manager, today=NOW.date())
    (digest,) = mail.outbox
    assert "lesson" not in digest.body and "Riley" not in digest.body


def test_anonymous_is_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and reverse("login") in response.url


def test_lessons_search_filter_and_pages(rep_client, rep, settings):
    payments = ProductFactory(line=ProductLineFactory(name="Payments"))
    lending = ProductFactory(line=ProductLineFactory(name="Lending"))
    closer = Closer(rep, product=payments, company=CompanyFactory())
    for i in range(25):
        closer.close("lost", DAY - datetime.timedelta(days=i), "Price", text=f"Budget lesson {i}")
    closer.close("won", DAY, "Product fit", product=lending, text="Lending win lesson")
    html = rep_client.get(URL).content.decode()
    assert "Lending win lesson" in html and "Page 1 of 2" in html
    assert "Budget lesson 0" in html and "Budget lesson 24" not in html  # newest first
    second = rep_client.get(URL, {"page": 2}).content.decode()
    assert "Budget lesson 24" in second
    found = rep_client.get(URL, {"q": "lesson 7"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="lessons")
    assert found.status_code == 200 and b"<html" not in found.content
    assert b"Budget lesson 7" in found.content and b"Budget lesson 8" not in found.content
    by_line = rep_client.get(URL, {"line": lending.line_id}).content.decode()
    assert "Lending win lesson" in by_line and "Budget lesson" not in by_line
    by_outcome = rep_client.get(URL, {"outcome": "won"}).content.decode()
    assert "Lending win lesson" in by_outcome and "Budget lesson 3" not in by_outcome
    nothing = rep_client.get(URL, {"q": "no such words"}).content.decode()
    assert "Nothing you wrote matches" in nothing
    # Malformed filters fall back to defaults instead of failing.
    for bad in ({"line": "x"}, {"outcome": "maybe"}, {"page": "999"}, {"period": "0001-01-01"}):
        assert rep_client.get(URL, bad).status_code == 200


def test_a_difference_from_the_organisation_is_called_only_when_it_holds(rep_client, rep, teammate):
    """Riley loses on price 30 of 40 times; the rest of the organisation 12 of 60."""
    mine, rest = Closer(rep), Closer(teammate)
    for i in range(40):
        mine.close("lost", DAY, "Price" if i < 30 else "Timing")
    for i in range(60):
        rest.close("lost", DAY, "Price" if i < 12 else "Timing")
    services.insights_rebuild()
    html = rep_client.get(URL).content.decode()
    assert "Where you differ from the organisation" in html
    assert (
        "Price was the main reason in your losses: 75% (30 of 40) against 20% (12 of 60) "
        "for the rest of the organisation." in html
    )
    assert "meaningful" in html


def test_few_deals_say_that_no_difference_can_be_told_yet(rep_client, two_reps):
    html = rep_client.get(URL).content.decode()
    assert "no difference can be told from chance yet" in html
    assert 'class="badge badge-warn">meaningful' not in html


def test_what_works_against_my_objections_reuses_won_deals_answers(rep_client, rep, teammate):
    Closer(rep).close("lost", DAY, "Price", objections=["Price too high"])
    Closer(teammate).close(
        "won", DAY, "Product fit", objections=["Price too high"], text="Phase the rollout."
    )
    html = rep_client.get(URL).content.decode()
    assert "“Price too high”" in html and "Phase the rollout." in html


def test_query_count_is_the_same_for_50_and_500_reflections(client, rep, django_assert_num_queries):
    client.force_login(rep)
    closer = Closer(rep)
    counts = []
    for total in (50, 500):
        while closer.owner.opportunities.count() < total:
            reflection = closer.close(
                "lost" if closer.owner.opportunities.count() % 3 else "won",
                DAY,
                "Price" if closer.owner.opportunities.count() % 3 else "Product fit",
                objections=["Price too high"],
                text="A lesson",
            )
            if reflection.pk % 2:
                buyer_says(reflection, "Product fit")
        services.insights_rebuild()
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    # Session, user, product lines, lessons (count, page), periods, my facts (3: reflections,
    # answers, buyers' answers), the organisation's facts, objections heard, their won
    # answers, my calibration (2: mine, everyone's).
    assert counts[0] <= 15, counts


def test_my_calibration_counts_only_my_deals_against_my_buyers(rep_client, rep, teammate):
    mine, theirs = Closer(rep), Closer(teammate)
    for said, source, buyer in [
        ("Price", "customer", "Price"),
        ("Price", "customer", "Price"),
        ("Price", "customer", "Timing"),
        ("Price", "rep", "Product fit"),
    ]:
        buyer_says(mine.close("lost", DAY, said, source=source), buyer)
    for _ in range(4):
        buyer_says(theirs.close("lost", DAY, "Timing", source="rep"), "Timing")
    page = rep_client.get(URL).content.decode()
    section = page.split('id="calibration-title"')[1].split("</section>")[0]
    rows = {
        label: section.split(label)[1].split("</tr>")[0]
        for label in ("All my closes", "the customer said so", "my own read")
    }
    assert '<td class="num">4</td>' in rows["All my closes"]
    assert "50%" in rows["All my closes"]  # 2 of my 4
    assert "75%" in rows["All my closes"]  # everyone: 6 of 8
    assert "67%" in rows["the customer said so"]  # 2 of my 3
    assert "0%" in rows["my own read"]  # 0 of my 1
    assert "Only you see this" in section


def test_calibration_without_surveys_says_how_to_get_one(rep_client, two_reps):
    page = rep_client.get(URL).content.decode()
    assert "None of your buyers has answered a survey" in page
