"""
The perception gap: on deals where both the rep and the buyer named a main reason, how often
the two agree, and what buyers said where the rep's read was something else.

The rollup stores the grouped pairs per period (month and quarter) and scope (GapCount: the
full rebuild for every period, the refresh for the periods it touches), so the dashboard reads
stored rows (one query for the period and the one before it, one for the reasons' labels), for
the organisation, a team or a product line: never per person, except a person's own
calibration (`calibration`, for the private page and request.user only, read live). Until the
counts were stored once (just after an upgrade, before the first rollup), the dashboard reads
the pairs live from the answers instead, with their labels, in the same two queries.
Agreement rates carry their 95% interval; a change against the previous period is tested, the
tests of one gap report are one family under the Benjamini-Hochberg procedure, and a change
must also pass the practical floor, exactly as the report's other headlines.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import BooleanField, Case, Count, F, Q, Value, When
from django.db.models.functions import Coalesce, TruncMonth

from accounts.models import User
from insights import headlines, stats
from insights.facts import SCOPE_FIELDS, _merged
from insights.models import GapCount, PeriodKind, ScopeKind
from insights.periods import Period
from reflections.models import Outcome, QuestionKind, Reason, ReasonSource, Reflection
from surveys.models import SurveyQuestionKind, SurveyRequest, SurveyStatus

GAP_SCOPES = {ScopeKind.ORG, ScopeKind.TEAM, ScopeKind.PRODUCT_LINE}
OUTCOME_NOUNS = {
    Outcome.WON: "won deals",
    Outcome.LOST: "lost deals",
    Outcome.NO_DECISION: "deals that ended without a decision",
}
SOURCE_LABELS = {
    ReasonSource.CUSTOMER: "Where the rep wrote “the customer said so”",
    ReasonSource.REP: "Where the rep gave their own read",
}
BUYER_REASONS_SHOWN = 3
PERIOD_KINDS = [PeriodKind.QUARTER, PeriodKind.MONTH]
GAP_FIELDS = ["outcome", "rep_key", "rep_source", "buyer_key"]
STORED_CELL = ["period_kind", "period_start", "scope_kind", "scope_key", *GAP_FIELDS]
# The row that says the counts were stored once (by a rebuild, or the first refresh after an
# upgrade): outside every period and scope, so no read counts it and no refresh rewrites it.
STORED_MARK = {
    "period_kind": "",
    "period_start": datetime.date(1970, 1, 1),
    "scope_kind": "",
    "scope_key": "",
    "outcome": "",
    "rep_key": 0,
    "rep_source": "",
    "buyer_key": 0,
}


@dataclass
class Agreement:
    """One agreement rate this period and the one before, with its test."""

    label: str
    noun: str
    pairs: int = 0
    agreed: int = 0
    prev_pairs: int = 0
    prev_agreed: int = 0
    low: float | None = None
    high: float | None = None
    prev_low: float | None = None
    prev_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    test: str = ""
    significant: bool = False
    headline: str = ""
    visible: bool = True

    @property
    def rate(self) -> float | None:
        return self.agreed / self.pairs if self.pairs else None

    @property
    def prev_rate(self) -> float | None:
        return self.prev_agreed / self.prev_pairs if self.prev_pairs else None

    @property
    def change(self) -> float | None:
        if self.rate is None or self.prev_rate is None:
            return None
        return self.rate - self.prev_rate


@dataclass
class BuyerSaid:
    label: str
    pairs: int
    share: float


@dataclass
class ReadRow:
    """One rep's-read reason and what buyers said on those deals."""

    label: str
    pairs: int
    agreed: int
    buyers: list[BuyerSaid]

    @property
    def rate(self) -> float:
        return self.agreed / self.pairs


@dataclass
class OutcomeTable:
    outcome: str
    label: str
    rows: list[ReadRow] = field(default_factory=list)
    hidden: int = 0


@dataclass
class Gap(headlines.Rules):
    period: Period
    min_slice: int
    overall: Agreement
    by_outcome: list[Agreement] = field(default_factory=list)
    by_source: list[Agreement] = field(default_factory=list)
    tables: list[OutcomeTable] = field(default_factory=list)
    tested: int = 0

    @property
    def hidden(self) -> bool:
        return not self.overall.visible

    @property
    def rows(self) -> list[Agreement]:
        return [self.overall, *self.by_outcome, *self.by_source]

    @property
    def shifts(self) -> list[Agreement]:
        return [a for a in self.rows if a.significant]


