"""
The refresh after closes against the full rebuild: the refresh compares a marked period with
the stored facts of the period before it instead of reading that period's reflections again,
and must still leave exactly the rows a rebuild would. Both take a fixed number of queries.
"""

import random

import pytest
from django.db import connection
from django.db.models import Avg
from django.test.utils import CaptureQueriesContext

from customers.models import Segment
from insights import facts as fact_rules
from insights import services
from insights.models import Dimension, InsightFact, PendingPeriod, PeriodKind, ScopeKind
from reflections.models import Reason, Reflection
from tests.factories import (
    CompanyFactory,
    CompetitorFactory,
    ProductFactory,
    ProductLineFactory,
    UserFactory,
)
from tests.insights.conftest import Closer, d

pytestmark = pytest.mark.django_db

Q1, Q2 = d("2026-01-01"), d("2026-04-01")
REASONS = {
    "won": ["Product fit", "Relationship", "Price", "References"],
    "lost": ["Price", "Product fit", "Timing", "Budget", "Lost to competitor"],
    "no_decision": ["Budget frozen", "Priorities changed", "Timing"],
}
OBJECTIONS = ["Price too high", "Missing feature", "Integration effort", "Contract terms"]


class Floor:
    """Closes with every dimension varied, from a seeded generator so runs are repeatable."""

    def __init__(self, rep, teammate, other_rep):
        payments = ProductLineFactory(name="Payments")
        analytics = ProductLineFactory(name="Analytics")
        self.products = [
            ProductFactory(line=payments),
            ProductFactory(line=payments),
            ProductFactory(line=analytics),
        ]
        self.companies = [
            CompanyFactory(segment=segment)
            for segment in (Segment.SOFTWARE, Segment.RETAIL, Segment.FINANCE, Segment.RETAIL)
        ]
        self.competitors = [CompetitorFactory(name="Acme Rival"), CompetitorFactory(name="Zed")]
        # Someone without a team counts for the organisation but in no team.
        self.owners = [rep, teammate, other_rep, UserFactory(team=None)]
        self.closer = Closer(rep, product=self.products[0], company=self.companies[0])
        self.random = random.Random(2026)

    def close(self, day, outcome=None):
        pick = self.random
        outcome = outcome or pick.choice(["won", "won", "lost", "lost", "lost", "no_decision"])
        reasons = REASONS[outcome]
        pitched = outcome != "no_decision"
        return self.closer.close(
            outcome,
            day,
            pick.choice(reasons),
            pick.choice(["customer", "customer", "rep", ""]),
            amount=f"{pick.randrange(1, 500) * 100 + pick.choice([0, 55])}.00",
            currency=pick.choice(["GBP", "GBP", "EUR", "USD"]),
            cycle_days=pick.randrange(0, 200),
            competitor=pick.choice([None, *self.competitors]) if pitched else None,
            objections=pick.sample(OBJECTIONS, pick.randrange(0, 3)) if pitched else (),
            contributing=(
                pick.sample([r for r in reasons if r != "Lost to competitor"], 2)
                if pitched and pick.random() < 0.5
                else ()
            ),
            owner=pick.choice(self.owners),
            product=pick.choice(self.products),
            company=pick.choice(self.companies),
            unknown=pick.random() < 0.1,
        )

    def closes(self, days, count):
        return [self.close(d(days[i % len(days)])) for i in range(count)]


@pytest.fixture
def floor(rep, teammate, other_rep, settings):
    settings.DEBRIEF_CURRENCY_RATES = {"GBP": "1", "EUR": "0.8537", "USD": "0.7913"}
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 3
    floor = Floor(rep, teammate, other_rep)
    # Reasons and an objection heard only in Q4 2025: Q1 keeps them as zero rows, which must
    # not carry them on into Q2.
    for _ in range(3):
        floor.closer.close(
            "lost",
            d("2025-12-03"),
            "Champion left",
            objections=["Switching cost"],
            contributing=["Relationship"],
        )
    floor.closes(["2026-01-14", "2026-02-10", "2026-03-31"], 60)
    floor.closes(["2026-04-01", "2026-05-12", "2026-05-20"], 60)
    return floor


