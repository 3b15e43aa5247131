"""
Refresh by delta (insights.delta): a close, reopening, amendment or buyer's answer changes the
stored facts by its own counts. The property: after any sequence of them, with refreshes and
rebuilds anywhere in between, every stored fact equals what a full rebuild writes.
"""

import datetime
import logging
import random
import zoneinfo

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from customers.models import Segment
from insights import services
from insights.models import (
    Dimension,
    InsightFact,
    PendingPeriod,
    PendingReflection,
    PeriodKind,
    PlaybookEntry,
    PlaybookQuote,
    ScopeKind,
    Source,
)
from insights.periods import Period
from reflections import signals
from reflections.models import (
    Answer,
    Objection,
    Origin,
    Outcome,
    QuestionKind,
    Reason,
    Reflection,
)
from reflections.services import AnswerInput, reason_merge, reflection_amend
from tests.factories import (
    CompanyFactory,
    CompetitorFactory,
    ProductFactory,
    ProductLineFactory,
    UserFactory,
)
from tests.insights.conftest import Closer, buyer_answer, d, reopen_deal

pytestmark = pytest.mark.django_db

TODAY = datetime.datetime(2026, 7, 20, 10, tzinfo=zoneinfo.ZoneInfo("Europe/London"))
DAYS = [d(day) for day in ("2026-02-11", "2026-03-30", "2026-04-02", "2026-05-12", "2026-06-30")]
REASONS = {
    "won": ["Product fit", "Relationship", "Price", "References"],
    "lost": ["Price", "Product fit", "Timing", "Budget"],
    "no_decision": ["Budget frozen", "Priorities changed", "Timing"],
}
OBJECTIONS = ["Price too high", "Missing feature", "Integration effort"]
LESSONS = ["Bring finance in early.", "Show the integration first.", "Ask who else decides."]
FIELDS = [f.name for f in InsightFact._meta.fields if f.name != "id"]


def playbook_snapshot():
    return (
        sorted(
            PlaybookEntry.objects.values_list(
                "product_id", "period_kind", "period_start", "objection_id", "heard", "won"
            )
        ),
        sorted(
            PlaybookQuote.objects.values_list(
                "product_id", "objection_id", "rank", "answer_id", "text", "closed_date"
            )
        ),
    )


def snapshot(exclude=()):
    return sorted(
        (row for row in InsightFact.objects.values_list(*FIELDS) if row[:2] not in exclude),
        key=repr,
    )


def rebuilt():
    services.insights_rebuild()
    return snapshot()


