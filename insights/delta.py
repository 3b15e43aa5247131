"""
Refresh by delta: a close, reopening, amendment or buyer's answer changes the stored facts by
that one reflection's share, instead of making the refresh read its whole period again.

A reflection's contribution is what the rollup counts for it (insights.facts): its month,
outcome, scope keys, amount in the reporting currency, cycle days, and the reason, objection,
competitor and segment cells it adds one deal to. It is plain JSON, so that what the stored
facts count for a reflection can be kept when it is about to change (PendingReflection.counted).
The refresh takes that away, adds what the reflection says now, and recomputes the comparisons,
tests and headlines of exactly the reports it touched and the ones that compare with them:
the slice's report in its month and quarter, in the organisation, its team, product line and
segment, and the same reports of the next month and quarter. The stored facts it reads are
those reports' and their previous periods'; the reflections it reads are the changed ones.

Amounts and cycle days are stored as exact sums beside their rounded figures, so the result is
the one a rebuild gives to the last digit (tests/insights/test_delta_refresh.py proves it on
random sequences). Where a delta cannot know what the facts count, the periods are recomputed
from their reflections instead (insights.receivers marks them): a buyer changing answers
already counted, a reason merged into another, imports; and so are they when counts would go
below zero, or the facts were stored before these sums existed (`delta_facts` raises
Inconsistent). What no mark sees (a team renamed, a deal moved to another team after closing,
changed currency rates) waits for the nightly rebuild, as it did before.
"""

import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from insights import facts as rules
from insights.models import InsightFact, PeriodKind, ScopeKind
from insights.periods import Period
from opportunities.currency import currency_rates
from reflections.models import Reflection

Slot = rules.Slot
Contribution = dict
_MONTH, _QUARTER = PeriodKind.MONTH.value, PeriodKind.QUARTER.value
_SEGMENT = ScopeKind.SEGMENT.value
_STORED_COLUMNS = (
    "period_kind",
    "period_start",
    "scope_kind",
    "scope_key",
    "dimension",
    "source",
    "key",
    "label",
    "outcome",
    "deals",
    "won",
    "lost",
    "no_decision",
    "amount_won",
    "amount_won_exact",
    "amount_lost",
    "amount_lost_exact",
    "cycle_days_total",
    "cycles",
    "imported",
)


