"""
The dashboard's two live reads, the perception gap's pairs and the quoted answers, checked
against a plain Python reading of the same rows on a world with several periods, teams,
product lines, merged reasons, reopened deals and unanswered surveys.
"""

import datetime
from collections import Counter

import pytest
import time_machine
from django.db.models import Q
from django.utils import timezone

from insights import gap
from insights import selectors as insight_selectors
from insights.periods import Period
from opportunities.models import ProductLine
from reflections.models import Answer, QuestionKind, Reason, Reflection
from surveys.models import SurveyAnswer, SurveyQuestionKind, SurveyStatus
from tests.factories import ProductFactory, ProductLineFactory
from tests.insights.conftest import Closer
from tests.insights.test_perception_gap import buyer_says

pytestmark = pytest.mark.django_db

READS = ["Price", "Product fit", "Timing", "Budget"]


@pytest.fixture(autouse=True)
def _today():
    """Mid-quarter, from the real clock, so that earlier quarters are complete."""
    quarter = Period.containing("quarter", timezone.localdate())
    with time_machine.travel(
        datetime.datetime.combine(quarter.start + datetime.timedelta(days=50), datetime.time(12)),
        tick=False,
    ):
        yield


@pytest.fixture
def world(rep, teammate, other_rep):
    """Three quarters of closes over two teams and two lines, with buyers' answers."""
    now = Period.containing("quarter", timezone.localdate())
    lines = [ProductLineFactory(name="Payments"), ProductLineFactory(name="Lending")]
    products = [ProductFactory(line=line) for line in lines]
    closer = Closer(rep, product=products[0])
    owners = [rep, teammate, other_rep]
    # "Budget" (lost) is merged into "Price": both count under Price's key.
    price = Reason.objects.get(outcome="lost", label="Price")
    Reason.objects.filter(outcome="lost", label="Budget").update(active=False, merged_into=price)
    made = 0
    for back, period in enumerate([now, now.previous(), now.previous().previous()]):
        for i in range(24 + 6 * back):
            outcome = "won" if i % 3 == 0 else "lost"
            day = period.start + datetime.timedelta(days=(i * 7) % 45)
            if outcome == "won":
                reason = ["Product fit", "Relationship", "Price"][i % 3]
            else:
                reason = READS[i % 4] if i % 11 else None
            reflection = closer.close(
                outcome,
                day,
                reason,
                source="rep" if i % 2 else "customer",
                owner=owners[i % 3],
                product=products[i % 2],
                unknown=reason is None,
                text=f"Lesson {back}-{i}" if i % 5 else "",
            )
            # Submitted in an order other than closed, so "latest" is not "highest id".
            Reflection.objects.filter(pk=reflection.pk).update(
                submitted_at=timezone.now() - datetime.timedelta(hours=(i * 37) % 101 + 24 * back)
            )
            made += 1
            if i % 4 == 3:
                continue  # no survey
            if i % 13 == 0:
                buyer_says(
                    reflection, "Timing" if outcome == "lost" else "Price", SurveyStatus.SENT
                )
            elif i % 7 == 0:
                buyer_says(reflection, None)  # preferred not to say
            elif outcome == "lost":
                buyer_says(reflection, READS[(i // 2) % 4])
            else:
                buyer_says(reflection, ["Product fit", "Price"][i % 2])
        # A reopened deal's reflection leaves history, with its survey.
        old = Reflection.objects.filter(closed_date__gte=period.start, outcome="lost").first()
        Reflection.objects.filter(pk=old.pk).update(current=False)
    assert made > 80
    return now


def _key(reason):
    return None if reason is None else (reason.merged_into_id or reason.pk)


def _expected_pairs(start, end, split, where=None):
    """The gap's pairs read one reflection at a time, as the rules say."""
    counts = Counter()
    reflections = Reflection.objects.filter(
        current=True, closed_date__gte=start, closed_date__lt=end
    )
    if where is not None:
        reflections = reflections.filter(where)
    for reflection in reflections.select_related("survey_request"):
        request = getattr(reflection, "survey_request", None)
        if request is None or request.status != SurveyStatus.ANSWERED:
            continue
        rep = (
            Answer.objects.filter(reflection=reflection, question__kind=QuestionKind.PRIMARY_REASON)
            .select_related("reason")
            .order_by("id")
            .first()
        )
        if rep is None or rep.reason is None:
            continue
        for buyer in SurveyAnswer.objects.filter(
            request=request, question__kind=SurveyQuestionKind.MAIN_REASON, reason__isnull=False
        ).select_related("reason"):
            now = reflection.closed_date >= split
            counts[
                (now, reflection.outcome, _key(rep.reason), rep.reason_source, _key(buyer.reason))
            ] += 1
    return counts


def _as_counter(rows):
    return Counter({tuple(row[:5]): row[5] for row in rows})


@pytest.mark.parametrize("kind", ["quarter", "month"])
def test_gap_pairs_are_the_periods_pairs_for_every_scope(world, rep, kind):
    period = Period.containing(kind, timezone.localdate())
    if kind == "month":
        period = period.previous()  # a complete month with closes in it
    start, end = period.previous().start, period.end
    line = ProductLine.objects.get(name="Lending")
    scopes = [
        (Q(), None),
        (Q(opportunity__owner__team_id=rep.team_id), Q(opportunity__owner__team_id=rep.team_id)),
        (Q(opportunity__product__line_id=line.pk), Q(opportunity__product__line_id=line.pk)),
        (Q(opportunity__owner=rep), Q(opportunity__owner=rep)),
    ]
    for where, expected_where in scopes:
        got = _as_counter(gap._pairs(start=start, end=end, split=period.start, where=where))
        expected = _expected_pairs(start, end, period.start, expected_where)
        assert got == expected
    assert sum(_expected_pairs(start, end, period.start).values()) > 5  # not an empty world


def _expected_quotes(period, keys, where=None):
    """Each reason's three latest non-empty free-text answers, in the page's order."""
    per_key = {}
    reflections = Reflection.objects.filter(
        current=True, closed_date__gte=period.start, closed_date__lt=period.end
    )
    if where is not None:
        reflections = reflections.filter(where)
    for reflection in reflections:
        rep = (
            Answer.objects.filter(reflection=reflection, question__kind=QuestionKind.PRIMARY_REASON)
            .select_related("reason")
            .first()
        )
        if rep is None or _key(rep.reason) not in keys:
            continue
        for text in Answer.objects.filter(
            reflection=reflection, question__kind=QuestionKind.SHORT_TEXT
        ).exclude(text=""):
            per_key.setdefault(_key(rep.reason), []).append(
                (reflection.submitted_at, text.id, text.question.order, text.text)
            )
    rows = []
    for key, answers in per_key.items():
        latest = sorted(answers, key=lambda a: (a[0], a[1]), reverse=True)[:3]
        rows += [(key, text, order, pk) for _, pk, order, text in latest]
    return sorted(rows, key=lambda row: (row[2], row[3]))


def _read_with(read, period, keys, where=None):
    answers = Answer.objects.filter(
        question__kind=QuestionKind.SHORT_TEXT,
        reflection__current=True,
        reflection__closed_date__gte=period.start,
        reflection__closed_date__lt=period.end,
    ).exclude(text="")
    if where is not None:
        answers = answers.filter(where)
    rows = read(answers, keys)
    return sorted(((r[0], r[1], r[3], r[4]) for r in rows), key=lambda row: (row[2], row[3]))


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(
            insight_selectors._latest_per_reason,
            id="union",
            # The organisation's quotes take this path where the database runs a LIMIT inside
            # UNION ALL (PostgreSQL); SQLite takes the window path below. Fails in CI without it.
            marks=pytest.mark.needs_postgres,
        ),
        pytest.param(insight_selectors._ranked_per_reason, id="window"),
    ],
)
def test_quotes_are_each_reasons_latest_answers(world, rep, read):
    period = world.previous()
    price = Reason.objects.get(outcome="lost", label="Price").pk
    keys = [price] + list(
        Reason.objects.filter(label__in=["Timing", "Product fit"]).values_list("pk", flat=True)
    )
    expected = _expected_quotes(period, set(keys))
    assert len(expected) >= 9
    assert _read_with(read, period, keys) == expected
    team = Q(reflection__opportunity__owner__team_id=rep.team_id)
    assert _read_with(read, period, keys, team) == _expected_quotes(
        period, set(keys), Q(opportunity__owner__team_id=rep.team_id)
    )