class Floor:
    """Closes, reopenings, amendments and buyers' answers with every dimension varied."""

    def __init__(self, rep, teammate, other_rep):
        payments = ProductLineFactory(name="Payments")
        analytics = ProductLineFactory(name="Analytics")
        self.products = [ProductFactory(line=payments), ProductFactory(line=analytics)]
        self.companies = [
            CompanyFactory(segment=segment)
            for segment in (Segment.SOFTWARE, Segment.RETAIL, Segment.FINANCE)
        ]
        self.competitors = [CompetitorFactory(name="Acme Rival"), CompetitorFactory(name="Zed")]
        # Someone without a team counts for the organisation but in no team.
        self.owners = [rep, teammate, other_rep, UserFactory(team=None)]
        self.closer = Closer(rep, product=self.products[0], company=self.companies[0])

    def close(self, pick: random.Random, day=None, outcome=None):
        """A close as opportunity_close makes it: the rows, then the signal, in one transaction."""
        outcome = outcome or pick.choice(["won", "won", "lost", "lost", "no_decision"])
        pitched = outcome != "no_decision"
        with transaction.atomic():
            reflection = self.closer.close(
                outcome,
                day or pick.choice(DAYS),
                pick.choice(REASONS[outcome]),
                pick.choice(["customer", "rep", ""]),
                amount=f"{pick.randrange(100, 50_000)}.{pick.randrange(100):02}",
                currency=pick.choice(["GBP", "EUR", "USD"]),
                cycle_days=pick.randrange(0, 200),
                competitor=pick.choice([None, *self.competitors]) if pitched else None,
                objections=pick.sample(OBJECTIONS, pick.randrange(0, 3)) if pitched else (),
                contributing=pick.sample(REASONS[outcome], pick.randrange(0, 3)) if pitched else (),
                owner=pick.choice(self.owners),
                product=pick.choice(self.products),
                company=pick.choice(self.companies),
                unknown=pick.random() < 0.1,
                text=pick.choice(["", *LESSONS]) if pitched else "",
            )
            signals.reflection_submitted.send(
                sender=Reflection, reflection=reflection, created=True
            )
        return reflection

    def reopen(self, reflection):
        reopen_deal(reflection)

    def amend(self, reflection, pick: random.Random):
        """As reflection_amend does it: new answers (and maybe competitor), same outcome."""
        outcome = reflection.outcome
        closer = self.closer
        with transaction.atomic():
            signals.reflection_amending.send(sender=Reflection, reflection=reflection)
            reflection.answers.all().delete()
            answers = [
                Answer(
                    reflection=reflection,
                    question=closer.question(outcome, QuestionKind.PRIMARY_REASON),
                    reason=Reason.objects.get(outcome=outcome, label=pick.choice(REASONS[outcome])),
                    reason_source=pick.choice(["customer", "rep"]),
                )
            ]
            if outcome != Outcome.NO_DECISION:
                answers += [
                    Answer(
                        reflection=reflection,
                        question=closer.question(outcome, QuestionKind.CONTRIBUTING_REASONS),
                        reason=Reason.objects.get(outcome=outcome, label=label),
                    )
                    for label in pick.sample(REASONS[outcome], pick.randrange(0, 3))
                ]
                answers += [
                    Answer(
                        reflection=reflection,
                        question=closer.question(outcome, QuestionKind.OBJECTIONS),
                        objection=Objection.objects.get(label=label),
                    )
                    for label in pick.sample(OBJECTIONS, pick.randrange(0, 3))
                ]
                competitor = pick.choice(self.competitors)
                answers.append(
                    Answer(
                        reflection=reflection,
                        question=closer.question(outcome, QuestionKind.COMPETITOR),
                        competitor=competitor,
                    )
                )
                type(reflection.opportunity).objects.filter(pk=reflection.opportunity_id).update(
                    primary_competitor=competitor
                )
                answers.append(
                    Answer(
                        reflection=reflection,
                        question=closer.question(outcome, QuestionKind.SHORT_TEXT),
                        text=pick.choice(LESSONS),
                    )
                )
            Answer.objects.bulk_create(answers)
            reflection.edited_at = timezone.now()
            reflection.save(update_fields=["edited_at"])
            signals.reflection_submitted.send(
                sender=Reflection, reflection=reflection, created=False
            )

    def buyer_answers(self, reflection, pick: random.Random):
        """A first answer or a changed one; one in five says "don't know"."""
        unknown = pick.random() < 0.2
        buyer_answer(reflection, None if unknown else pick.choice(REASONS[reflection.outcome]))

    def import_switch(self, reflection, in_reports: bool):
        """An imported deal counted in reports or left out, as imports tell it: by date."""
        with transaction.atomic():
            Reflection.objects.filter(pk=reflection.pk).update(
                origin=Origin.IMPORTED, in_reports=in_reports
            )
            signals.reflections_imported.send(sender=Reflection, dates={reflection.closed_date})


@pytest.fixture
def clock():
    with time_machine.travel(TODAY, tick=True):
        yield


@pytest.fixture
def floor(rep, teammate, other_rep, settings, clock):
    settings.DEBRIEF_CURRENCY_RATES = {"GBP": "1", "EUR": "0.8537", "USD": "0.7913"}
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 2
    # Small enough that the reports' comparisons are tested and headlined: the delta must
    # recompute significance too.
    settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS = 3
    settings.DEBRIEF_INSIGHT_MIN_CHANGE_POINTS = 1
    return Floor(rep, teammate, other_rep)


def current(pick: random.Random, **filters):
    ids = sorted(Reflection.objects.filter(current=True, **filters).values_list("pk", flat=True))
    return Reflection.objects.get(pk=pick.choice(ids)) if ids else None


OPERATIONS = [
    "close",
    "close",
    "close",
    "reopen",
    "amend",
    "amend",
    "buyer",
    "import",
    "refresh",
    "rebuild",
]