def contributions(
    reflection_ids: Iterable[int], *, current_only: bool = True, buyers: bool = True
) -> dict[int, Contribution]:
    """
    What the rollup counts for each of these reflections, by id; one that it does not count
    (reopened, an import left out of reports) is missing. `current_only=False` reads a
    reflection as if it were still current (the reopening just turned it off); `buyers=False`
    leaves its buyer's answers out. Three queries, whatever the data size.
    """
    ids = sorted(set(reflection_ids))
    if not ids:
        return {}
    here = Q(pk__in=ids, in_reports=True)
    if current_only:
        here &= Q(current=True)
    rates = currency_rates()
    found: dict[int, Contribution] = {}
    for (
        reflection_id,
        closed,
        outcome,
        team,
        team_name,
        line,
        line_name,
        segment,
        competitor,
        competitor_name,
        amount,
        currency,
        cycle,
        origin,
    ) in rules._reflection_rows(here):
        value = None
        if outcome != rules._NO_DECISION and amount is not None:
            rate = rates.get(currency)
            if rate is not None:
                value = str(amount * rate)
        found[reflection_id] = {
            "month": closed.replace(day=1).isoformat(),
            "day": closed.isoformat(),
            "outcome": outcome,
            "team": None if team is None else [team, team_name],
            "line": None if line is None else [line, line_name],
            "segment": segment,
            "competitor": None if competitor is None else [competitor, competitor_name],
            "value": value,
            "cycle": None if cycle is None else cycle.days,
            "imported": int(origin == rules._IMPORTED),
            "cells": [],
        }
    if not found:
        return {}
    # The same answers the rollup reads, filtered the same way but by reflection.
    answers = rules._answer_rows(
        Q(reflection_id__in=list(found), reflection__in_reports=True)
    ).order_by("reflection_id", "id")
    rows: Iterable[tuple] = answers
    if buyers:
        rows = [
            *answers,
            *rules._buyer_rows(
                Q(request__reflection_id__in=list(found), request__reflection__in_reports=True)
            ).order_by("id"),
        ]
    seen: set[tuple] = set()
    for reflection_id, kind, source, reason, reason_label, objection, label in rows:
        contribution = found[reflection_id]
        outcome = contribution["outcome"]
        if kind == rules._PRIMARY_KIND:
            mark = (reflection_id, source, reason)
            dimension = rules._PRIMARY[outcome]
            if source == rules._BUYER:
                sources = [rules._BUYER]
            else:
                sources = [rules._ALL]
                if source in (rules._CUSTOMER, rules._REP):
                    sources.append(source)
            key = rules.UNKNOWN_KEY if reason is None else str(reason)
            cell = [key, reason_label or rules.UNKNOWN_LABEL, outcome]
        elif kind == rules._CONTRIBUTING_KIND:
            mark = (reflection_id, kind, reason)
            dimension, sources = rules._CONTRIBUTING, [rules._ALL]
            cell = [str(reason), reason_label, outcome]
        else:
            mark = (reflection_id, kind, objection)
            dimension, sources = rules._OBJECTION, [rules._ALL]
            cell = [str(objection), label, None]
        if mark in seen:  # a deal counts once per key (a reason merged into one it names)
            continue
        seen.add(mark)
        contribution["cells"].extend([dimension, source, *cell] for source in sources)
    return found


def periods_of(contribution: Contribution) -> list[tuple[str, datetime.date]]:
    """The (period kind, start) pairs whose facts a contribution counts in."""
    month = datetime.date.fromisoformat(contribution["month"])
    return [(_QUARTER, Period.containing(_QUARTER, month).start), (_MONTH, month)]


def slots_of(contribution: Contribution) -> list[Slot]:
    """The reports (period, scope kind, scope) a contribution counts in."""
    keys = [
        (ScopeKind.ORG.value, ""),
        (ScopeKind.TEAM.value, _key(contribution["team"])),
        (ScopeKind.PRODUCT_LINE.value, _key(contribution["line"])),
        (_SEGMENT, contribution["segment"]),
    ]
    return [
        (kind, start, scope_kind, key)
        for kind, start in periods_of(contribution)
        for scope_kind, key in keys
        if key is not None
    ]


def _key(pair) -> str | None:
    return None if pair is None else str(pair[0])


@dataclass
class Delta:
    """The recomputed facts of the reports a delta touched (`slots`: every report whose stored
    facts they replace, including the ones left empty)."""

    facts: list[InsightFact]
    slots: set[Slot]


class Inconsistent(Exception):
    """The stored facts cannot take this delta (counts below zero, sums missing)."""


