"""
Report facts computed from current reflections. Two queries read what the reports need: one
row per reflection with every scope key (team, product line, segment), and one row per answer
that names a reason or an objection, for many periods of both kinds at once. Python tallies
every scope kind from those rows in one pass and arranges the aggregated groups: previous-period
comparisons, the significance test and headlines. A recompute of marked periods takes the
previous period's counts from its stored facts instead of reading its reflections again; a
refresh after closes adds and takes away single reflections' counts (insights.delta), which is
why facts keep their amounts and cycle days as exact sums too.

What each dimension counts:

- summary: closed deals with a current reflection, outcomes, win rate (won / closed), amounts
  won and lost in the reporting currency, average cycle days (closing day minus the day the
  deal was created).
- primary reasons (won, lost and no decision apart): share of that outcome's deals whose main
  reason it is; also split by who gave the reason (customer said / rep's own read), and what
  buyers named themselves in their surveys (source "buyer": the share among the deals whose
  buyer answered). A retired reason merged into another counts under the one it was merged
  into.
- contributing reasons: share of that outcome's deals where it played a part.
- competitors: deals against each (the deal's primary competitor) and our win rate there.
- objections: share of closed deals where it was heard, and the win rate when heard.
- segments: deals and win rate per customer segment (not within a segment scope).
"""

import datetime
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import CharField, DurationField, ExpressionWrapper, F, IntegerField, Q, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import User
from customers.models import Segment
from insights import headlines
from insights.models import Dimension, InsightFact, PeriodKind, ScopeKind, Source
from insights.periods import Period
from opportunities.currency import currency_rates
from reflections.models import Answer, Origin, Outcome, QuestionKind, Reflection
from surveys.models import SurveyAnswer, SurveyQuestionKind, SurveyStatus

SCOPE_FIELDS = {
    ScopeKind.ORG: None,
    ScopeKind.TEAM: "opportunity__owner__team_id",
    ScopeKind.PRODUCT_LINE: "opportunity__product__line_id",
    ScopeKind.SEGMENT: "opportunity__company__segment",
}
PRIMARY_DIMENSION = {
    Outcome.WON: Dimension.PRIMARY_REASON_WON,
    Outcome.LOST: Dimension.PRIMARY_REASON_LOST,
    Outcome.NO_DECISION: Dimension.PRIMARY_REASON_NO_DECISION,
}
# Dimensions whose rate is a share of the slice (zero this period is news) rather than a
# win rate among the row's own deals.
SHARE_DIMENSIONS = {
    Dimension.PRIMARY_REASON_WON,
    Dimension.PRIMARY_REASON_LOST,
    Dimension.PRIMARY_REASON_NO_DECISION,
    Dimension.CONTRIBUTING_REASON,
    Dimension.OBJECTION,
}
UNKNOWN_KEY = headlines.UNKNOWN_KEY
UNKNOWN_LABEL = "Unknown / not sure"
VALUE_FIELDS = [
    "label",
    "outcome",
    "deals",
    "won",
    "lost",
    "no_decision",
    "base",
    "rate",
    "share",
    "win_rate",
    "amount_won",
    "amount_lost",
    "avg_cycle_days",
    "imported",
    "amount_won_exact",
    "amount_lost_exact",
    "cycle_days_total",
    "cycles",
    "prev_deals",
    "prev_base",
    "prev_rate",
    "change",
    "rate_low",
    "rate_high",
    "prev_low",
    "prev_high",
    "p_value",
    "q_value",
    "test",
    "significant",
    "echo_of",
    "headline",
    "headline_note",
]
UNIQUE_FIELDS = [
    "period_kind",
    "period_start",
    "scope_kind",
    "scope_key",
    "dimension",
    "source",
    "key",
]
CENT = Decimal("0.01")
PERIOD_KINDS = [PeriodKind.QUARTER, PeriodKind.MONTH]
REASON_DIMENSIONS = {*PRIMARY_DIMENSION.values(), Dimension.CONTRIBUTING_REASON}
MICROSECONDS_PER_DAY = 86_400_000_000
STREAM_CHUNK = 5000

# (period kind, period start, scope kind, scope key): one slice of one period.
Slot = tuple[str, datetime.date, str, str]