def run(floor, pick: random.Random, operation: str) -> None:
    if operation == "close":
        floor.close(pick)
    elif operation == "reopen" and (reflection := current(pick)):
        floor.reopen(reflection)
    elif operation == "amend" and (reflection := current(pick, origin=Origin.ANSWERED)):
        floor.amend(reflection, pick)
    elif operation == "buyer" and (reflection := current(pick)):
        floor.buyer_answers(reflection, pick)
    elif operation == "import" and (reflection := current(pick)):
        floor.import_switch(reflection, in_reports=pick.random() < 0.5)
    elif operation == "refresh":
        services.insights_refresh_pending()
    elif operation == "rebuild":
        services.insights_rebuild()


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    print_blob=True,
)
@given(
    seed=st.integers(0, 2**32),
    operations=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=14),
)
def test_stored_facts_after_any_sequence_of_deltas_equal_a_full_rebuild(
    floor, caplog, seed, operations
):
    pick = random.Random(seed)
    with transaction.atomic():
        for _ in range(24):
            floor.close(pick)
        services.insights_rebuild()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="insights.services"):
            for operation in operations:
                run(floor, pick, operation)
            services.insights_refresh_pending()
        assert not PendingReflection.objects.exists()
        assert not PendingPeriod.objects.exists()
        assert "Refresh by delta not possible" not in caplog.text  # no fallback was needed
        refreshed, playbook = snapshot(), playbook_snapshot()
        assert refreshed == rebuilt()
        assert playbook == playbook_snapshot()  # the objection playbook too
        transaction.set_rollback(True)


# --- focused cases -----------------------------------------------------------------------------
def test_a_close_changes_only_the_reports_it_counts_in_and_the_next_periods(floor):
    pick = random.Random(1)
    for _ in range(40):
        floor.close(pick)
    services.insights_rebuild()
    before = set(InsightFact.objects.values_list(*FIELDS))
    reflection = floor.close(pick, day=d("2026-05-12"), outcome="won")
    assert PendingReflection.objects.filter(pk=reflection.pk, counted__isnull=True).exists()
    assert not PendingPeriod.objects.exists()
    services.insights_refresh_pending()
    changed = set(InsightFact.objects.values_list(*FIELDS)) ^ before
    periods = {row[:2] for row in changed}
    deal = reflection.opportunity
    scopes = {
        ("org", ""),
        ("team", str(deal.owner.team_id)),
        ("product_line", str(deal.product.line_id)),
        ("segment", deal.company.segment),
    }
    assert {row[2:4] for row in changed} <= scopes
    assert periods <= {
        (PeriodKind.MONTH, d("2026-05-01")),
        (PeriodKind.MONTH, d("2026-06-01")),
        (PeriodKind.QUARTER, d("2026-04-01")),
        (PeriodKind.QUARTER, d("2026-07-01")),
    }
    assert (PeriodKind.MONTH, d("2026-05-01")) in periods
    assert not PendingReflection.objects.exists()
    assert snapshot() == rebuilt()


def test_a_reopening_takes_the_deal_out_and_an_emptied_report_loses_its_facts(floor):
    pick = random.Random(2)
    for _ in range(20):
        floor.close(pick, day=d("2026-05-12"))
    services.insights_rebuild()
    alone = floor.close(pick, day=d("2026-01-20"), outcome="lost")  # January's only deal
    services.insights_refresh_pending()
    assert InsightFact.objects.filter(period_start=d("2026-01-01"), period_kind="month").exists()
    floor.reopen(alone)
    services.insights_refresh_pending()
    assert not InsightFact.objects.filter(period_start=d("2026-01-01")).exists()
    victim = current(pick)
    floor.reopen(victim)
    services.insights_refresh_pending()
    assert snapshot() == rebuilt()


def test_an_amendment_through_the_service_moves_the_deal_to_its_new_main_reason(floor, rep):
    pick = random.Random(3)
    for _ in range(20):
        floor.close(pick)
    reflection = floor.closer.close("lost", d("2026-05-12"), "Price", "customer")
    services.insights_rebuild()

    def main_reasons():
        return dict(
            InsightFact.objects.filter(
                period_kind=PeriodKind.QUARTER,
                period_start=d("2026-04-01"),
                scope_kind=ScopeKind.ORG,
                dimension=Dimension.PRIMARY_REASON_LOST,
                source=Source.ALL,
            ).values_list("label", "deals")
        )

    was = main_reasons()
    question = floor.closer.question("lost", QuestionKind.PRIMARY_REASON)
    timing = Reason.objects.get(outcome="lost", label="Timing")
    required = [
        q
        for q in floor.closer.prompt_set("lost").questions.all()
        if q.required and q.kind != QuestionKind.PRIMARY_REASON
    ]
    answers = [AnswerInput(question=question, reason=timing, reason_source="rep")]
    for q in required:
        if q.kind == QuestionKind.COMPETITOR:
            answers.append(AnswerInput(question=q, competitor=floor.competitors[1]))
        elif q.kind == QuestionKind.CONTRIBUTING_REASONS:
            answers.append(AnswerInput(question=q, reason=timing))
        elif q.kind == QuestionKind.OBJECTIONS:
            answers.append(
                AnswerInput(question=q, objection=Objection.objects.get(label="Price too high"))
            )
        elif q.kind == QuestionKind.SHORT_TEXT:
            answers.append(AnswerInput(question=q, text="They waited a year."))
        else:
            answers.append(AnswerInput(question=q, number=1))
    reflection_amend(actor=rep, reflection=reflection, answers=answers)
    assert PendingReflection.objects.get(pk=reflection.pk).counted is not None
    services.insights_refresh_pending()
    now = main_reasons()
    assert now.get("Price", 0) == was["Price"] - 1
    assert now["Timing"] == was.get("Timing", 0) + 1
    assert snapshot() == rebuilt()


