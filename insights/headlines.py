"""
Which changes a report headlines, and in what words. A change against the previous period is
headlined only when all of these hold (README, "How a report decides that something changed"):

1. It can be tested: both periods have a rate, the row's base is at least the minimum slice
   (K) on both sides, the slice has at least DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS closed deals
   on both sides, and a period still running has passed DEBRIEF_INSIGHT_PARTIAL_MIN_PERCENT of
   its days.
2. It survives the many comparisons a report makes: the tests of one report view (a period x
   scope x reason source) are one family, and the Benjamini-Hochberg procedure keeps the
   expected share of chance findings among its headlines at DEBRIEF_INSIGHT_FDR.
3. It is large enough to matter: more than DEBRIEF_INSIGHT_MIN_CHANGE_POINTS points.
4. It is not an echo. The main reasons of one outcome share 100% between them, so when one
   rises the others fall. Within one question the largest change is the driver; another change
   is its echo unless it is still meaningful (the family's cut-off and the floor) once the
   drivers' deals are taken out of both periods. Likewise the win rate is an echo of a
   competitor's or segment's win rate moving the same way when, without that competitor's or
   segment's deals, it did not change meaningfully. An echo is told under its driver, not on
   its own.
"""

import datetime
from collections import defaultdict
from collections.abc import Sequence

from django.conf import settings

from insights import stats
from insights.models import Dimension, InsightFact, ScopeKind, Source
from insights.periods import Period

PRIMARY = {
    Dimension.PRIMARY_REASON_WON,
    Dimension.PRIMARY_REASON_LOST,
    Dimension.PRIMARY_REASON_NO_DECISION,
}
WIN_RATE_DRIVERS = {Dimension.COMPETITOR, Dimension.SEGMENT}
UNKNOWN_KEY = "unknown"
VIEWS = [Source.CUSTOMER, Source.REP, Source.BUYER, Source.ALL]


class Rules:
    """The headline rules' settings in the words a page states them (a mixin for reports)."""

    @property
    def fdr_percent(self) -> int:
        return round(settings.DEBRIEF_INSIGHT_FDR * 100)

    @property
    def min_change(self) -> int:
        return settings.DEBRIEF_INSIGHT_MIN_CHANGE_POINTS

    @property
    def min_deals(self) -> int:
        return settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS


def floor() -> float:
    return settings.DEBRIEF_INSIGHT_MIN_CHANGE_POINTS / 100


def large_enough(change: float | None) -> bool:
    """More than the practical floor; rounded so that 30% -> 35% counts as exactly 5 points."""
    return change is not None and round(abs(change), 9) > floor()


def too_young(period: Period, today: datetime.date) -> bool:
    """A period still running that has not yet passed the minimum share of its days."""
    if not period.start <= today < period.end:
        return False
    elapsed = (today - period.start).days + 1
    length = (period.end - period.start).days
    return elapsed * 100 < settings.DEBRIEF_INSIGHT_PARTIAL_MIN_PERCENT * length