def _cycle(prefix: str):
    return ExpressionWrapper(
        F(f"{prefix}closed_date") - TruncDate(f"{prefix}opportunity__created_at"),
        output_field=DurationField(),
    )


def _mean_cycle(total_days: int, count: int) -> datetime.timedelta:
    """
    The mean of `count` whole-day cycles, exactly as the database's AVG would give it, so that
    figures stay the same to the last digit whether SQL or Python averages them.
    """
    if connection.vendor == "postgresql":
        # interval_div(sum, count): whole days, then the rest as seconds rounded to the
        # microsecond (TSROUND), then as microseconds.
        quotient = total_days / count
        days = int(quotient)
        seconds = round((quotient - days) * 86400 * 1e6) / 1e6
        if abs(seconds) >= 86400:
            days += int(seconds / 86400)
            seconds -= int(seconds / 86400) * 86400
        return datetime.timedelta(days=days, microseconds=round(seconds * 1e6))
    # SQLite averages microseconds as a double; Django turns that into a timedelta.
    return datetime.timedelta(microseconds=float(total_days * MICROSECONDS_PER_DAY) / count)


# The tally keys its dicts on plain strings: a TextChoices member compares through Python
# code, which on hundreds of thousands of lookups costs more than the rest of the tally.
_ALL, _CUSTOMER, _REP = Source.ALL.value, Source.CUSTOMER.value, Source.REP.value
_BUYER = Source.BUYER.value
_WON, _NO_DECISION = Outcome.WON.value, Outcome.NO_DECISION.value
_IMPORTED = Origin.IMPORTED.value
_MONTH = PeriodKind.MONTH.value
_ORG, _TEAM, _LINE, _SEGMENT = (
    ScopeKind.ORG.value,
    ScopeKind.TEAM.value,
    ScopeKind.PRODUCT_LINE.value,
    ScopeKind.SEGMENT.value,
)
_PRIMARY_KIND = QuestionKind.PRIMARY_REASON.value
_CONTRIBUTING_KIND = QuestionKind.CONTRIBUTING_REASONS.value
_PRIMARY = {outcome.value: dimension.value for outcome, dimension in PRIMARY_DIMENSION.items()}
_CONTRIBUTING = Dimension.CONTRIBUTING_REASON.value
_OBJECTION = Dimension.OBJECTION.value
_COMPETITOR = Dimension.COMPETITOR.value
_SEGMENT_DIMENSION = Dimension.SEGMENT.value
_SUMMARY = Dimension.SUMMARY.value


def _new_cell(label: str, outcome: str | None) -> dict:
    return {
        "label": label,
        "outcome": outcome,
        "deals": 0,
        "won": 0,
        "lost": 0,
        "no_decision": 0,
        "amount_won": None,
        "amount_lost": None,
    }


def _count(cell: dict, outcome: str, deals: int, amount: Decimal | None) -> None:
    cell["deals"] += deals
    cell[outcome] += deals
    if amount is not None:
        name = "amount_won" if outcome == _WON else "amount_lost"
        cell[name] = amount if cell[name] is None else cell[name] + amount


