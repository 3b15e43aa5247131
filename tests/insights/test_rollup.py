"""
Rollup numbers against a fixture counted by hand.

Q1 2026 (closed 10 Feb): 5 won (main reason Product fit, customer said), 10 lost: 2 Price
(customer said), 8 Product fit (rep's read). Every deal GBP; won 1,000, lost 2,000.
Q2 2026 (closed 12 May): 5 won (Product fit, customer said; 3 in GBP 1,000, 2 in EUR 1,000 at
0.85), 10 lost: 8 Price (6 customer said, 2 rep's read), 2 Timing (customer said). Four Price
losses and one win were against Acme Rival; six losses heard "Price too high". Wins took 10
days from creation to close, losses 30.
"""

import math
from decimal import Decimal

import pytest

from insights import services, stats
from insights.models import Dimension, InsightFact, PeriodKind, ScopeKind, Source
from reflections.models import Reason
from tests.insights.conftest import d

pytestmark = pytest.mark.django_db

Q1, Q2 = d("2026-01-01"), d("2026-04-01")


@pytest.fixture
def quarters(closer, competitor, settings):
    settings.DEBRIEF_CURRENCY_RATES = {"GBP": "1", "EUR": "0.85", "USD": "0.79"}
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS = 10
    feb, may = d("2026-02-10"), d("2026-05-12")
    for _ in range(5):
        closer.close("won", feb, "Product fit", "customer")
    for _ in range(2):
        closer.close("lost", feb, "Price", "customer", amount="2000.00", cycle_days=30)
    for _ in range(8):
        closer.close("lost", feb, "Product fit", "rep", amount="2000.00", cycle_days=30)
    for i in range(5):
        closer.close(
            "won",
            may,
            "Product fit",
            "customer",
            currency="EUR" if i < 2 else "GBP",
            competitor=competitor if i == 0 else None,
        )
    for i in range(8):
        closer.close(
            "lost",
            may,
            "Price",
            "customer" if i < 6 else "rep",
            amount="2000.00",
            cycle_days=30,
            competitor=competitor if i < 4 else None,
            objections=["Price too high"] if i < 6 else [],
        )
    for _ in range(2):
        closer.close("lost", may, "Timing", "customer", amount="2000.00", cycle_days=30)
    return closer


def fact(dimension, key="", source=Source.ALL, scope=ScopeKind.ORG, scope_key="", start=Q2):
    return InsightFact.objects.get(
        period_kind=PeriodKind.QUARTER,
        period_start=start,
        scope_kind=scope,
        scope_key=scope_key,
        dimension=dimension,
        source=source,
        key=key,
    )


def reason_key(outcome, label):
    return str(Reason.objects.get(outcome=outcome, label=label).pk)


@pytest.mark.smoke
def test_quarter_summary_matches_hand_counts(quarters):
    services.insights_rebuild()
    summary = fact(Dimension.SUMMARY)
    assert (summary.deals, summary.won, summary.lost, summary.no_decision) == (15, 5, 10, 0)
    assert summary.win_rate == pytest.approx(5 / 15)
    # 3 x 1,000 GBP + 2 x 1,000 EUR at 0.85 = 4,700; 10 x 2,000 lost.
    assert summary.amount_won == Decimal("4700.00")
    assert summary.amount_lost == Decimal("20000.00")
    # (5 x 10 + 10 x 30) / 15 days
    assert summary.avg_cycle_days == pytest.approx(350 / 15, abs=1e-3)
    # Q1 was 5 of 15 too: no change, p = 1, nothing flagged. Every expected count is at
    # least 5 (5, 10, 5, 10), so the z-test applies.
    assert summary.prev_rate == pytest.approx(5 / 15)
    assert summary.change == pytest.approx(0)
    assert summary.p_value == pytest.approx(1.0) and summary.test == "z"
    assert not summary.significant and summary.headline == ""
    # 95% Wilson interval of 5 of 15: 15.2% to 58.3% (centre 0.3673, half-width 0.2156).
    assert (summary.rate_low, summary.rate_high) == (
        pytest.approx(0.1518, abs=1e-4),
        pytest.approx(0.5829, abs=1e-4),
    )