def test_a_deal_reopened_and_closed_with_another_outcome_moves_between_outcomes(floor):
    pick = random.Random(4)
    for _ in range(20):
        floor.close(pick)
    services.insights_rebuild()
    reflection = floor.close(pick, day=d("2026-05-12"), outcome="lost")
    services.insights_refresh_pending()
    floor.reopen(reflection)
    floor.close(pick, day=d("2026-06-03"), outcome="won")
    services.insights_refresh_pending()
    assert snapshot() == rebuilt()


def test_a_buyers_first_answer_is_a_delta_and_a_changed_answer_recomputes_its_periods(floor):
    pick = random.Random(5)
    for _ in range(20):
        floor.close(pick)
    services.insights_rebuild()
    reflection = current(pick)
    floor.buyer_answers(reflection, pick)
    assert PendingReflection.objects.filter(pk=reflection.pk).exists()
    assert not PendingPeriod.objects.exists()
    services.insights_refresh_pending()
    assert InsightFact.objects.filter(source=Source.BUYER).exists()
    assert snapshot() == rebuilt()
    floor.buyer_answers(reflection, pick)  # the counted answer is gone: its periods are marked
    assert not PendingReflection.objects.exists()
    assert PendingPeriod.objects.count() == 2
    services.insights_refresh_pending()
    assert snapshot() == rebuilt()


def test_facts_that_cannot_have_counted_the_deal_fall_back_to_recomputing_its_periods(
    floor, caplog
):
    pick = random.Random(6)
    for _ in range(20):
        floor.close(pick)
    services.insights_rebuild()
    reflection = current(pick)
    month = reflection.closed_date.replace(day=1)
    periods = {
        (PeriodKind.MONTH, month),
        (PeriodKind.QUARTER, Period.containing("quarter", month).start),
    }
    # Something no mark saw: the stored facts of the deal's periods count nobody.
    for kind, start in periods:
        InsightFact.objects.filter(period_kind=kind, period_start=start).update(
            deals=0, won=0, lost=0, no_decision=0
        )
    floor.reopen(reflection)
    with caplog.at_level(logging.WARNING, logger="insights.services"):
        services.insights_refresh_pending()
    assert "would go below zero" in caplog.text
    assert not PendingReflection.objects.exists()

    def counts():
        return sorted(
            InsightFact.objects.filter(
                period_kind__in=[k for k, _ in periods], period_start__in=[s for _, s in periods]
            ).values_list(*FIELDS[:7], "deals", "won", "lost", "no_decision", "amount_won"),
            key=repr,
        )

    refreshed = counts()  # recomputed from the reflections
    services.insights_rebuild()
    assert refreshed == counts()


def test_facts_stored_before_their_sums_fall_back_to_recomputing(floor, caplog):
    pick = random.Random(7)
    for _ in range(20):
        floor.close(pick)
    services.insights_rebuild()
    InsightFact.objects.update(
        amount_won_exact=None, amount_lost_exact=None, cycle_days_total=None, cycles=0
    )
    floor.close(pick, day=d("2026-05-12"))
    with caplog.at_level(logging.WARNING, logger="insights.services"):
        services.insights_refresh_pending()
    assert "stored without their sums" in caplog.text
    refreshed = {
        row for row in snapshot() if row[0] == PeriodKind.MONTH and row[1] == d("2026-05-01")
    }
    assert refreshed <= set(rebuilt())