class _Tally:
    """
    Counts per slot: the slice's summary row, and one cell per key for each (dimension,
    source). Rows are first grouped by what decides their slots (closing month, team, product
    line, segment, outcome); each group, not each row, is then spread over the period kinds and
    scope kinds asked for. Sums are exact (amounts in Decimal, cycles in whole days).
    """

    def __init__(
        self,
        *,
        wanted: dict[str, set[datetime.date] | None],
        scope_kinds: Sequence[str],
        scope_key: str | None,
    ):
        self.wanted = wanted  # period kind -> starts to tally (None: every period)
        self.scope_kinds = [str(scope_kind) for scope_kind in scope_kinds]
        self.scope_key = scope_key
        self.summary: dict[Slot, dict] = {}
        self.cells: dict[Slot, dict[tuple[str, str], dict[str, dict]]] = {}
        self.scope_labels: dict[tuple[str, str], str] = {
            (_ORG, ""): "",
            **{(_SEGMENT, code): label for code, label in Segment.choices},
        }
        self._slots: dict[tuple, list[Slot]] = {}

    def slots(self, group: tuple) -> list[Slot]:
        """The slots a group of rows counts in."""
        slots = self._slots.get(group)
        if slots is not None:
            return slots
        month, team, line, segment, _ = group
        keys = {
            _ORG: "",
            _TEAM: None if team is None else str(team),
            _LINE: None if line is None else str(line),
            _SEGMENT: segment,
        }
        slots = []
        for kind, starts in self.wanted.items():
            start = month if kind == _MONTH else Period.containing(kind, month).start
            if starts is not None and start not in starts:
                continue
            for scope_kind in self.scope_kinds:
                key = keys[scope_kind]
                if key is None or (self.scope_key is not None and key != self.scope_key):
                    continue
                slots.append((kind, start, scope_kind, key))
        self._slots[group] = slots
        return slots

    def cells_of(self, slot: Slot, dimension: str, source: str) -> dict[str, dict]:
        by_dimension = self.cells.get(slot)
        if by_dimension is None:
            by_dimension = self.cells[slot] = {}
        by_key = by_dimension.get((dimension, source))
        if by_key is None:
            by_key = by_dimension[(dimension, source)] = {}
        return by_key

    def add(self, reflections: Iterable[tuple], answers: Iterable[tuple]) -> None:
        """Tally rows from `_reflection_rows` and `_answer_rows`."""
        rates = currency_rates()
        months: dict[datetime.date, datetime.date] = {}
        group_ids: dict[tuple, int] = {}
        groups: list[tuple] = []  # (month, team, line, segment, outcome) by group id
        # [deals, amount, cycle days, cycles, imported deals] by group id
        totals: list[list] = []
        group_of: dict[int, int] = {}  # reflection id -> group id
        competitors: dict[tuple, list] = {}  # (group id, competitor) -> [deals, amount]
        competitor_names: dict[int, str] = {}
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
        ) in reflections:
            month = months.get(closed)
            if month is None:
                month = months[closed] = closed.replace(day=1)
            group = (month, team, line, segment, outcome)
            gid = group_ids.get(group)
            if gid is None:
                gid = group_ids[group] = len(groups)
                groups.append(group)
                totals.append([0, None, 0, 0, 0])
                if team is not None:
                    self.scope_labels[(_TEAM, str(team))] = team_name
                if line is not None:
                    self.scope_labels[(_LINE, str(line))] = line_name
            group_of[reflection_id] = gid
            total = totals[gid]
            total[0] += 1
            value = None
            if outcome != _NO_DECISION and amount is not None:
                rate = rates.get(currency)
                if rate is not None:
                    value = amount * rate
                    total[1] = value if total[1] is None else total[1] + value
            if cycle is not None:
                total[2] += cycle.days
                total[3] += 1
            if origin == _IMPORTED:
                total[4] += 1
            if competitor is not None:
                against = competitors.get((gid, competitor))
                if against is None:
                    against = competitors[(gid, competitor)] = [0, None]
                    competitor_names[competitor] = competitor_name
                against[0] += 1
                if value is not None:
                    against[1] = value if against[1] is None else against[1] + value

        # (group id, dimension, source) -> reason or objection id -> deals; a deal counts once
        # per key, also when two answers name the same reason (one merged into the other).
        counts: dict[tuple, dict] = {}
        reason_labels: dict[int | None, str | None] = {}
        objection_labels: dict[int, str] = {}
        primary = [_PRIMARY[group[4]] for group in groups]
        seen: set[tuple] = set()
        for reflection_id, kind, source, reason, reason_label, objection, label in answers:
            gid = group_of.get(reflection_id)
            if gid is None:  # written after the reflections were read
                continue
            if kind == _PRIMARY_KIND:
                mark, ident = (reflection_id, source, reason), reason
                reason_labels[reason] = reason_label
                if source == _BUYER:  # the buyer's own answer: a view of its own only
                    tallies = [(gid, primary[gid], _BUYER)]
                else:
                    tallies = [(gid, primary[gid], _ALL)]
                    if source in (_CUSTOMER, _REP):
                        tallies.append((gid, primary[gid], source))
            elif kind == _CONTRIBUTING_KIND:
                mark, ident = (reflection_id, kind, reason), reason
                reason_labels[reason] = reason_label
                tallies = [(gid, _CONTRIBUTING, _ALL)]
            else:
                mark, ident = (reflection_id, kind, objection), objection
                objection_labels[objection] = label
                tallies = [(gid, _OBJECTION, _ALL)]
            if mark in seen:
                continue
            seen.add(mark)
            for tally in tallies:
                by_ident = counts.get(tally)
                if by_ident is None:
                    by_ident = counts[tally] = {}
                by_ident[ident] = by_ident.get(ident, 0) + 1

        segment_labels = dict(Segment.choices)
        for gid, (deals, amount, cycle_days, cycles, imported) in enumerate(totals):
            group = groups[gid]
            segment, outcome = group[3], group[4]
            for slot in self.slots(group):
                row = self.summary.get(slot)
                if row is None:
                    row = self.summary[slot] = _new_cell("", None)
                    row.update(cycle_days=0, cycles=0, imported=0)
                _count(row, outcome, deals, amount)
                row["cycle_days"] += cycle_days
                row["cycles"] += cycles
                row["imported"] += imported
                if slot[2] != _SEGMENT:
                    by_key = self.cells_of(slot, _SEGMENT_DIMENSION, _ALL)
                    cell = by_key.get(segment)
                    if cell is None:
                        label = segment_labels.get(segment, segment)
                        cell = by_key[segment] = _new_cell(label, None)
                    _count(cell, outcome, deals, amount)
        for (gid, competitor), (deals, amount) in competitors.items():
            key, group = str(competitor), groups[gid]
            for slot in self.slots(group):
                by_key = self.cells_of(slot, _COMPETITOR, _ALL)
                cell = by_key.get(key)
                if cell is None:
                    cell = by_key[key] = _new_cell(competitor_names[competitor], None)
                _count(cell, group[4], deals, amount)
        for (gid, dimension, source), by_ident in counts.items():
            group = groups[gid]
            outcome = group[4]
            targets = [self.cells_of(slot, dimension, source) for slot in self.slots(group)]
            for ident, deals in by_ident.items():
                if dimension == _OBJECTION:
                    key, label, cell_outcome = str(ident), objection_labels[ident], None
                elif dimension == _CONTRIBUTING:
                    key, label, cell_outcome = str(ident), reason_labels[ident], outcome
                else:
                    key = UNKNOWN_KEY if ident is None else str(ident)
                    label, cell_outcome = reason_labels[ident] or UNKNOWN_LABEL, outcome
                for by_key in targets:
                    cell = by_key.get(key)
                    if cell is None:
                        cell = by_key[key] = _new_cell(label, cell_outcome)
                    cell["deals"] += deals
                    cell[outcome] += deals

    def add_stored(self, rows: Iterable[tuple]) -> None:
        """Tally the counts kept in stored facts (rows from `_stored_rows`)."""
        for kind, start, scope_kind, scope_key, dimension, source, key, *rest in rows:
            label, outcome, deals, won, lost, no_decision = rest
            slot = (kind, start, scope_kind, scope_key)
            counts = {"deals": deals, "won": won, "lost": lost, "no_decision": no_decision}
            if dimension == _SUMMARY:
                self.summary[slot] = counts
            elif deals:  # a zero row only carries an earlier period's key forward
                cell = _new_cell(label, outcome or None)
                cell.update(counts)
                self.cells_of(slot, dimension, source)[key] = cell