def test_loss_reasons_change_significance_and_echoes_by_hand(quarters):
    services.insights_rebuild()
    price = fact(Dimension.PRIMARY_REASON_LOST, reason_key("lost", "Price"))
    fit = fact(Dimension.PRIMARY_REASON_LOST, reason_key("lost", "Product fit"))
    assert (price.deals, price.base, price.prev_deals, price.prev_base) == (8, 10, 2, 10)
    assert (price.lost, price.won, price.outcome) == (8, 0, "lost")
    assert price.share == pytest.approx(0.8) and price.prev_rate == pytest.approx(0.2)
    assert price.change == pytest.approx(0.6)
    # Price 2 of 10 -> 8 of 10, every expected count 5: the z-test. Pooled p = 0.5,
    # se = sqrt(0.5 * 0.5 * (1/10 + 1/10)) = 0.223607, z = 2.6833, p = 0.00729.
    assert price.p_value == pytest.approx(0.00729, abs=1e-5) and price.test == "z"
    # Product fit vanished from the losses: 8 of 10 -> 0 of 10 has expected counts of 4, so
    # Fisher's exact test, p = 0.000714. It is the larger
    # change of the question drives it. Without Product fit's losses, Price went from 2 of 2 to
    # 8 of 10: no meaningful change, so Price's rise is its echo, told under it.
    assert (fit.deals, fit.prev_deals, fit.rate, fit.prev_rate) == (0, 8, 0.0, 0.8)
    assert fit.p_value == pytest.approx(0.000714, abs=1e-6) and fit.test == "fisher"
    assert fit.significant and fit.q_value <= 0.10
    assert fit.headline == (
        "Product fit was the main reason in 0% of losses in Q2 2026 (0 of 10), down from 80% "
        "(8 of 10) in Q1 2026. A change this large would come from chance less than once in "
        "a thousand."
    )
    assert fit.headline_note == "The other main reasons moved with it: Price 20% → 80%."
    assert not price.significant and price.headline == ""
    assert price.echo_of == f"primary_reason_lost:{fit.key}"

    # Timing 0 of 10 -> 2 of 10: p = 0.474, a change but not a meaningful one.
    timing = fact(Dimension.PRIMARY_REASON_LOST, reason_key("lost", "Timing"))
    assert timing.change == pytest.approx(0.2)
    assert timing.p_value == pytest.approx(0.4737, abs=1e-4)
    assert not timing.significant and timing.headline == "" and timing.echo_of == ""


def test_loss_reasons_split_by_source(quarters):
    services.insights_rebuild()
    price = reason_key("lost", "Price")
    customer = fact(Dimension.PRIMARY_REASON_LOST, price, Source.CUSTOMER)
    # Customer said: 6 Price + 2 Timing = 8 losses; Q1 customer said: 2 (both Price).
    assert (customer.deals, customer.base, customer.prev_base) == (6, 8, 2)
    assert customer.rate == pytest.approx(0.75) and customer.prev_rate == pytest.approx(1.0)
    # Only 2 in Q1: below the minimum slice, so never flagged whatever the p-value.
    assert not customer.significant
    rep_read = fact(Dimension.PRIMARY_REASON_LOST, price, Source.REP)
    assert (rep_read.deals, rep_read.base) == (2, 2)


def test_competitor_and_objection_rows_by_hand(quarters, competitor):
    services.insights_rebuild()
    acme = fact(Dimension.COMPETITOR, str(competitor.pk))
    assert (acme.deals, acme.won, acme.lost) == (5, 1, 4)
    assert acme.win_rate == pytest.approx(0.2) and acme.share == pytest.approx(5 / 15)
    assert acme.prev_rate is None and acme.change is None and not acme.significant

    objection = InsightFact.objects.get(
        period_kind=PeriodKind.QUARTER,
        period_start=Q2,
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.OBJECTION,
        label="Price too high",
    )
    assert (objection.deals, objection.base, objection.won) == (6, 15, 0)
    assert objection.share == pytest.approx(0.4) and objection.win_rate == 0
    # 0 of 15 -> 6 of 15, expected counts of 3: Fisher's exact test, p = 0.0169.
    assert objection.prev_rate == 0 and objection.p_value == pytest.approx(0.01686, abs=1e-5)
    assert objection.significant and objection.test == "fisher"
    assert objection.headline == (
        "Customers raised “Price too high” in 40% of closed deals in Q2 2026 (6 of 15), up "
        "from 0% (0 of 15) in Q1 2026. A change this large would come from chance about once "
        "in 60."
    )


def test_every_scope_kind_and_months_are_rolled_up(quarters, rep):
    services.insights_rebuild()
    team = fact(Dimension.SUMMARY, scope=ScopeKind.TEAM, scope_key=str(rep.team_id))
    line = fact(
        Dimension.SUMMARY,
        scope=ScopeKind.PRODUCT_LINE,
        scope_key=str(quarters.product.line_id),
    )
    segment = fact(Dimension.SUMMARY, scope=ScopeKind.SEGMENT, scope_key="software")
    assert team.deals == line.deals == segment.deals == 15
    team_fit = fact(
        Dimension.PRIMARY_REASON_LOST,
        reason_key("lost", "Product fit"),
        scope=ScopeKind.TEAM,
        scope_key=str(rep.team_id),
    )
    assert team_fit.headline.startswith(
        "Product fit was the main reason in 0% of losses in North in Q2 2026 (0 of 10)"
    )
    segment_rows = InsightFact.objects.filter(
        scope_kind=ScopeKind.SEGMENT, dimension=Dimension.SEGMENT
    )
    assert not segment_rows.exists()  # a segment scope is not cut by segment again
    may = InsightFact.objects.get(
        period_kind=PeriodKind.MONTH,
        period_start=d("2026-05-01"),
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.SUMMARY,
    )
    assert may.deals == 15 and may.prev_rate is None  # April had no closes


