"""
The perception gap's stored counts (insights.gap.counts, GapCount): a rebuild stores what the
live grouping reads, for every period and scope; a refresh after closes, reopenings, amendments,
buyers' answers and merged reasons leaves what a rebuild would; and the dashboard reads the
stored rows, in a number of queries that does not grow with the reflections.
"""

import datetime
import random
from collections import Counter
from unittest import mock

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from insights import gap, services
from insights.models import GapCount, ScopeKind
from insights.periods import Period
from reflections import signals
from reflections.models import Answer, QuestionKind, Reason, Reflection
from reflections.services import reason_merge
from surveys.models import (
    SurveyRequest,
)
from tests.factories import ProductFactory, ProductLineFactory, UserFactory
from tests.insights.conftest import Closer, buyer_answer, reopen_deal

pytestmark = pytest.mark.django_db

URL = reverse("insights:dashboard")
REASONS = {
    "won": ["Product fit", "Relationship", "Price"],
    "lost": ["Price", "Product fit", "Timing", "Budget"],
    "no_decision": ["Budget frozen", "Priorities changed", "Timing"],
}
FIELDS = [f.name for f in GapCount._meta.fields if f.name != "id"]


@pytest.fixture(autouse=True)
def _today():
    """Mid-quarter, from the real clock, so that earlier quarters are complete."""
    quarter = Period.containing("quarter", timezone.localdate())
    with time_machine.travel(
        datetime.datetime.combine(quarter.start + datetime.timedelta(days=50), datetime.time(12)),
        tick=False,
    ):
        yield


class Floor:
    """Closes with their signals, over two teams, a teamless owner and two product lines."""

    def __init__(self, rep, teammate, other_rep):
        self.lines = [ProductLineFactory(name="Payments"), ProductLineFactory(name="Lending")]
        self.products = [ProductFactory(line=line) for line in self.lines]
        self.owners = [rep, teammate, other_rep, UserFactory(team=None)]
        self.closer = Closer(rep, product=self.products[0])
        self.pick = random.Random(2026)
        now = Period.containing("quarter", timezone.localdate())
        self.quarters = [now.shift(-2), now.previous(), now]

    def day(self) -> datetime.date:
        quarter = self.pick.choice(self.quarters)
        return quarter.start + datetime.timedelta(days=self.pick.randrange(0, 49))

    def close(self, day=None, *, answered=None):
        """A close as opportunity_close makes it; its buyer answers (or not) at random."""
        pick = self.pick
        outcome = pick.choice(["won", "won", "lost", "lost", "no_decision"])
        with transaction.atomic():
            reflection = self.closer.close(
                outcome,
                day or self.day(),
                pick.choice(REASONS[outcome]),
                pick.choice(["customer", "rep", ""]),
                owner=pick.choice(self.owners),
                product=pick.choice(self.products),
                unknown=pick.random() < 0.1,
            )
            signals.reflection_submitted.send(
                sender=Reflection, reflection=reflection, created=True
            )
        if answered if answered is not None else pick.random() < 0.7:
            self.buyer_answers(reflection)
        return reflection

    def buyer_answers(self, reflection, label=None):
        """A first answer or a changed one: `label`, else a drawn one or "don't know"."""
        unknown = label is None and self.pick.random() < 0.15
        label = label or self.pick.choice(REASONS[reflection.outcome])
        buyer_answer(reflection, None if unknown else label)

    def reopen(self, reflection):
        reopen_deal(reflection)

    def amend(self, reflection):
        """As reflection_amend does it: another main reason, maybe from another source."""
        outcome = reflection.outcome
        with transaction.atomic():
            signals.reflection_amending.send(sender=Reflection, reflection=reflection)
            reflection.answers.filter(question__kind=QuestionKind.PRIMARY_REASON).delete()
            Answer.objects.create(
                reflection=reflection,
                question=self.closer.question(outcome, QuestionKind.PRIMARY_REASON),
                reason=Reason.objects.get(
                    outcome=outcome, label=self.pick.choice(REASONS[outcome])
                ),
                reason_source=self.pick.choice(["customer", "rep"]),
            )
            reflection.edited_at = timezone.now()
            reflection.save(update_fields=["edited_at"])
            signals.reflection_submitted.send(
                sender=Reflection, reflection=reflection, created=False
            )