def delta_facts(
    changes: Sequence[tuple[Contribution | None, Contribution | None]],
    *,
    changed: Iterable[int],
    skip: set[tuple[str, datetime.date]] = frozenset(),
    k: int,
    today: datetime.date,
) -> Delta:
    """
    The facts of the reports that these changes (what the stored facts count for a reflection,
    what it says now) touch, from the stored facts and the changes alone; periods in `skip`
    were recomputed from their reflections and take no delta. Raises Inconsistent when the
    stored facts cannot have counted what a change takes away. One query (and one more for a
    period without stored facts).
    """
    counted_in: set[Slot] = set()
    for old, new in changes:
        for contribution in (old, new):
            if contribution is not None:
                counted_in.update(slots_of(contribution))
    touched = {slot for slot in counted_in if slot[:2] not in skip}
    # The next period compares with these counts; so it does when a recomputed period took
    # the change (the period after it may not have been recomputed with it), and when it was
    # itself recomputed against the stored facts before this delta.
    following = {_shift(slot, Period.next) for slot in counted_in} - touched
    if not touched and not following:
        return Delta([], set())
    preceding = {_shift(slot, Period.previous) for slot in touched | following}
    wanted: dict[str, set[datetime.date]] = defaultdict(set)
    for kind, start, _, _ in touched:
        wanted[kind].add(start)
    tally = rules._Tally(wanted=dict(wanted), scope_kinds=list(rules.SCOPE_FIELDS), scope_key=None)
    stored = list(_stored(touched | following | preceding))
    _check_complete(stored, touched, changed)
    _restore(tally, stored, must_have_sums=touched | following)
    for old, new in changes:
        if old is not None:
            _apply(tally, old, -1)
        if new is not None:
            _apply(tally, new, 1)
    _prune(tally, touched)
    # The reports to write: the touched ones, and the next period's where it has facts (its
    # comparison changed). A touched report left without deals loses its facts.
    computed = {slot for slot in touched | following if slot in tally.summary}
    facts: list[InsightFact] = []
    for kind in (_QUARTER, _MONTH):
        starts = sorted({slot[1] for slot in computed if slot[0] == kind})
        if starts:
            periods = [Period(kind, start) for start in starts]
            facts += rules._facts(tally, kind, periods, k, today, only=computed)
    return Delta(facts, touched | following)


def _shift(slot: Slot, step) -> Slot:
    kind, start, scope_kind, key = slot
    return (kind, step(Period(kind, start)).start, scope_kind, key)


def _check_complete(stored: list[tuple], touched: set[Slot], changed: Iterable[int]) -> None:
    """
    A period without an organisation summary has no stored facts: either nothing in it was
    counted yet, or its facts were never computed (then a delta would count the changed
    reflections alone). Told apart by whether any other reflection counts in it.
    """
    summaries = {(r[0], r[1]) for r in stored if r[2] == ScopeKind.ORG and r[4] == rules._SUMMARY}
    for kind, start in sorted({slot[:2] for slot in touched} - summaries):
        period = Period(kind, start)
        others = Reflection.objects.filter(
            current=True, in_reports=True, closed_date__gte=period.start, closed_date__lt=period.end
        ).exclude(pk__in=list(changed))
        if others.exists():
            raise Inconsistent(f"{kind} {start} has reflections but no stored facts.")


def region(slots: Iterable[Slot]) -> Q:
    """The stored facts of these reports: one condition per period and scope kind."""
    keys: dict[tuple, set[str]] = defaultdict(set)
    for kind, start, scope_kind, key in slots:
        keys[(kind, start, scope_kind)].add(key)
    match = Q(pk__in=[])
    for (kind, start, scope_kind), scope_keys in sorted(keys.items()):
        match |= Q(
            period_kind=kind,
            period_start=start,
            scope_kind=scope_kind,
            scope_key__in=sorted(scope_keys),
        )
    return match


def _stored(slots: set[Slot]):
    return InsightFact.objects.filter(region(slots)).values_list(*_STORED_COLUMNS).order_by()


def _restore(tally: rules._Tally, rows, *, must_have_sums: set[Slot]) -> None:
    """Put stored facts back into a tally as the counts and sums they were computed from."""
    for row in rows:
        kind, start, scope_kind, key, dimension, source, cell_key, label, outcome = row[:9]
        deals, won, lost, no_decision = row[9:13]
        amount_won, won_exact, amount_lost, lost_exact, cycle_days, cycles, imported = row[13:]
        slot = (kind, start, scope_kind, key)
        if slot in must_have_sums and (
            (won and amount_won is not None and won_exact is None)
            or (lost and amount_lost is not None and lost_exact is None)
            or (dimension == rules._SUMMARY and deals and cycle_days is None)
        ):
            raise Inconsistent(f"Facts of {slot} were stored without their sums.")
        counts = {
            "label": label,
            "outcome": outcome or None,
            "deals": deals,
            "won": won,
            "lost": lost,
            "no_decision": no_decision,
            "amount_won": won_exact,
            "amount_lost": lost_exact,
        }
        if dimension == rules._SUMMARY:
            counts.update(cycle_days=cycle_days or 0, cycles=cycles, imported=imported)
            tally.summary[slot] = counts
            if scope_kind in (ScopeKind.TEAM, ScopeKind.PRODUCT_LINE):
                tally.scope_labels[(scope_kind, key)] = label
        elif deals:  # a zero row only carries an earlier period's key forward
            tally.cells_of(slot, dimension, source)[cell_key] = counts