FIELDS = [f.name for f in InsightFact._meta.fields if f.name != "id"]


def snapshot():
    return sorted(InsightFact.objects.values_list(*FIELDS), key=repr)


def rebuilt():
    services.insights_rebuild()
    return snapshot()


def close_and_refresh(floor, *days):
    for day in days:
        floor.close(d(day))
    services.insights_mark_stale(dates=[d(day) for day in days])
    services.insights_refresh_pending()


def test_refresh_with_stored_comparisons_leaves_the_rows_a_rebuild_would(floor):
    services.insights_rebuild()
    close_and_refresh(floor, "2026-05-28", "2026-05-28", "2026-06-02")
    refreshed = snapshot()
    assert refreshed != []
    assert not PendingPeriod.objects.exists()
    assert rebuilt() == refreshed


def test_refresh_reads_the_comparison_from_the_previous_periods_stored_facts(floor):
    services.insights_rebuild()
    q1 = InsightFact.objects.get(
        period_kind=PeriodKind.QUARTER,
        period_start=Q1,
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.SUMMARY,
    )
    # What the stored facts say, not what Q1's reflections would say.
    InsightFact.objects.filter(pk=q1.pk).update(won=0)
    close_and_refresh(floor, "2026-05-28")
    q2 = InsightFact.objects.get(
        period_kind=PeriodKind.QUARTER,
        period_start=Q2,
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.SUMMARY,
    )
    assert (q2.prev_deals, q2.prev_rate) == (q1.deals, 0.0)


def test_refresh_reads_the_previous_periods_reflections_when_it_has_no_facts(floor):
    expected = [row for row in rebuilt() if row[1] != Q1 or row[0] != PeriodKind.QUARTER]
    InsightFact.objects.filter(period_kind=PeriodKind.QUARTER, period_start=Q1).delete()
    InsightFact.objects.filter(period_kind=PeriodKind.QUARTER, period_start=Q2).update(
        prev_rate=None, significant=False
    )
    services.insights_mark_stale(dates=[d("2026-05-12")])
    services.insights_refresh_pending()
    assert snapshot() == expected


def test_marked_periods_are_compared_with_each_other_as_just_recomputed(floor):
    services.insights_rebuild()
    # Closes in three consecutive months and both quarters: each refreshed period's previous
    # period is refreshed in the same run, and must be compared as recomputed, not as stored.
    close_and_refresh(floor, "2026-02-27", "2026-03-03", "2026-04-20", "2026-04-21")
    refreshed = snapshot()
    assert rebuilt() == refreshed


def test_a_reopened_period_loses_its_facts_on_refresh(floor):
    services.insights_rebuild()
    Reflection.objects.filter(closed_date__gte=d("2026-05-01")).update(current=False)
    services.insights_mark_stale(dates=[d("2026-05-12")])
    services.insights_refresh_pending()
    assert not InsightFact.objects.filter(
        period_kind=PeriodKind.MONTH, period_start=d("2026-05-01")
    ).exists()
    assert rebuilt() == snapshot()


def test_the_rollup_matches_the_databases_own_aggregates(floor):
    """Amounts are summed exactly and the average cycle is the one the database's AVG gives,
    so figures tallied in Python equal those SQL would produce to the last digit."""
    services.insights_rebuild()
    rates = fact_rules.currency_rates()
    for period_start, end in ((Q1, Q2), (Q2, d("2026-07-01"))):
        reflections = Reflection.objects.filter(
            current=True, closed_date__gte=period_start, closed_date__lt=end
        )
        summary = InsightFact.objects.get(
            period_kind=PeriodKind.QUARTER,
            period_start=period_start,
            scope_kind=ScopeKind.ORG,
            dimension=Dimension.SUMMARY,
        )
        cycle = reflections.aggregate(cycle=Avg(fact_rules._cycle("")))["cycle"]
        assert summary.avg_cycle_days == fact_rules._days(cycle)
        won = sum(
            r.opportunity.amount * rates[r.opportunity.currency]
            for r in reflections.filter(outcome="won").select_related("opportunity")
        )
        assert summary.amount_won == won.quantize(fact_rules.CENT)
        assert summary.deals == reflections.count()