@pytest.fixture
def floor(rep, teammate, other_rep, settings):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 3
    floor = Floor(rep, teammate, other_rep)
    for _ in range(90):
        floor.close()
    return floor


def stored():
    return sorted(GapCount.objects.values_list(*FIELDS), key=repr)


def rebuilt():
    services.insights_rebuild()
    return stored()


def _scopes(floor):
    teams = {owner.team_id for owner in floor.owners if owner.team_id}
    return [
        (ScopeKind.ORG, "", Q()),
        *[(ScopeKind.TEAM, str(t), Q(opportunity__owner__team_id=t)) for t in sorted(teams)],
        *[
            (ScopeKind.PRODUCT_LINE, str(line.pk), Q(opportunity__product__line_id=line.pk))
            for line in floor.lines
        ],
    ]


def _periods(floor):
    quarters = floor.quarters
    months = [q.start for q in quarters] + [
        quarters[1].start.replace(month=quarters[1].start.month + 1)
    ]
    return [*quarters, *[Period.containing("month", m) for m in months]]


def test_a_rebuild_stores_the_live_grouping_of_every_period_and_scope(floor):
    services.insights_rebuild()
    checked = 0
    for period in _periods(floor):
        for scope_kind, scope_key, where in _scopes(floor):
            live = Counter()
            for _, *cell, deals in gap._pairs(
                start=period.start, end=period.end, split=period.start, where=where
            ):
                live[tuple(cell)] += deals
            rows = GapCount.objects.filter(
                period_kind=period.kind,
                period_start=period.start,
                scope_kind=scope_kind,
                scope_key=scope_key,
            ).values_list(*gap.GAP_FIELDS, "deals")
            assert Counter({tuple(cell): deals for *cell, deals in rows}) == live
            checked += sum(live.values())
    assert checked > 100  # not an empty world


def _gap_view(report):
    agreements = [
        (a.label, a.pairs, a.agreed, a.prev_pairs, a.prev_agreed, a.low, a.high, a.p_value)
        for a in report.rows
    ]
    tables = [
        (t.outcome, t.hidden, [(r.label, r.pairs, r.agreed, r.buyers) for r in t.rows])
        for t in report.tables
    ]
    return agreements, tables, report.tested, [a.headline for a in report.rows]


def test_the_report_from_stored_counts_is_the_report_read_live(floor):
    services.insights_rebuild()
    today = timezone.localdate()
    for period in _periods(floor):
        for scope_kind, scope_key, _ in _scopes(floor):
            options = {
                "period": period,
                "scope_kind": scope_kind,
                "scope_key": scope_key,
                "today": today,
                "min_slice": 2,
            }
            from_store = gap.perception_gap(**options)
            with mock.patch.object(gap, "_stored_pairs", return_value=None):
                live = gap.perception_gap(**options)
            assert _gap_view(from_store) == _gap_view(live)


def test_a_refresh_after_every_kind_of_change_leaves_what_a_rebuild_would(floor):
    services.insights_rebuild()
    pick = random.Random(7)
    for _ in range(3):
        reflections = list(Reflection.objects.filter(current=True).order_by("pk"))
        answered = [r for r in reflections if SurveyRequest.objects.filter(reflection=r).exists()]
        for _ in range(4):
            floor.close()
        floor.close(answered=True)
        reopened, amended, changed = pick.sample(answered, 3)
        floor.reopen(reopened)
        floor.amend(amended)
        floor.buyer_answers(changed)  # changed answers
        floor.buyer_answers(pick.choice([r for r in reflections if r not in answered]))
        services.insights_refresh_pending()
        assert stored() == rebuilt()
    price = Reason.objects.get(outcome="lost", label="Price")
    with transaction.atomic():
        reason_merge(reason=Reason.objects.get(outcome="lost", label="Budget"), into=price)
    services.insights_refresh_pending()
    assert stored() == rebuilt()