def _pair_reflections(where: Q):
    """
    Current reflections in reports matching `where`, each joined once to its answered survey's
    main reason and to its rep's main reason (a prompt set has one main-reason question, so one
    row each), with both reasons keyed after merges.
    """
    return Reflection.objects.filter(
        where,
        current=True,
        in_reports=True,
        survey_request__status=SurveyStatus.ANSWERED,
        survey_request__answers__question__kind=SurveyQuestionKind.MAIN_REASON,
        survey_request__answers__reason__isnull=False,
        answers__question__kind=QuestionKind.PRIMARY_REASON,
        answers__reason__isnull=False,
    ).annotate(
        rep_key=Coalesce("answers__reason__merged_into_id", "answers__reason_id"),
        rep_source=F("answers__reason_source"),
        buyer_key=Coalesce(
            "survey_request__answers__reason__merged_into_id",
            "survey_request__answers__reason_id",
        ),
    )


def _pairs(
    *,
    start: datetime.date,
    end: datetime.date,
    split: datetime.date,
    where: Q,
    labels: dict[int, str] | None = None,
) -> list[tuple]:
    """
    (this period?, outcome, rep's reason, rep's source, buyer's reason, deals), grouped. Read
    from the reflections closed in [start, end) matching `where`: the cost follows the
    periods, not all history. Given a `labels` dict, the reasons' labels come with the rows
    and are put in it (no query of their own).
    """
    rows = (
        _pair_reflections(where)
        .filter(closed_date__gte=start, closed_date__lt=end)
        .annotate(
            now=Case(
                When(closed_date__gte=split, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
    )
    grouping = ["now", "outcome", "rep_key", "rep_source", "buyer_key"]
    if labels is not None:
        # A merged reason's label is the one it was merged into, as its key is.
        rows = rows.annotate(
            rep_label=Coalesce("answers__reason__merged_into__label", "answers__reason__label"),
            buyer_label=Coalesce(
                "survey_request__answers__reason__merged_into__label",
                "survey_request__answers__reason__label",
            ),
        )
        grouping += ["rep_label", "buyer_label"]
    rows = rows.values(*grouping).annotate(deals=Count("survey_request__answers__id")).order_by()
    out = []
    for r in rows:
        if labels is not None:
            labels[r["rep_key"]] = r["rep_label"]
            labels[r["buyer_key"]] = r["buyer_label"]
        out.append(
            (r["now"], r["outcome"], r["rep_key"], r["rep_source"], r["buyer_key"], r["deals"])
        )
    return out


# --- stored counts -----------------------------------------------------------------------------
Periods = dict[str, set[Period]]


def _windows(periods: Periods) -> list[tuple[datetime.date, datetime.date]]:
    """The periods' days as [start, end) windows, overlapping or touching ones as one."""
    return _merged([(p.start, p.end) for ps in periods.values() for p in ps])


def counts(periods: Periods | None = None) -> list[GapCount]:
    """
    Unsaved GapCount rows of these periods (kind -> periods; None: every period with pairs,
    and the mark that says they were stored), for the organisation, every team and every
    product line. One query, grouped by month, team and product line in the database; months,
    quarters and scopes are added up here, so a refresh costs one query whatever it touches.
    """
    pairs = _pair_reflections(Q())
    if periods is not None:
        windows = _windows(periods)
        if not windows:
            return []
        match = Q(pk__in=[])
        for start, end in windows:
            match |= Q(closed_date__gte=start, closed_date__lt=end)
        pairs = pairs.filter(match)
    grouped = (
        pairs.annotate(
            month=TruncMonth("closed_date"),
            team=F(SCOPE_FIELDS[ScopeKind.TEAM]),
            line=F(SCOPE_FIELDS[ScopeKind.PRODUCT_LINE]),
        )
        .values("month", "team", "line", *GAP_FIELDS)
        .annotate(deals=Count("survey_request__answers__id"))
        .order_by()
    )
    cells: dict[tuple, int] = defaultdict(int)
    for row in grouped:
        pair = tuple(row[f] for f in GAP_FIELDS)
        scopes = [(ScopeKind.ORG.value, "")]
        if row["team"] is not None:
            scopes.append((ScopeKind.TEAM.value, str(row["team"])))
        if row["line"] is not None:
            scopes.append((ScopeKind.PRODUCT_LINE.value, str(row["line"])))
        for kind in PERIOD_KINDS:
            period = Period.containing(kind, row["month"])
            if periods is not None and period not in periods.get(kind, ()):
                continue
            for scope in scopes:
                cells[(kind.value, period.start, *scope, *pair)] += row["deals"]
    rows = [
        GapCount(**dict(zip(STORED_CELL, cell, strict=True)), deals=deals)
        for cell, deals in cells.items()
    ]
    if periods is None:
        rows.append(GapCount(**STORED_MARK))
    return rows


def _mark() -> Q:
    # By the leading column of both indexes, so that finding it is an index lookup.
    return Q(period_kind=STORED_MARK["period_kind"])


def stored_once() -> bool:
    return GapCount.objects.filter(_mark()).exists()


def count_region(periods: Periods | None = None):
    """The stored rows `counts(periods)` replaces."""
    if periods is None:
        return GapCount.objects.all()
    match = Q(pk__in=[])
    for kind, ps in periods.items():
        if ps:
            match |= Q(period_kind=kind, period_start__in=sorted(p.start for p in ps))
    return GapCount.objects.filter(match)


def any_answered(reflection_ids: list[int]) -> bool:
    """Whether any of these reflections has an answered survey (only those make pairs)."""
    return (
        bool(reflection_ids)
        and SurveyRequest.objects.filter(
            reflection_id__in=reflection_ids, status=SurveyStatus.ANSWERED
        ).exists()
    )


def _stored_pairs(*, period: Period, scope_kind: str, scope_key: str) -> list[tuple] | None:
    """
    The pairs of a period and the one before it as `_pairs` gives them, from the stored
    counts; None when they were never stored (then they must be read live). One query: the
    scope's rows, and the mark that tells "none in this slice" from "never stored".
    """
    mine = Q(
        period_kind=period.kind,
        scope_kind=scope_kind,
        scope_key=scope_key,
        period_start__in=[period.previous().start, period.start],
    )
    rows = list(
        GapCount.objects.filter(mine | _mark())
        .annotate(
            mine=Case(When(mine, then=Value(True)), default=Value(False)),
            now=Case(
                When(period_start=period.start, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
        )
        .values_list("mine", "now", *GAP_FIELDS, "deals")
        .order_by()
    )
    if not rows:
        return None
    return [tuple(row[1:]) for row in rows if row[0]]


def _add(agreement: Agreement, now: bool, agreed: bool, deals: int) -> None:
    if now:
        agreement.pairs += deals
        agreement.agreed += deals if agreed else 0
    else:
        agreement.prev_pairs += deals
        agreement.prev_agreed += deals if agreed else 0


def perception_gap(
    *,
    period: Period,
    scope_kind: str,
    scope_key: str = "",
    scope_label: str = "",
    today: datetime.date,
    min_slice: int | None = None,
) -> Gap | None:
    """The gap report of one period and scope (None for a scope it is not made for)."""
    if scope_kind not in GAP_SCOPES:
        return None
    k = settings.DEBRIEF_INSIGHT_MIN_SLICE if min_slice is None else min_slice
    if scope_kind == ScopeKind.ORG:
        scope_key = ""
    rows = _stored_pairs(period=period, scope_kind=scope_kind, scope_key=scope_key)
    labels = None
    if rows is None:  # never stored: read live, the labels with the pairs
        where = Q()
        if (scope_field := SCOPE_FIELDS[scope_kind]) is not None:
            where &= Q(**{scope_field: scope_key})
        labels = {}
        rows = _pairs(
            start=period.previous().start,
            end=period.end,
            split=period.start,
            where=where,
            labels=labels,
        )

    noun = "deals where both answered"
    gap = Gap(period=period, min_slice=k, overall=Agreement("All closed deals", noun))
    outcomes = {o: Agreement(Outcome(o).label, OUTCOME_NOUNS[o]) for o in Outcome.values}
    sources = {s: Agreement(label, "") for s, label in SOURCE_LABELS.items()}
    cross: dict[str, dict[int, dict[int, int]]] = {}
    for now, outcome, rep_key, rep_source, buyer_key, deals in rows:
        agreed = rep_key == buyer_key
        _add(gap.overall, now, agreed, deals)
        _add(outcomes[outcome], now, agreed, deals)
        if rep_source in sources:
            _add(sources[rep_source], now, agreed, deals)
        if now:
            by_read = cross.setdefault(outcome, {}).setdefault(rep_key, {})
            by_read[buyer_key] = by_read.get(buyer_key, 0) + deals
    gap.by_outcome = [a for a in outcomes.values() if a.pairs or a.prev_pairs]
    gap.by_source = [a for a in sources.values() if a.pairs or a.prev_pairs]
    everything = [gap.overall, *gap.by_outcome, *gap.by_source]
    for agreement in everything:
        agreement.visible = agreement.pairs >= k
    _intervals(everything)
    _decide(gap, everything, k=k, today=today, scope_label=scope_label)
    gap.tables = _tables(cross, k, labels) if gap.overall.visible else []
    return gap


def _intervals(agreements: list[Agreement]) -> None:
    now = stats.intervals([a.agreed for a in agreements], [a.pairs for a in agreements])
    before = stats.intervals(
        [a.prev_agreed for a in agreements], [a.prev_pairs for a in agreements]
    )
    for agreement, (low, high), (prev_low, prev_high) in zip(agreements, now, before, strict=True):
        agreement.low, agreement.high = headlines.finite(low), headlines.finite(high)
        agreement.prev_low = headlines.finite(prev_low)
        agreement.prev_high = headlines.finite(prev_high)


def _decide(
    gap: Gap, agreements: list[Agreement], *, k: int, today: datetime.date, scope_label: str
) -> None:
    """Test the changes of one gap report as one family; headline what survives and matters."""
    if headlines.too_young(gap.period, today):
        return
    least = max(k, settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS)
    tested = [a for a in agreements if a.pairs >= least and a.prev_pairs >= least]
    gap.tested = len(tested)
    if not tested:
        return
    results = stats.compare([(a.prev_agreed, a.prev_pairs, a.agreed, a.pairs) for a in tested])
    q_values = stats.adjust([p for p, _ in results])
    for agreement, (p, test), q in zip(tested, results, q_values, strict=True):
        agreement.p_value, agreement.test, agreement.q_value = p, test, q
        agreement.significant = q <= settings.DEBRIEF_INSIGHT_FDR and headlines.large_enough(
            agreement.change
        )
        if agreement.significant:
            agreement.headline = _sentence(agreement, gap.period, scope_label)


def _sentence(agreement: Agreement, period: Period, scope_label: str) -> str:
    where = f" in {scope_label}" if scope_label else ""
    if agreement.noun:
        whose = f"{agreement.noun}{where}"
    else:
        whose = f"deals{where}, {agreement.label[0].lower()}{agreement.label[1:]}"
    direction = "up" if agreement.change > 0 else "down"
    return (
        f"The rep's main reason matched the buyer's in {headlines.percent(agreement.rate)} of "
        f"{whose} in {period.label} ({agreement.agreed} of {agreement.pairs}), {direction} from "
        f"{headlines.percent(agreement.prev_rate)} ({agreement.prev_agreed} of "
        f"{agreement.prev_pairs}) in {period.previous().label}. "
        f"{headlines.chance(agreement.p_value)}"
    )


def _tables(
    cross: dict[str, dict[int, dict[int, int]]], k: int, labels: dict[int, str] | None = None
) -> list[OutcomeTable]:
    """
    Rep's read -> what buyers said, per outcome; a read with fewer than K deals is hidden. The
    reasons' labels are read here unless given.
    """
    if labels is None:
        keys = {key for by_read in cross.values() for said in by_read.values() for key in said}
        keys |= {read for by_read in cross.values() for read in by_read}
        labels = dict(Reason.objects.filter(pk__in=keys).values_list("pk", "label"))
    tables = []
    for outcome in Outcome.values:
        by_read = cross.get(outcome)
        if not by_read:
            continue
        table = OutcomeTable(outcome, Outcome(outcome).label)
        for read, said in sorted(by_read.items(), key=lambda item: -sum(item[1].values())):
            pairs = sum(said.values())
            if pairs < k:
                table.hidden += 1
                continue
            buyers = [
                BuyerSaid(labels.get(key, "Retired reason"), n, n / pairs)
                for key, n in sorted(said.items(), key=lambda item: (-item[1], item[0]))
            ][:BUYER_REASONS_SHOWN]
            table.rows.append(
                ReadRow(labels.get(read, "Retired reason"), pairs, said.get(read, 0), buyers)
            )
        tables.append(table)
    return tables


@dataclass
class Calibration:
    """How often one person's main reasons matched their buyers', next to everyone's."""

    since: datetime.date
    rows: list[tuple[Agreement, Agreement]] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return self.rows[0][0].pairs if self.rows else 0


CALIBRATION_DAYS = 365


def calibration(owner: User, *, today: datetime.date) -> Calibration:
    """
    For the private page only (the caller passes request.user): over the last year of closes,
    how often `owner`'s "the customer said so" and "my own read" named the buyer's own main
    reason, next to the same rates for the whole organisation. Two queries.
    """
    since = today - datetime.timedelta(days=CALIBRATION_DAYS)
    end = today + datetime.timedelta(days=1)
    mine_rows = _pairs(start=since, end=end, split=since, where=Q(opportunity__owner=owner))
    org_rows = _pairs(start=since, end=end, split=since, where=Q())
    result = Calibration(since=since)
    labels = [
        ("All my closes", None),
        ("When I wrote “the customer said so”", ReasonSource.CUSTOMER),
        ("When I gave my own read", ReasonSource.REP),
    ]
    tallies = []
    for rows in (mine_rows, org_rows):
        by_source = {source: Agreement(label, "") for label, source in labels}
        for _, _, rep_key, rep_source, buyer_key, deals in rows:
            for source in (None, rep_source):
                if source in by_source:
                    _add(by_source[source], True, rep_key == buyer_key, deals)
        tallies.append(by_source)
    rows = [(tallies[0][source], tallies[1][source]) for _, source in labels]
    _intervals([a for pair in rows for a in pair])
    result.rows = rows
    return result