def _where(
    prefix: str,
    windows: list[tuple[datetime.date, datetime.date]] | None,
    scope_kinds: Sequence[str],
    scope_key: str | None,
    owner: User | None,
) -> Q:
    # Imported history can be left out of reports, one import at a time (answered
    # reflections are always in_reports).
    q = Q(**{f"{prefix}current": True, f"{prefix}in_reports": True})
    if windows is not None:
        ranges = Q()
        for first, end in windows:
            ranges |= Q(**{f"{prefix}closed_date__gte": first, f"{prefix}closed_date__lt": end})
        q &= ranges
    if len(scope_kinds) == 1 and (field := SCOPE_FIELDS[scope_kinds[0]]) is not None:
        q &= Q(**{f"{prefix}{field}__isnull": False})
        if scope_key is not None:
            q &= Q(**{f"{prefix}{field}": scope_key})
    if owner is not None:
        q &= Q(**{f"{prefix}opportunity__owner": owner})
    return q


_REFLECTION_COLUMNS = (
    "id",
    "closed_date",
    "outcome",
    "opportunity__owner__team_id",
    "opportunity__owner__team__name",
    "opportunity__product__line_id",
    "opportunity__product__line__name",
    "opportunity__company__segment",
    "opportunity__primary_competitor_id",
    "opportunity__primary_competitor__name",
    "opportunity__amount",
    "opportunity__currency",
    "cycle",
    "origin",
)