def test_a_first_close_in_a_period_without_stored_facts_reads_the_period(floor, caplog):
    pick = random.Random(8)
    for _ in range(10):
        floor.close(pick, day=d("2026-05-12"))
    # Never rebuilt: the period has reflections but no facts.
    PendingReflection.objects.all().delete()
    floor.close(pick, day=d("2026-05-20"))
    with caplog.at_level(logging.WARNING, logger="insights.services"):
        services.insights_refresh_pending()
    assert "has reflections but no stored facts" in caplog.text
    assert snapshot() == rebuilt()


def test_a_rebuild_settles_the_marks_it_read_and_hands_on_the_rest_as_periods(floor):
    pick = random.Random(9)
    for _ in range(10):
        floor.close(pick)
    services.insights_rebuild()
    read = floor.close(pick, day=d("2026-05-12"))
    assert PendingReflection.objects.filter(pk=read.pk).exists()
    late = {}

    real = services.fact_rules.rollup_facts

    def rollup_then_a_close(**kwargs):
        facts = real(**kwargs)
        late["reflection"] = floor.close(pick, day=d("2026-02-11"))  # after the read
        return facts

    services.fact_rules.rollup_facts = rollup_then_a_close
    try:
        services.insights_rebuild()
    finally:
        services.fact_rules.rollup_facts = real
    assert not PendingReflection.objects.exists()
    assert set(PendingPeriod.objects.values_list("period_kind", "period_start")) == {
        (PeriodKind.MONTH, d("2026-02-01")),
        (PeriodKind.QUARTER, d("2026-01-01")),
    }
    services.insights_refresh_pending()
    assert snapshot() == rebuilt()


def test_merging_a_reason_recomputes_the_periods_it_was_answered_in(floor):
    pick = random.Random(10)
    for _ in range(20):
        floor.close(pick)
    budget = floor.closer.close("lost", d("2026-02-11"), "Budget")
    floor.closer.close("lost", d("2026-05-12"), "Price", contributing=["Budget"])
    services.insights_rebuild()
    timing = Reason.objects.get(outcome="lost", label="Timing")
    reason_merge(reason=Reason.objects.get(outcome="lost", label="Budget"), into=timing)
    marked = set(PendingPeriod.objects.values_list("period_kind", "period_start"))
    assert {(PeriodKind.MONTH, d("2026-02-01")), (PeriodKind.MONTH, d("2026-05-01"))} <= marked
    floor.reopen(budget)  # what it counted is read after the merge: its periods take no delta
    services.insights_refresh_pending()
    assert snapshot() == rebuilt()


def _one_close_refresh_queries(floor, pick, others: int) -> list[dict]:
    for _ in range(others):
        floor.close(pick, day=pick.choice([d("2026-04-02"), d("2026-05-12"), d("2026-06-30")]))
    services.insights_rebuild()
    with transaction.atomic():  # the same close whatever came before: won, quoted, objected
        reflection = floor.closer.close(
            "won",
            d("2026-05-12"),
            "Price",
            competitor=floor.competitors[0],
            objections=["Price too high"],
            contributing=["Relationship"],
            text=LESSONS[0],
        )
        signals.reflection_submitted.send(sender=Reflection, reflection=reflection, created=True)
    with CaptureQueriesContext(connection) as refresh:
        services.insights_refresh_pending()
    return refresh.captured_queries


def test_one_close_refresh_takes_the_same_few_queries_whatever_the_quarter_holds(
    rep, teammate, other_rep, settings, clock
):
    """
    Marked periods (none) and changed reflections: read each once; the changed reflection's
    rows, answers and buyer's answers; the stored facts of its reports, their previous and next
    periods; the lock, write and region reads of the touched reports; the marks cleared. The
    playbook adds its constant few (the day's counts from its reflections, the month's as the
    sum of its stored days, the quotes the day changes).
    """
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 2
    counts = []
    for others in (10, 120):
        with transaction.atomic():
            floor = Floor(rep, teammate, other_rep)
            queries = _one_close_refresh_queries(floor, random.Random(others), others)
            reads = [q for q in queries if not q["sql"].startswith("INSERT")]
            counts.append(len(reads))
            # The quarter's reflections are not read: only the changed one, by id.
            reflection_reads = [
                q["sql"] for q in reads if 'FROM "reflections_reflection"' in q["sql"]
            ]
            assert len(reflection_reads) == 1
            assert '"reflections_reflection"."id" IN (' in reflection_reads[0]
            transaction.set_rollback(True)
    assert counts[0] == counts[1]
    assert counts[0] <= 30