def test_a_deal_counts_once_under_a_reason_merged_into_another_it_also_names(closer, settings):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    closer.close("lost", d("2026-05-12"), "Price", contributing=["Budget", "Timing"])
    closer.close("lost", d("2026-05-12"), "Price", contributing=["Budget"])
    budget = Reason.objects.get(outcome="lost", label="Budget")
    timing = Reason.objects.get(outcome="lost", label="Timing")
    budget.active, budget.merged_into = False, timing
    budget.save()
    services.insights_rebuild()
    rows = InsightFact.objects.filter(
        period_kind=PeriodKind.QUARTER,
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.CONTRIBUTING_REASON,
    )
    assert list(rows.values_list("key", "label", "deals", "base")) == [
        (str(timing.pk), "Timing", 2, 2)
    ]


def writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and "insightfact" in q["sql"]
    ]


def test_a_rerun_on_unchanged_reflections_writes_no_fact(floor):
    services.insights_rebuild()
    ids = set(InsightFact.objects.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as rebuild:
        services.insights_rebuild()
    services.insights_mark_stale(dates=[d("2026-05-12")])
    with CaptureQueriesContext(connection) as refresh:
        services.insights_refresh_pending()
    assert writes(rebuild.captured_queries) == writes(refresh.captured_queries) == []
    assert set(InsightFact.objects.values_list("pk", flat=True)) == ids


def test_rebuild_and_refresh_queries_do_not_grow_with_data(
    rep, teammate, other_rep, settings, django_assert_num_queries
):
    """
    Reflections, answers, buyers' survey answers and (for a refresh) the stored previous facts
    are each read once;
    then per period kind, in a transaction (a savepoint and its release here): lock and
    compare, write what changed, read the region for rows to drop. Pending marks are read
    and cleared once; so are the changed reflections' marks (insights.delta: none here, the
    periods are marked). The objection playbook adds its own reads (counts, quotes; a refresh
    also the stored quotes its months touch) and one transaction that locks its two regions.
    Only the writes grow, one statement per batch of changed facts.
    """
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 3
    floor = Floor(rep, teammate, other_rep)
    for count in (10, 80):
        floor.closes(["2026-02-10", "2026-05-12"], count)
        services.insights_rebuild()
        # The perception gap: its counts, and a transaction (savepoint, release) locking them.
        with django_assert_num_queries(12 + 6 + 2 + 4):  # unchanged: nothing written
            services.insights_rebuild()
        floor.close(d("2026-05-20"))
        services.insights_mark_stale(dates=[d("2026-05-20")])
        with CaptureQueriesContext(connection) as refresh:
            services.insights_refresh_pending()
        inserts = [q for q in refresh.captured_queries if q["sql"].startswith("INSERT")]
        # marks, stored facts, reflections, answers, buyers' answers, 2 x (lock, region), clear,
        # whether a reflection is marked;
        # playbook: whether it was ever stored, counts, the months' quotes, which stored quotes
        # are in those months, and a transaction (savepoint, release) locking the counts (no
        # won answer here to quote)
        # the gap: the changed reflections, whether it was ever stored, the marked periods'
        # counts, and a transaction (savepoint, release) locking them
        assert len(refresh.captured_queries) - len(inserts) == 15 + 7 + 6
        assert len(inserts) >= 2  # the close changed facts of both kinds
