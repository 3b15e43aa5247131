"""
Buyers' answers in the insights: the "buyer" source of the main-reason facts, the "Buyers
said" column, and the perception gap (rep's read against the buyer's words).
"""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from insights import gap, services
from insights.models import Dimension, InsightFact, ScopeKind, Source
from insights.periods import Period
from reflections.models import Outcome, Reason
from surveys.models import (
    SurveyAnswer,
    SurveyQuestion,
    SurveyQuestionKind,
    SurveyRequest,
    SurveyStatus,
    SurveyTemplate,
)
from tests.factories import ContactFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = reverse("insights:dashboard")


@pytest.fixture(autouse=True)
def _today():
    """Mid-quarter, built from the real clock, so that the previous quarter is complete."""
    today = timezone.localdate()
    quarter = Period.containing("quarter", today)
    with time_machine.travel(
        datetime.datetime.combine(quarter.start + datetime.timedelta(days=60), datetime.time(12)),
        tick=False,
    ):
        yield


def _periods():
    now = Period.containing("quarter", timezone.localdate())
    return now, now.previous()


def _day(period: Period) -> datetime.date:
    return period.start + datetime.timedelta(days=10)


def buyer_says(reflection, label, status=SurveyStatus.ANSWERED):
    """An answered survey naming `label` as the main reason (None: rather not say)."""
    template = SurveyTemplate.objects.get(outcome=reflection.outcome, active=True)
    question = SurveyQuestion.objects.get(template=template, kind=SurveyQuestionKind.MAIN_REASON)
    contact = ContactFactory(company=reflection.opportunity.company)
    now = timezone.now()
    request = SurveyRequest.objects.create(
        reflection=reflection,
        opportunity=reflection.opportunity,
        contact=contact,
        email=contact.email,
        template=template,
        status=status,
        expires_at=now + datetime.timedelta(days=30),
        answered_at=now if status == SurveyStatus.ANSWERED else None,
    )
    SurveyAnswer.objects.create(
        request=request,
        question=question,
        reason=None
        if label is None
        else Reason.objects.get(outcome=reflection.outcome, label=label),
        is_unknown=label is None,
    )
    return request


def test_buyer_answers_become_buyer_facts_but_not_everyones(closer, settings):
    now, _ = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    for i in range(4):
        reflection = closer.close("lost", _day(now), "Price", source="rep")
        buyer_says(reflection, "Product fit" if i < 3 else "Price")
    unanswered = closer.close("lost", _day(now), "Price")
    buyer_says(unanswered, "Timing", status=SurveyStatus.SENT)  # not answered: not counted
    services.insights_rebuild()
    cells = InsightFact.objects.filter(
        period_kind="quarter",
        period_start=now.start,
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.PRIMARY_REASON_LOST,
    )
    buyers = {f.label: (f.deals, f.base) for f in cells.filter(source=Source.BUYER)}
    assert buyers == {"Product fit": (3, 4), "Price": (1, 4)}
    everyone = {f.label: f.deals for f in cells.filter(source=Source.ALL)}
    assert everyone == {"Price": 5}  # buyers never change the reps' figures


def test_dashboard_shows_what_buyers_said_next_to_each_reason(rep_client, closer, settings):
    now, _ = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 3
    for i in range(6):
        reflection = closer.close("lost", _day(now), "Price")
        if i < 4:
            buyer_says(reflection, "Price" if i == 0 else "Product fit")
    services.insights_rebuild()
    page = rep_client.get(URL, {"kind": "quarter", "period": now.start.isoformat()})
    html = page.content.decode()
    assert "Buyers said" in html
    # Of the four buyers who answered, one named price.
    assert '25% <span class="interval">1 of 4</span>' in html


def test_buyer_column_hidden_when_fewer_than_k_buyers_answered(rep_client, closer, settings):
    now, _ = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    for i in range(6):
        reflection = closer.close("lost", _day(now), "Price")
        if i < 2:
            buyer_says(reflection, "Price")
    services.insights_rebuild()
    html = rep_client.get(URL, {"kind": "quarter", "period": now.start.isoformat()}).content
    assert "Fewer than 5 buyers answered" in html.decode()
    assert "2 of 2</span>" not in html.decode()