def headline_from(period: Period, today: datetime.date) -> datetime.date | None:
    """The first day a running period's changes may be headlined (None: not running)."""
    if not period.start <= today < period.end:
        return None
    length = (period.end - period.start).days
    days = -(-settings.DEBRIEF_INSIGHT_PARTIAL_MIN_PERCENT * length // 100)  # ceiling
    return period.start + datetime.timedelta(days=max(days - 1, 0))


def family(facts: Sequence[InsightFact], view: str) -> list[InsightFact]:
    """The facts one report view shows: the split main reasons of its source, the rest."""
    return [f for f in facts if (f.source == view if f.dimension in PRIMARY else True)]


def decide(
    facts: Sequence[InsightFact],
    *,
    period: Period,
    scope_label: str,
    testable: bool,
    k: int,
    partial: bool,
) -> None:
    """
    Test, adjust and word the facts of one slice of one period in place: p_value, test,
    q_value, significant, echo_of, headline, headline_note and the intervals. `testable` is
    False when the slice or its period may carry no headline at all (too few deals, too young).
    """
    for fact in facts:
        fact.p_value = fact.q_value = None
        fact.test, fact.echo_of, fact.headline, fact.headline_note = "", "", "", ""
        fact.significant = False
    _intervals(facts)
    least = max(k, settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS)
    tested = [
        f
        for f in facts
        if testable
        and f.rate is not None
        and f.prev_rate is not None
        and f.base >= least
        and (f.prev_base or 0) >= least
        and 0 <= f.x <= f.base
        and 0 <= f.prev_x <= f.prev_base
    ]
    for fact, (p, test) in zip(
        tested, stats.compare([(f.prev_x, f.prev_base, f.x, f.base) for f in tested]), strict=True
    ):
        fact.p_value, fact.test = p, test
    level = settings.DEBRIEF_INSIGHT_FDR
    # The split views first: the main view says when a shift exists in reps' read only.
    chosen: dict[str, set[int]] = {}
    for view in VIEWS:
        members = family(tested, view)
        q_values = stats.adjust([f.p_value for f in members])
        # A view's q-values are kept on the rows it owns: the split views own their split
        # main reasons; the main view owns the rest.
        owned = [(f, q) for f, q in zip(members, q_values, strict=True) if f.source == view]
        for fact, q in owned:
            fact.q_value = q
        passed = [f for f, q in zip(members, q_values, strict=True) if q <= level]
        cutoff = max((f.p_value for f in passed), default=0.0)
        # The rows the view owns are decided here; a split view's shared rows (the win
        # rate, competitors, ...) are the main view's, decided and told there once.
        candidates = [f for f in passed if large_enough(f.change) and f.source == view]
        headlined = _group_echoes(candidates, cutoff)
        chosen[view] = {id(f) for f in headlined}
        for fact, _ in owned:
            fact.significant = id(fact) in chosen[view]
    for fact in facts:
        if fact.significant:
            fact.headline = sentence(fact, period, scope_label, partial=partial)
            note = _source_note(fact, facts, chosen)
            if note:
                fact.headline_note = " ".join(filter(None, [fact.headline_note, note]))


def _intervals(facts: Sequence[InsightFact]) -> None:
    now = stats.intervals(*_counts(facts, "x", "base", "rate"))
    before = stats.intervals(*_counts(facts, "prev_x", "prev_base", "prev_rate"))
    for fact, (low, high), (prev_low, prev_high) in zip(facts, now, before, strict=True):
        fact.rate_low, fact.rate_high = finite(low), finite(high)
        fact.prev_low, fact.prev_high = finite(prev_low), finite(prev_high)


def _counts(facts, x_name: str, n_name: str, rate_name: str) -> tuple[list, list]:
    """Successes and trials of each fact's rate; no trials where there is no valid rate."""
    xs, ns = [], []
    for fact in facts:
        x, n = getattr(fact, x_name) or 0, getattr(fact, n_name) or 0
        valid = getattr(fact, rate_name) is not None and 0 <= x <= n
        xs.append(x if valid else 0)
        ns.append(n if valid else 0)
    return xs, ns


def finite(value: float) -> float | None:
    return None if value != value else round(value, 6)  # NaN: no interval


def _meaningful(x: int, n: int, prev_x: int, prev_n: int, cutoff: float) -> bool:
    """Is the change of x/n against prev_x/prev_n meaningful at the family's cut-off?"""
    if n <= 0 or prev_n <= 0:
        return False
    if not large_enough(x / n - prev_x / prev_n):
        return False
    ((p, _),) = stats.compare([(prev_x, prev_n, x, n)])
    return p <= cutoff


def _group_echoes(candidates: list[InsightFact], cutoff: float) -> list[InsightFact]:
    """The candidates that are headlined; the echoes are attached to their drivers."""
    by_question: dict[tuple, list[InsightFact]] = defaultdict(list)
    for fact in candidates:
        if fact.dimension in PRIMARY:
            by_question[(fact.dimension, fact.source)].append(fact)
    echoes: set[int] = set()
    for question in by_question.values():
        question.sort(key=lambda f: (-abs(f.change), f.p_value, f.key))
        drivers: list[InsightFact] = []
        for fact in question:
            taken, prev_taken = sum(d.x for d in drivers), sum(d.prev_x for d in drivers)
            if drivers and not _meaningful(
                fact.x, fact.base - taken, fact.prev_x, fact.prev_base - prev_taken, cutoff
            ):
                _attach(fact, drivers[0])
                echoes.add(id(fact))
            else:
                drivers.append(fact)
        for driver in drivers:
            moved = [f for f in question if f.echo_of == _ref(driver)]
            if moved:
                driver.headline_note = "The other main reasons moved with it: " + (
                    ", ".join(
                        f"{f.label} {percent(f.prev_rate)} → {percent(f.rate)}"
                        for f in sorted(moved, key=lambda f: f.label)
                    )
                    + "."
                )

    summary = next((f for f in candidates if f.dimension == Dimension.SUMMARY), None)
    if summary is not None:
        rivals = [
            f
            for f in candidates
            if f.dimension in WIN_RATE_DRIVERS and (f.change > 0) == (summary.change > 0)
        ]
        rivals.sort(key=lambda f: (-abs(f.change) * f.base, f.p_value, f.key))
        for driver in rivals:
            if not _meaningful(
                summary.x - driver.x,
                summary.base - driver.base,
                summary.prev_x - driver.prev_x,
                summary.prev_base - driver.prev_base,
                cutoff,
            ):
                _attach(summary, driver)
                echoes.add(id(summary))
                driver.headline_note = " ".join(
                    filter(
                        None,
                        [
                            driver.headline_note,
                            "The overall win rate moved with it, from "
                            f"{percent(summary.prev_rate)} to {percent(summary.rate)}.",
                        ],
                    )
                )
                break
    return [f for f in candidates if id(f) not in echoes]


def _ref(fact: InsightFact) -> str:
    return f"{fact.dimension}:{fact.key}"


def _attach(echo: InsightFact, driver: InsightFact) -> None:
    echo.echo_of = _ref(driver)


def _source_note(fact: InsightFact, facts: Sequence[InsightFact], chosen: dict) -> str:
    """For a main reason: say so when the shift shows in reps' own read only."""
    if fact.dimension not in PRIMARY or fact.source in (Source.CUSTOMER, Source.BUYER):
        return ""
    split = {f.source: f for f in facts if f.dimension == fact.dimension and f.key == fact.key}
    rep, customer = split.get(Source.REP), split.get(Source.CUSTOMER)
    if rep is None or id(rep) not in chosen[Source.REP]:
        return ""
    if customer is not None and id(customer) in chosen[Source.CUSTOMER]:
        return ""
    return (
        "The shift is in reps' own read only: where customers said why, the share did not "
        "change meaningfully."
    )


# --- words -------------------------------------------------------------------------------------
def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{round(rate * 100)}%"


def _first_lower(label: str) -> str:
    if len(label) > 1 and label[1].islower():
        return label[0].lower() + label[1:]
    return label


OUTCOME_NOUNS = {"won": "wins", "lost": "losses", "no_decision": "deals without a decision"}
PRIMARY_NOUNS = {
    Dimension.PRIMARY_REASON_WON: "wins",
    Dimension.PRIMARY_REASON_LOST: "losses",
    Dimension.PRIMARY_REASON_NO_DECISION: "deals that ended without a decision",
}


def chance(p: float | None) -> str:
    """How often chance alone gives a change this large, in words."""
    if p is None:
        return ""
    if p < 0.001:
        return "A change this large would come from chance less than once in a thousand."
    times = 1 / p
    step = 50 if times >= 200 else 10 if times >= 50 else 5 if times >= 20 else 1
    times = max(step, round(times / step) * step)
    return f"A change this large would come from chance about once in {times}."


def sentence(fact: InsightFact, period: Period, scope_label: str, *, partial: bool) -> str:
    """
    One plain claim with its size and confidence, e.g. "Price was the main reason in 38% of
    losses for Payments in Q3 2026 (57 of 150), up from 24% (36 of 150) in Q2 2026. A change
    this large would come from chance about once in 200."
    """
    where = ""
    if fact.scope_kind in (ScopeKind.TEAM, ScopeKind.SEGMENT):
        where = f" in {scope_label}"
    elif fact.scope_kind == ScopeKind.PRODUCT_LINE:
        where = f" for {scope_label}"
    where += {
        Source.CUSTOMER: " as customers told it",
        Source.REP: " in reps' own read",
        Source.BUYER: " as buyers put it in their surveys",
    }.get(fact.source, "")
    when = f"so far in {period.label}" if partial else f"in {period.label}"
    now = f"{percent(fact.rate)}"
    counts = f"({fact.x} of {fact.base})"
    direction = "up" if fact.change > 0 else "down"
    before = (
        f"{direction} from {percent(fact.prev_rate)} ({fact.prev_x} of {fact.prev_base}) "
        f"in {period.previous().label}"
    )
    label = fact.label
    if fact.dimension in PRIMARY:
        subject = (
            "The main reason was not known"
            if fact.key == UNKNOWN_KEY
            else f"{label} was the main reason"
        )
        claim = f"{subject} in {now} of {PRIMARY_NOUNS[fact.dimension]}{where} {when} {counts}"
    elif fact.dimension == Dimension.CONTRIBUTING_REASON:
        noun = OUTCOME_NOUNS.get(fact.outcome, "closed deals")
        claim = f"{label} played a part in {now} of {noun}{where} {when} {counts}"
    elif fact.dimension == Dimension.OBJECTION:
        claim = f"Customers raised “{label}” in {now} of closed deals{where} {when} {counts}"
    elif fact.dimension == Dimension.COMPETITOR:
        claim = f"Our win rate against {label}{where} was {now} {when} {counts}"
    elif fact.dimension == Dimension.SEGMENT:
        claim = f"Our win rate in {_first_lower(label)}{where} was {now} {when} {counts}"
    else:
        claim = f"The win rate{where} was {now} {when} {counts}"
    return f"{claim}, {before}. {chance(fact.p_value)}"


def digest_shifts(tested: Sequence[InsightFact], *, k: int) -> list[InsightFact]:
    """
    What a digest lists from the tested facts of the report views it covers: one family, so a
    fact must be headlined in its own report and also survive the false-discovery control
    across every test of the digest.
    """
    q_values = stats.adjust([f.p_value for f in tested])
    level = settings.DEBRIEF_INSIGHT_FDR
    return [
        f
        for f, q in zip(tested, q_values, strict=True)
        if f.significant and q <= level and f.base >= k and (f.prev_base or 0) >= k
    ]