def _reflection_rows(where: Q):
    """
    One row per reflection: its period, outcome, every scope key, what is summed, and its
    origin (imported deals are counted in the summary, so that the page can say so).
    """
    return (
        Reflection.objects.filter(where)
        .annotate(cycle=_cycle(""))
        .values_list(*_REFLECTION_COLUMNS)
        .order_by()
    )


def _answer_rows(where: Q):
    """One row per answer naming a main reason (or none), a contributing reason or an
    objection, with a merged reason replaced by the one it was merged into."""
    return (
        Answer.objects.filter(where)
        .filter(
            Q(question__kind=QuestionKind.PRIMARY_REASON)
            | Q(question__kind=QuestionKind.CONTRIBUTING_REASONS, reason__isnull=False)
            | Q(question__kind=QuestionKind.OBJECTIONS, objection__isnull=False)
        )
        .annotate(
            rkey=Coalesce("reason__merged_into_id", "reason_id"),
            rlabel=Coalesce("reason__merged_into__label", "reason__label"),
        )
        .values_list(
            "reflection_id",
            "question__kind",
            "reason_source",
            "rkey",
            "rlabel",
            "objection_id",
            "objection__label",
        )
        .order_by()
    )


def _buyer_rows(where: Q):
    """
    One row per buyer's main reason from an answered survey, shaped like `_answer_rows` with
    the source "buyer", so that the rollup counts buyers' words exactly as it counts reps'.
    """
    return (
        SurveyAnswer.objects.filter(where)
        .filter(
            question__kind=SurveyQuestionKind.MAIN_REASON, request__status=SurveyStatus.ANSWERED
        )
        .annotate(
            kind=Value(_PRIMARY_KIND, CharField()),
            src=Value(_BUYER, CharField()),
            rkey=Coalesce("reason__merged_into_id", "reason_id"),
            rlabel=Coalesce("reason__merged_into__label", "reason__label"),
            no_objection=Value(None, IntegerField()),
            no_label=Value(None, CharField()),
        )
        .values_list(
            "request__reflection_id", "kind", "src", "rkey", "rlabel", "no_objection", "no_label"
        )
        .order_by()
    )


def _stored_rows(previous: set[tuple[str, datetime.date]]):
    """What comparisons need from the stored facts of these (kind, start) periods."""
    match = Q()
    for kind, start in sorted(previous):
        match |= Q(period_kind=kind, period_start=start)
    return (
        InsightFact.objects.filter(match)
        .filter(Q(dimension=Dimension.SUMMARY) | Q(deals__gt=0))
        .values_list(
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
        )
        .order_by()
    )


def _merged(windows: list[tuple[datetime.date, datetime.date]]):
    """Adjacent or overlapping date ranges as one, so the WHERE clause stays short."""
    ranges: list[list[datetime.date]] = []
    for first, end in sorted(windows):
        if ranges and ranges[-1][1] >= first:
            ranges[-1][1] = max(ranges[-1][1], end)
        else:
            ranges.append([first, end])
    return [(a, b) for a, b in ranges]


def _days(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() / 86400, 4)
    return round(float(value) / 86_400_000_000, 4)  # SQLite may hand back microseconds