def _snapshot():
    fields = [f.name for f in InsightFact._meta.fields if f.name != "id"]
    return sorted(InsightFact.objects.values_list(*fields), key=repr)


def test_rebuild_twice_gives_identical_rows(quarters):
    services.insights_rebuild()
    first, ids = _snapshot(), set(InsightFact.objects.values_list("pk", flat=True))
    services.insights_rebuild()
    assert _snapshot() == first
    assert set(InsightFact.objects.values_list("pk", flat=True)) == ids  # upserted in place


def test_rollup_of_one_slice_is_idempotent_and_drops_stale_rows(quarters, rep):
    services.insights_rollup(
        kind=PeriodKind.QUARTER,
        period_start=Q2,
        scope_kind=ScopeKind.TEAM,
        scope_key=str(rep.team_id),
    )
    first = _snapshot()
    assert first and {row[2] for row in first} == {ScopeKind.TEAM}
    services.insights_rollup(
        kind=PeriodKind.QUARTER,
        period_start=Q2,
        scope_kind=ScopeKind.TEAM,
        scope_key=str(rep.team_id),
    )
    assert _snapshot() == first
    # A fact that no longer follows from the reflections is removed by the next rollup.
    InsightFact.objects.create(
        period_kind=PeriodKind.QUARTER,
        period_start=Q2,
        scope_kind=ScopeKind.TEAM,
        scope_key=str(rep.team_id),
        dimension=Dimension.COMPETITOR,
        key="999999",
        label="Ghost",
    )
    services.insights_rollup(
        kind=PeriodKind.QUARTER,
        period_start=Q2,
        scope_kind=ScopeKind.TEAM,
        scope_key=str(rep.team_id),
    )
    assert _snapshot() == first


def test_merged_reason_is_reported_under_its_target(closer, settings):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    closer.close("lost", d("2026-05-12"), "Budget")
    closer.close("lost", d("2026-05-12"), "Price")
    budget = Reason.objects.get(outcome="lost", label="Budget")
    price = Reason.objects.get(outcome="lost", label="Price")
    budget.active, budget.merged_into = False, price
    budget.save()
    services.insights_rebuild()
    rows = InsightFact.objects.filter(
        period_kind=PeriodKind.QUARTER,
        scope_kind=ScopeKind.ORG,
        dimension="primary_reason_lost",
        source=Source.ALL,
    )
    assert list(rows.values_list("key", "label", "deals")) == [(str(price.pk), "Price", 2)]


def test_reopened_deals_no_longer_count(quarters):
    from reflections.models import Reflection

    Reflection.objects.filter(closed_date__gte=Q2).update(current=False)
    services.insights_rebuild()
    assert not InsightFact.objects.filter(period_start=Q2, period_kind=PeriodKind.QUARTER).exists()
    # Q3 is not a period with data either; Q1 stays.
    assert fact(Dimension.SUMMARY, start=Q1).deals == 15


def test_tests_match_hand_computed_values():
    # 18 of 100 -> 31 of 100, expected counts 24.5 and 75.5: the z-test. Pooled 0.245,
    # se = sqrt(0.245 * 0.755 * 0.02) = 0.060824, z = 2.1373, p = erfc(2.1373 / sqrt 2) = 0.0326
    # 2 of 10 -> 3 of 10, expected 2.5: Fisher's exact test, p = 1.
    # 10 of 10 -> 5 of 5: nothing to compare but all-yes, p = 1.
    assert stats.compare([(18, 100, 31, 100), (2, 10, 3, 10), (10, 10, 5, 5)]) == [
        (pytest.approx(0.0326, abs=1e-4), "z"),
        (pytest.approx(1.0), "fisher"),
        (1.0, "z"),
    ]
    (p_up, _), (p_down, _) = stats.compare([(18, 100, 31, 100), (31, 100, 18, 100)])
    assert math.isclose(p_up, p_down)
    with pytest.raises(ValueError, match="at least one deal"):
        stats.compare([(0, 0, 3, 10)])
    with pytest.raises(ValueError, match="between 0"):
        stats.compare([(11, 10, 3, 10)])


@pytest.mark.needs_postgres
def test_totals_of_the_largest_deals_never_overflow(closer):
    """
    101 deals at the largest amount a deal holds: the sum has 17 digits, and is kept to the
    cent. (PostgreSQL enforces the column's digits; SQLite keeps numerics as floating point.)
    """
    biggest = Decimal("999999999999.99")
    for _ in range(101):
        closer.close("won", d("2026-05-12"), "Product fit", amount=str(biggest))
    services.insights_rebuild()
    summary = fact(Dimension.SUMMARY)
    assert summary.won == 101 and summary.amount_won == biggest * 101