def _apply(tally: rules._Tally, contribution: Contribution, sign: int) -> list[Slot]:
    """Add (sign 1) or take away (-1) one reflection's counts in the tally's wanted reports."""
    outcome = contribution["outcome"]
    value = None if contribution["value"] is None else Decimal(contribution["value"]) * sign
    cycle = contribution["cycle"]
    segment = contribution["segment"]
    for name, scope_kind in (("team", ScopeKind.TEAM), ("line", ScopeKind.PRODUCT_LINE)):
        if contribution[name] is not None:
            ident, label = contribution[name]
            tally.scope_labels.setdefault((scope_kind.value, str(ident)), label)
    slots = [slot for slot in slots_of(contribution) if slot[1] in tally.wanted.get(slot[0], ())]
    segment_labels = dict(rules.Segment.choices)
    for slot in slots:
        row = tally.summary.get(slot)
        if row is None:
            row = tally.summary[slot] = rules._new_cell("", None)
            row.update(cycle_days=0, cycles=0, imported=0)
        rules._count(row, outcome, sign, value)
        if cycle is not None:
            row["cycle_days"] += cycle * sign
            row["cycles"] += sign
        row["imported"] += contribution["imported"] * sign
        cells = []
        if slot[2] != _SEGMENT:
            label = segment_labels.get(segment, segment)
            cells.append((rules._SEGMENT_DIMENSION, rules._ALL, segment, label, None, value))
        if contribution["competitor"] is not None:
            ident, label = contribution["competitor"]
            cells.append((rules._COMPETITOR, rules._ALL, str(ident), label, None, value))
        for dimension, source, key, label, cell_outcome in contribution["cells"]:
            cells.append((dimension, source, key, label, cell_outcome, None))
        for dimension, source, key, label, cell_outcome, amount in cells:
            by_key = tally.cells_of(slot, dimension, source)
            cell = by_key.get(key)
            if cell is None:
                cell = by_key[key] = rules._new_cell(label, cell_outcome)
            rules._count(cell, outcome, sign, amount)
    return slots


def _prune(tally: rules._Tally, touched: set[Slot]) -> None:
    """
    Leave the tally as a rebuild would have it: no report without deals, no cell without deals,
    no amount where no deal has one. Counts below zero mean the stored facts never counted what
    was taken away.
    """
    for slot in touched:
        row = tally.summary.get(slot)
        if row is None:
            continue
        cells = tally.cells.get(slot, {})
        for counts in [row, *(c for by_key in cells.values() for c in by_key.values())]:
            if min(counts["deals"], counts["won"], counts["lost"], counts["no_decision"]) < 0:
                raise Inconsistent(f"Counts of {slot} would go below zero.")
        if row["cycles"] < 0 or row["imported"] < 0:
            raise Inconsistent(f"Counts of {slot} would go below zero.")
        if not row["deals"]:
            del tally.summary[slot]
            tally.cells.pop(slot, None)
            continue
        for counts in [row, *(c for by_key in cells.values() for c in by_key.values())]:
            if not counts["won"]:
                counts["amount_won"] = None
            if not counts["lost"]:
                counts["amount_lost"] = None
        for group, by_key in list(cells.items()):
            for key in [key for key, cell in by_key.items() if not cell["deals"]]:
                del by_key[key]
            if not by_key:
                del cells[group]