def _cents(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(CENT)


def rollup_facts(
    *,
    periods: dict[str, Sequence[Period]] | None,
    scope_kinds: Sequence[str] | None = None,
    scope_key: str | None = None,
    owner: User | None = None,
    min_slice: int | None = None,
    stored_previous: bool = False,
    today: datetime.date | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[InsightFact]]:
    """
    Unsaved facts per period kind for `periods` (kind -> periods; None: every period that has
    reflections, of both kinds), each compared with the period before it, in every scope of
    `scope_kinds` (default all; or only `scope_key`), optionally only for deals `owner` owns (a
    person's own results, never stored).

    With `stored_previous`, a previous period that is not itself recomputed is compared from
    its stored facts when it has them (its organisation summary is there), and read from the
    reflections only when it has none. Reflections read: one query, answers: one query, buyers'
    survey answers: one query, stored facts: one query, whatever the data size.

    `progress`, if given, hears how far the computation is, in percent: once the rows are read
    and after each period kind, so that a run's progress bar moves while it computes.
    """
    k = settings.DEBRIEF_INSIGHT_MIN_SLICE if min_slice is None else min_slice
    scope_kinds = list(scope_kinds or SCOPE_FIELDS)
    stored: list[tuple] = []
    if periods is None:
        # Every period and the one before it are in the same read: no comparison is stored.
        wanted: dict[str, set[datetime.date] | None] = dict.fromkeys(map(str, PERIOD_KINDS))
        windows = None
    else:
        targets = {str(kind): sorted(set(ps)) for kind, ps in periods.items() if ps}
        if not targets:
            return {}
        previous = {
            (kind, p.previous().start)
            for kind, ps in targets.items()
            for p in ps
            if p.previous() not in ps
        }
        if stored_previous and previous:
            if owner is not None or scope_key is not None or ScopeKind.ORG not in scope_kinds:
                raise ValueError("Stored comparisons need every scope of the organisation.")
            rows = list(_stored_rows(previous))
            # A computed period with reflections always has an organisation summary; without
            # one its facts are missing (or it is empty, and reading it costs nothing).
            found = {(r[0], r[1]) for r in rows if r[2] == _ORG and r[4] == _SUMMARY}
            stored = [r for r in rows if (r[0], r[1]) in found and r[2] in scope_kinds]
            previous -= found
        wanted = {kind: {p.start for p in ps} for kind, ps in targets.items()}
        for kind, start in previous:
            wanted[kind].add(start)
        windows = _merged(
            [(s, Period(kind, s).end) for kind, starts in wanted.items() for s in starts]
        )
    reflections = _reflection_rows(_where("", windows, scope_kinds, scope_key, owner))
    answers = _answer_rows(_where("reflection__", windows, scope_kinds, scope_key, owner))
    buyers = _buyer_rows(_where("request__reflection__", windows, scope_kinds, scope_key, owner))
    tally = _Tally(wanted=wanted, scope_kinds=scope_kinds, scope_key=scope_key)
    if windows is None:
        # All history: streamed, so that memory stays flat however many years there are. A
        # few periods are fetched at once, which is faster.
        tally.add(
            reflections.iterator(STREAM_CHUNK),
            itertools.chain(answers.iterator(STREAM_CHUNK), buyers.iterator(STREAM_CHUNK)),
        )
    else:
        tally.add(reflections, itertools.chain(answers, buyers))
    tally.add_stored(stored)
    if periods is None:
        starts: dict[str, set[datetime.date]] = {kind: set() for kind in wanted}
        for kind, start, _, _ in tally.summary:
            starts[kind].add(start)
        targets = {kind: [Period(kind, s) for s in sorted(starts[kind])] for kind in wanted}
    today = today or timezone.localdate()
    if progress:
        progress(15)
    computed = {}
    for done, (kind, kind_periods) in enumerate(targets.items(), start=1):
        computed[kind] = _facts(tally, kind, kind_periods, k, today)
        if progress:
            progress(15 + done * 85 // len(targets))
    return computed


def facts_from_rows(
    reflections: Iterable[tuple],
    answers: Iterable[tuple],
    *,
    periods: dict[str, Sequence[Period]],
    scope_kinds: Sequence[str] | None = None,
    today: datetime.date | None = None,
    min_slice: int | None = None,
) -> dict[str, list[InsightFact]]:
    """
    The facts of `periods` (each against the period before it) from rows shaped as
    `_reflection_rows` and `_answer_rows` give them: the rollup's own computation without a
    database, for simulations of the method with known truth. A reflection row without the
    last column (its origin) counts as answered in Debrief.
    """
    k = settings.DEBRIEF_INSIGHT_MIN_SLICE if min_slice is None else min_slice
    targets = {str(kind): sorted(set(ps)) for kind, ps in periods.items() if ps}
    wanted = {
        kind: {p.start for p in ps} | {p.previous().start for p in ps}
        for kind, ps in targets.items()
    }
    tally = _Tally(wanted=wanted, scope_kinds=list(scope_kinds or SCOPE_FIELDS), scope_key=None)
    width = len(_REFLECTION_COLUMNS)
    rows = (row if len(row) == width else (*row, Origin.ANSWERED.value) for row in reflections)
    tally.add(rows, answers)
    today = today or timezone.localdate()
    return {kind: _facts(tally, kind, ps, k, today) for kind, ps in targets.items()}


def compute_facts(
    *,
    kind: str,
    periods: list[Period],
    scope_kind: str,
    scope_key: str | None = None,
    owner: User | None = None,
    min_slice: int | None = None,
) -> list[InsightFact]:
    """
    Unsaved facts for `periods` (each compared with the period before it, read from the
    reflections) in every scope of `scope_kind` (or only `scope_key`), optionally only for
    deals `owner` owns. A constant number of queries, whatever the data size.
    """
    if not periods:
        return []
    return rollup_facts(
        periods={kind: periods},
        scope_kinds=[scope_kind],
        scope_key=scope_key,
        owner=owner,
        min_slice=min_slice,
    )[kind]


def _facts(
    tally: _Tally,
    kind: str,
    periods: list[Period],
    k: int,
    today: datetime.date,
    only: set[Slot] | None = None,
) -> list[InsightFact]:
    """The facts of `periods` (of their slots in `only`, if given), from a tally that holds them
    and the periods before them."""
    slots_by_start: dict[datetime.date, list[Slot]] = defaultdict(list)
    for slot in tally.summary:
        if slot[0] == kind:
            slots_by_start[slot[1]].append(slot)
    min_deals = settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS
    facts: list[InsightFact] = []
    for period in periods:
        previous = period.previous()
        young = headlines.too_young(period, today)
        partial = period.start <= today < period.end
        for slot in slots_by_start.get(period.start, ()):
            if only is not None and slot not in only:
                continue
            _, _, scope_kind, scope = slot
            row = tally.summary[slot]
            prev_slot = (kind, previous.start, scope_kind, scope)
            prev_row = tally.summary.get(prev_slot)
            scope_label = tally.scope_labels.get((scope_kind, scope), scope)
            summary = _summary_fact(kind, period, scope_kind, scope, row, prev_row, scope_label)
            slice_facts = [summary]
            groups = tally.cells.get(slot, {})
            prev_groups = tally.cells.get(prev_slot, {}) if prev_row else {}
            for dimension, source in sorted(groups.keys() | prev_groups.keys()):
                current = groups.get((dimension, source), {})
                before = prev_groups.get((dimension, source), {})
                for key in _keys(dimension, current, before):
                    cell = current.get(key)
                    prev_cell = before.get(key)
                    fact = _dimension_fact(
                        dimension,
                        source,
                        key,
                        cell,
                        prev_cell,
                        base=_base(dimension, source, cell or prev_cell, row, current),
                        prev_base=_prev_base(dimension, source, cell, prev_cell, prev_row, before),
                        slice_deals=row["deals"],
                    )
                    if fact is None:
                        continue
                    fact.period_kind, fact.period_start = kind, period.start
                    fact.scope_kind, fact.scope_key = scope_kind, scope
                    _change(fact)
                    slice_facts.append(fact)
            testable = (
                not young
                and row["deals"] >= min_deals
                and prev_row is not None
                and prev_row["deals"] >= min_deals
            )
            headlines.decide(
                slice_facts,
                period=period,
                scope_label=scope_label,
                testable=testable,
                k=k,
                partial=partial,
            )
            facts.extend(slice_facts)
    return facts


def _keys(dimension: str, current: dict, before: dict) -> list[str]:
    if dimension in SHARE_DIMENSIONS:
        return sorted(set(current) | set(before))
    return sorted(current)


def _base(dimension, source, cell, slice_row, slice_cells) -> int:
    """The denominator of a row's rate in one period."""
    if dimension in SHARE_DIMENSIONS and dimension != Dimension.OBJECTION:
        outcome = cell["outcome"]
        if source == Source.ALL:
            return slice_row[outcome]
        # Split by source: the share among deals whose main reason came from that source.
        return sum(c["deals"] for c in slice_cells.values() if c["outcome"] == outcome)
    if dimension == Dimension.OBJECTION:
        return slice_row["deals"]
    return cell["deals"] if cell else 0


def _prev_base(dimension, source, cell, prev_cell, prev_row, before) -> int | None:
    if prev_row is None:
        return None
    if dimension in SHARE_DIMENSIONS:
        return _base(dimension, source, prev_cell or cell, prev_row, before)
    return prev_cell["deals"] if prev_cell else None


def _rate(x: int, n: int | None) -> float | None:
    return x / n if n else None


def _summary_fact(kind, period, scope_kind, scope, row, prev_row, scope_label) -> InsightFact:
    fact = InsightFact(
        period_kind=kind,
        period_start=period.start,
        scope_kind=scope_kind,
        scope_key=scope,
        dimension=Dimension.SUMMARY,
        source=Source.ALL,
        key="",
        label=scope_label or "Organisation",
        deals=row["deals"],
        won=row["won"],
        lost=row["lost"],
        no_decision=row["no_decision"],
        base=row["deals"],
        rate=_rate(row["won"], row["deals"]),
        share=1.0,
        win_rate=_rate(row["won"], row["deals"]),
        amount_won=_cents(row["amount_won"] or 0),
        amount_lost=_cents(row["amount_lost"] or 0),
        avg_cycle_days=_days(_mean_cycle(row["cycle_days"], row["cycles"]))
        if row["cycles"]
        else None,
        imported=row["imported"],
        amount_won_exact=row["amount_won"] if row["won"] else None,
        amount_lost_exact=row["amount_lost"] if row["lost"] else None,
        cycle_days_total=row["cycle_days"],
        cycles=row["cycles"],
    )
    fact.x, fact.prev_x = row["won"], prev_row["won"] if prev_row else None
    if prev_row:
        fact.prev_deals, fact.prev_base = prev_row["deals"], prev_row["deals"]
        fact.prev_rate = _rate(prev_row["won"], prev_row["deals"])
    _change(fact)
    return fact


def _dimension_fact(
    dimension, source, key, cell, prev_cell, base, prev_base, slice_deals
) -> InsightFact | None:
    label = (cell or prev_cell)["label"]
    counts = cell or {"deals": 0, "won": 0, "lost": 0, "no_decision": 0}
    share_kind = dimension in SHARE_DIMENSIONS
    if not (counts["deals"] if not share_kind else base):
        return None
    fact = InsightFact(
        dimension=dimension,
        source=source,
        key=key,
        label=label,
        outcome=(cell or prev_cell)["outcome"] or "",
        deals=counts["deals"],
        won=counts["won"],
        lost=counts["lost"],
        no_decision=counts["no_decision"],
        base=base,
        share=_rate(counts["deals"], base if share_kind else slice_deals),
        win_rate=(
            None
            if dimension != Dimension.OBJECTION and share_kind
            else _rate(counts["won"], counts["deals"])
        ),
        amount_won=_cents(counts.get("amount_won")),
        amount_lost=_cents(counts.get("amount_lost")),
        amount_won_exact=counts.get("amount_won"),
        amount_lost_exact=counts.get("amount_lost"),
    )
    # The tested proportion: how often (share) for reasons and objections, how well (win
    # rate) for competitors and segments.
    fact.x = counts["deals"] if share_kind else counts["won"]
    fact.rate = _rate(fact.x, base)
    if prev_base is not None:
        prev = prev_cell or {"deals": 0, "won": 0}
        fact.prev_deals, fact.prev_base = prev["deals"], prev_base
        fact.prev_x = prev["deals"] if share_kind else prev["won"]
        fact.prev_rate = _rate(fact.prev_x, prev_base)
    else:
        fact.prev_x = None
    return fact


def _change(fact: InsightFact) -> None:
    """Change against the previous period (tests and headlines: insights.headlines)."""
    fact.change = None
    if fact.rate is not None and fact.prev_rate is not None:
        fact.change = fact.rate - fact.prev_rate