def _org_quarter_pairs(period: Period) -> int:
    return sum(
        GapCount.objects.filter(
            period_kind="quarter", period_start=period.start, scope_kind=ScopeKind.ORG
        ).values_list("deals", flat=True)
    )


def test_a_buyers_answers_reach_the_stored_counts(floor):
    now = Period.containing("quarter", timezone.localdate())
    services.insights_rebuild()
    with transaction.atomic():
        reflection = floor.closer.close("lost", now.start + datetime.timedelta(days=3), "Price")
        signals.reflection_submitted.send(sender=Reflection, reflection=reflection, created=True)
    services.insights_refresh_pending()
    before = _org_quarter_pairs(now)
    floor.buyer_answers(reflection, "Timing")
    services.insights_refresh_pending()
    assert _org_quarter_pairs(now) == before + 1
    assert stored() == rebuilt()
    floor.buyer_answers(reflection, "Price")  # changed: now they agree
    services.insights_refresh_pending()
    agreed = GapCount.objects.filter(
        period_kind="quarter",
        period_start=now.start,
        scope_kind=ScopeKind.ORG,
        rep_key=Reason.objects.get(outcome="lost", label="Price").pk,
        buyer_key=Reason.objects.get(outcome="lost", label="Price").pk,
    )
    assert agreed.exists()
    assert stored() == rebuilt()


def test_a_close_without_a_buyers_answer_does_not_recount_the_gap(floor):
    services.insights_rebuild()
    floor.close(answered=False)
    with mock.patch.object(gap, "counts", side_effect=AssertionError("recounted")):
        services.insights_refresh_pending()


def test_the_first_refresh_stores_everything_when_nothing_was_stored(floor):
    assert not GapCount.objects.exists()
    floor.close(answered=True)
    services.insights_refresh_pending()
    assert gap.stored_once()
    assert stored() == rebuilt()


def test_once_stored_the_gap_never_reads_the_answers_live(floor):
    services.insights_rebuild()
    GapCount.objects.exclude(scope_kind="").delete()  # stored, and no pair in any slice
    now = Period.containing("quarter", timezone.localdate())
    with mock.patch.object(gap, "_pairs", side_effect=AssertionError("read live")):
        report = gap.perception_gap(
            period=now, scope_kind=ScopeKind.ORG, today=timezone.localdate(), min_slice=1
        )
    assert report.overall.pairs == 0 and report.tables == []


def _dashboard_queries(client, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, params).status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize("scope", ["org", "team", "product_line"])
def test_the_dashboard_reads_stored_counts_in_queries_that_do_not_grow(
    client, rep, floor, settings, scope
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 2
    client.force_login(rep)
    now = Period.containing("quarter", timezone.localdate())
    value = {
        "org": "org",
        "team": f"team:{rep.team_id}",
        "product_line": f"product_line:{floor.lines[0].pk}",
    }[scope]
    params = {"kind": "quarter", "period": now.start.isoformat(), "scope": value}
    services.insights_rebuild()
    with mock.patch.object(gap, "_pairs", side_effect=AssertionError("read live")):
        small = _dashboard_queries(client, params)
        for _ in range(150):
            floor.close(
                floor.quarters[-1].start + datetime.timedelta(days=floor.pick.randrange(49))
            )
        services.insights_rebuild()
        large = _dashboard_queries(client, params)
        html = client.get(URL, params).content.decode()
    assert small == large
    assert "Reps' reads and buyers' words" in html