def test_gap_counts_agreement_by_outcome_and_by_the_reps_source(closer):
    now, _ = _periods()
    # Lost: 4 pairs, the rep's "customer said" agrees twice of twice, "own read" never.
    for label, source, buyer in [
        ("Price", "customer", "Price"),
        ("Price", "customer", "Price"),
        ("Price", "rep", "Product fit"),
        ("Price", "rep", "Timing"),
    ]:
        buyer_says(closer.close("lost", _day(now), label, source=source), buyer)
    buyer_says(closer.close("won", _day(now), "Product fit"), "Product fit")
    buyer_says(closer.close("won", _day(now), "Price", source="rep"), None)  # not counted
    closer.close("won", _day(now), "Relationship")  # no survey: not counted
    report = gap.perception_gap(
        period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate(), min_slice=1
    )
    assert (report.overall.pairs, report.overall.agreed) == (5, 3)
    outcomes = {a.label: (a.pairs, a.agreed) for a in report.by_outcome}
    assert outcomes == {"Won": (1, 1), "Lost": (4, 2)}
    sources = {a.label: (a.pairs, a.agreed) for a in report.by_source}
    assert sources == {
        gap.SOURCE_LABELS["customer"]: (3, 3),
        gap.SOURCE_LABELS["rep"]: (2, 0),
    }
    lost = next(t for t in report.tables if t.outcome == Outcome.LOST)
    price = lost.rows[0]
    assert (price.label, price.pairs, price.agreed) == ("Price", 4, 2)
    assert [(b.label, b.pairs) for b in price.buyers] == [
        ("Price", 2),
        ("Product fit", 1),
        ("Timing", 1),
    ]
    assert 0 < report.overall.low < 0.6 < report.overall.high < 1  # Wilson interval of 3/5


def test_gap_hides_small_slices_and_rows(closer, settings):
    now, _ = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    for _ in range(4):
        buyer_says(closer.close("lost", _day(now), "Price"), "Price")
    report = gap.perception_gap(period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate())
    assert report.hidden and report.tables == []
    for _ in range(5):
        buyer_says(closer.close("won", _day(now), "Relationship"), "Relationship")
    report = gap.perception_gap(period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate())
    assert not report.hidden
    lost = next(t for t in report.tables if t.outcome == Outcome.LOST)
    assert lost.rows == [] and lost.hidden == 1  # four lost pairs: under K


def test_gap_is_made_for_org_team_and_product_line_only(closer):
    period, _ = _periods()
    today = timezone.localdate()
    assert gap.perception_gap(period=period, scope_kind=ScopeKind.SEGMENT, today=today) is None
    assert gap.perception_gap(period=period, scope_kind="mine", today=today) is None


def test_gap_scope_filters_by_team(closer, rep):
    now, _ = _periods()
    other = UserFactory(team=TeamFactory(name="East"))
    buyer_says(closer.close("lost", _day(now), "Price"), "Price")
    buyer_says(closer.close("lost", _day(now), "Price", owner=other), "Timing")
    report = gap.perception_gap(
        period=now,
        scope_kind=ScopeKind.TEAM,
        scope_key=str(rep.team_id),
        today=timezone.localdate(),
        min_slice=1,
    )
    assert (report.overall.pairs, report.overall.agreed) == (1, 1)


def test_a_large_change_in_agreement_is_headlined_and_chance_is_not(closer, settings):
    now, before = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS = 20
    for i in range(40):
        buyer_says(closer.close("lost", _day(before), "Price"), "Price" if i < 30 else "Timing")
        buyer_says(closer.close("lost", _day(now), "Price"), "Price" if i < 8 else "Timing")
    report = gap.perception_gap(period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate())
    assert report.overall.significant
    assert report.overall.q_value <= settings.DEBRIEF_INSIGHT_FDR
    assert "matched the buyer's in 20% of deals where both answered" in report.overall.headline
    assert "down from 75%" in report.overall.headline
    assert report.tested == 3  # overall, lost, and "customer said": one family


def test_no_headline_when_agreement_does_not_move(closer, settings):
    now, before = _periods()
    settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS = 20
    for i in range(30):
        for period in (before, now):
            buyer_says(closer.close("lost", _day(period), "Price"), "Price" if i % 2 else "Timing")
    report = gap.perception_gap(period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate())
    assert report.tested and not report.shifts


def test_gap_section_on_the_dashboard(rep_client, closer, settings):
    now, _ = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 3
    for i in range(6):
        buyer_says(closer.close("lost", _day(now), "Price"), "Price" if i < 2 else "Product fit")
    services.insights_rebuild()
    html = rep_client.get(URL, {"kind": "quarter", "period": now.start.isoformat()}).content
    html = html.decode()
    assert "Reps' reads and buyers' words" in html
    assert "the rep's read → what the buyer said" in html
    assert "Product fit 67%" in html
    mine = rep_client.get(
        URL, {"kind": "quarter", "period": now.start.isoformat(), "scope": "mine"}
    ).content.decode()
    assert "Reps' reads and buyers' words" not in mine  # never per person on the dashboard


@pytest.mark.parametrize("pairs", [6, 60])
def test_gap_query_budget_is_constant(closer, settings, django_assert_num_queries, pairs):
    now, _ = _periods()
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    for i in range(pairs):
        buyer_says(closer.close("lost", _day(now), "Price"), "Price" if i % 3 else "Timing")
    with django_assert_num_queries(2):  # the pairs, the reasons' labels
        gap.perception_gap(period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate())
