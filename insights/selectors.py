"""
Reads behind the insight dashboards, always scoped to the user:

- everyone sees the organisation, every product line and every customer segment, and their
  own results ("My results", computed live from their own deals and never stored);
- reps see their own team, managers the teams they manage, admins every team;
- beyond a user's own results, a slice or row with fewer than the minimum reflections shows
  "not enough data".

A dashboard is a fixed number of queries whatever the data size: the scopes, the periods,
one read of the slice's facts, one of the trend, one of the quoted answers, the runs.
"""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.db.models import BigIntegerField, CharField, F, QuerySet, Value, Window
from django.db.models.functions import Coalesce, Concat, RowNumber
from django.http import Http404
from django.utils import timezone

from accounts import access
from accounts.models import Role, User
from customers.models import Segment
from insights import facts as fact_rules
from insights import gap as gap_rules
from insights import headlines, stats
from insights.models import (
    Dimension,
    InsightFact,
    InsightRun,
    RunStatus,
    ScopeKind,
    Source,
    Test,
)
from insights.periods import Period
from opportunities.models import ProductLine
from reflections.models import (
    Answer,
    CallDebrief,
    Origin,
    Outcome,
    QuestionKind,
    Reason,
    Reflection,
)
from reflections.selectors import objections_heard, won_answers

MINE = "mine"
TREND_PERIODS = 8
QUOTED_REASONS = 3
QUOTES_PER_REASON = 3
CHART_ROWS = 8


@dataclass(frozen=True)
class Scope:
    kind: str  # a ScopeKind, or MINE
    key: str
    label: str

    @property
    def value(self) -> str:
        """How the picker names it: org, mine, team:3, product_line:2, segment:retail."""
        return self.kind if self.kind in (ScopeKind.ORG, MINE) else f"{self.kind}:{self.key}"

    @property
    def is_mine(self) -> bool:
        return self.kind == MINE


ORG = Scope(ScopeKind.ORG, "", "Whole organisation")


def scope_options(user: User) -> list[tuple[str, list[Scope]]]:
    """The scopes the user may pick, grouped for the picker (two queries)."""
    teams = [
        Scope(ScopeKind.TEAM, str(t.pk), t.name)
        for t in access.teams_visible_to(user).only("pk", "name").order_by("name")
    ]
    lines = [
        Scope(ScopeKind.PRODUCT_LINE, str(line.pk), line.name)
        for line in ProductLine.objects.only("pk", "name").order_by("name")
    ]
    segments = [Scope(ScopeKind.SEGMENT, code, label) for code, label in Segment.choices]
    groups = [("Overview", [ORG, Scope(MINE, "", "My results")])]
    if teams:
        groups.append(("My team" if user.role == Role.REP else "Teams", teams))
    groups += [("Product lines", lines), ("Customer segments", segments)]
    return groups


def scope_for(user: User, value: str, options: list[tuple[str, list[Scope]]]) -> Scope:
    """The scope a picker value names, or 404: another team's report looks like a missing one."""
    value = (value or ScopeKind.ORG).strip()
    for _, scopes in options:
        for scope in scopes:
            if scope.value == value:
                return scope
    raise Http404("No such report")


def available_periods(kind: str, today: datetime.date | None = None) -> list[Period]:
    """Periods with facts, newest first, always including the current one."""
    current = Period.containing(kind, today or timezone.localdate())
    starts = set(
        InsightFact.objects.filter(
            period_kind=kind, scope_kind=ScopeKind.ORG, dimension=Dimension.SUMMARY
        ).values_list("period_start", flat=True)
    )
    starts.add(current.start)
    return sorted((Period(kind, s) for s in starts), reverse=True)


# --- the report --------------------------------------------------------------------------------
TABLES = [
    (Dimension.PRIMARY_REASON_LOST, "Why we lost", "Main reason"),
    (Dimension.PRIMARY_REASON_WON, "Why we won", "Main reason"),
    (Dimension.PRIMARY_REASON_NO_DECISION, "Why deals ended without a decision", "Main reason"),
    (Dimension.CONTRIBUTING_REASON, "What else played a part", "Reason"),
    (Dimension.COMPETITOR, "Competitors: our win rate against each", "Competitor"),
    (Dimension.OBJECTION, "Objections heard", "Objection"),
    (Dimension.SEGMENT, "Customer segments", "Segment"),
]
PRIMARY = headlines.PRIMARY
WIN_RATE_TABLES = {Dimension.COMPETITOR, Dimension.SEGMENT}


@dataclass
class Table:
    dimension: str
    title: str
    column: str
    rows: list[InsightFact] = field(default_factory=list)
    hidden: int = 0
    chart: dict | None = None

    @property
    def slug(self) -> str:
        return self.dimension.replace("_", "-")

    @property
    def chart_id(self) -> str:
        return f"chart-{self.slug}"

    @property
    def by_win_rate(self) -> bool:
        return self.dimension in WIN_RATE_TABLES

    @property
    def is_primary(self) -> bool:
        return self.dimension in PRIMARY

    @property
    def not_enough(self) -> bool:
        return self.hidden > 0 and not self.rows


@dataclass
class TrendPoint:
    period: Period
    fact: InsightFact | None
    visible: bool


@dataclass
class Report(headlines.Rules):
    kind: str
    period: Period
    scope: Scope
    source: str
    min_slice: int
    summary: InsightFact | None = None
    hidden: bool = False
    tables: list[Table] = field(default_factory=list)
    trend: list[TrendPoint] = field(default_factory=list)
    trend_chart: dict | None = None
    shifts: list[InsightFact] = field(default_factory=list)
    quotes: list[dict] = field(default_factory=list)
    today: datetime.date | None = None
    tested: int = 0
    tests_used: set[str] = field(default_factory=set)
    gap: gap_rules.Gap | None = None

    @property
    def previous(self) -> Period:
        return self.period.previous()

    @property
    def running(self) -> bool:
        return self.period.start <= self.today < self.period.end

    @property
    def days_in(self) -> int:
        return (self.today - self.period.start).days + 1

    @property
    def days_long(self) -> int:
        return (self.period.end - self.period.start).days

    @property
    def too_young(self) -> bool:
        return headlines.too_young(self.period, self.today)

    @property
    def headline_from(self) -> datetime.date | None:
        return headlines.headline_from(self.period, self.today)

    @property
    def tests_text(self) -> str:
        """Which tests this report used, in words for its help text."""
        if self.tests_used == {Test.FISHER, Test.Z}:
            return "Fisher's exact test where counts are small, the two-proportion z-test otherwise"
        if self.tests_used:
            return Test(next(iter(self.tests_used))).label
        return ""

    def table(self, dimension: str) -> Table | None:
        return next((t for t in self.tables if t.dimension == dimension), None)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _slice_facts(kind: str, period: Period, scope: Scope, user: User) -> tuple[list, list]:
    """The slice's facts and the summary facts of the trend periods."""
    trend_periods = [period.shift(-i) for i in range(TREND_PERIODS - 1, -1, -1)]
    if scope.is_mine:
        computed = fact_rules.compute_facts(
            kind=kind, periods=trend_periods, scope_kind=ScopeKind.ORG, owner=user
        )
        current = [f for f in computed if f.period_start == period.start]
        trend = [f for f in computed if f.dimension == Dimension.SUMMARY]
        return current, trend
    region = InsightFact.objects.filter(
        period_kind=kind, scope_kind=scope.kind, scope_key=scope.key
    )
    current = list(region.filter(period_start=period.start))
    trend = list(
        region.filter(
            dimension=Dimension.SUMMARY, period_start__in=[p.start for p in trend_periods]
        )
    )
    return current, trend


def report_for(
    user: User, *, kind: str, period: Period, scope: Scope, source: str, with_gap: bool = False
) -> Report:
    """
    Everything one dashboard shows, with small slices and rows hidden (not for "mine"); with
    `with_gap`, also the perception gap (organisation, team and product line only).
    """
    k = settings.DEBRIEF_INSIGHT_MIN_SLICE
    exempt = scope.is_mine
    report = Report(
        kind=kind,
        period=period,
        scope=scope,
        source=source,
        min_slice=k,
        today=timezone.localdate(),
    )
    current, trend = _slice_facts(kind, period, scope, user)

    def visible(fact: InsightFact | None) -> bool:
        return fact is not None and (exempt or fact.base >= k)

    by_period = {f.period_start: f for f in trend}
    for i in range(TREND_PERIODS - 1, -1, -1):
        point_period = period.shift(-i)
        fact = by_period.get(point_period.start)
        if fact is None and not report.trend:
            continue  # the trend starts at the first period with data
        report.trend.append(TrendPoint(point_period, fact, visible(fact)))
    shown = [p if p.visible else None for p in report.trend]
    report.trend_chart = {
        "kind": "line",
        "percent": True,
        "labels": [p.period.short_label for p in report.trend],
        "datasets": [
            {
                "label": "Win rate",
                "data": [_percent(p.fact.win_rate) if p else None for p in shown],
                "low": [_percent(p.fact.rate_low) if p else None for p in shown],
                "high": [_percent(p.fact.rate_high) if p else None for p in shown],
            }
        ],
    }

    report.summary = next((f for f in current if f.dimension == Dimension.SUMMARY), None)
    if not visible(report.summary):
        report.hidden = True
        return report

    split = {
        (f.dimension, f.key, f.source): f.deals
        for f in current
        if f.dimension in PRIMARY and f.source != Source.ALL
    }
    buyers = {
        (f.dimension, f.key): f.deals
        for f in current
        if f.dimension in PRIMARY and f.source == Source.BUYER
    }
    buyer_bases = {
        f.dimension: f.base for f in current if f.dimension in PRIMARY and f.source == Source.BUYER
    }
    view = headlines.family(current, source)
    labels = {f"{f.dimension}:{f.key}": f.label for f in view}
    report.tested = sum(1 for f in view if f.p_value is not None)
    report.tests_used = {f.test for f in view if f.test}
    report.summary.echo_label = labels.get(report.summary.echo_of, "")
    for dimension, title, column in TABLES:
        if dimension == Dimension.SEGMENT and scope.kind == ScopeKind.SEGMENT:
            continue
        wanted = source if dimension in PRIMARY else Source.ALL
        rows = [f for f in current if f.dimension == dimension and f.source == wanted]
        table = Table(dimension, title, column)
        for fact in sorted(rows, key=lambda f: (-f.deals, f.label)):
            if not visible(fact):
                table.hidden += 1
                continue
            fact.customer_deals = split.get((dimension, fact.key, Source.CUSTOMER), 0)
            fact.rep_deals = split.get((dimension, fact.key, Source.REP), 0)
            # What buyers named, among the deals whose buyer answered: shown only where enough
            # of them did (K, as everywhere).
            fact.buyer_base = buyer_bases.get(dimension, 0)
            fact.buyer_deals = buyers.get((dimension, fact.key), 0)
            fact.buyer_shown = exempt or fact.buyer_base >= k
            fact.is_shift = fact.significant and (exempt or (fact.prev_base or 0) >= k)
            fact.echo_label = labels.get(fact.echo_of, "")
            fact.test_label = Test(fact.test).label if fact.test else ""
            table.rows.append(fact)
        if table.rows or table.hidden:
            table.chart = _table_chart(table, report)
        report.tables.append(table)

    report.shifts = sorted(
        [f for t in report.tables for f in t.rows if f.is_shift]
        + ([report.summary] if report.summary.significant else []),
        key=lambda f: f.p_value,
    )
    report.quotes = _quotes(user, report)
    if with_gap and not exempt:
        report.gap = gap_rules.perception_gap(
            period=period,
            scope_kind=scope.kind,
            scope_key=scope.key,
            scope_label="" if scope.kind == ScopeKind.ORG else scope.label,
            today=report.today,
        )
    return report


def _table_chart(table: Table, report: Report) -> dict | None:
    rows = [f for f in table.rows if f.deals][:CHART_ROWS]
    if not rows:
        return None
    return {
        "kind": "bar",
        "percent": True,
        "labels": [f.label for f in rows],
        "datasets": [
            {
                "label": report.period.short_label,
                "data": [_percent(f.rate) for f in rows],
                "low": [_percent(f.rate_low) for f in rows],
                "high": [_percent(f.rate_high) for f in rows],
            },
            {
                "label": report.previous.short_label,
                "data": [_percent(f.prev_rate) for f in rows],
                "low": [_percent(f.prev_low) for f in rows],
                "high": [_percent(f.prev_high) for f in rows],
            },
        ],
    }


def _quotes(user: User, report: Report) -> list[dict]:
    """
    The latest three free-text answers for each of the top reasons we won and lost, from
    reflections in this slice; one query. No names: a quote is what was learned, not who said
    it. Never from imported history: no rep wrote those (and they carry no free text).
    """
    wanted = []
    for dimension in (Dimension.PRIMARY_REASON_LOST, Dimension.PRIMARY_REASON_WON):
        table = report.table(dimension)
        rows = [f for f in table.rows if f.deals and f.key != fact_rules.UNKNOWN_KEY]
        wanted += rows[:QUOTED_REASONS]
    if not wanted:
        return []
    answers = Answer.objects.filter(
        question__kind=QuestionKind.SHORT_TEXT,
        reflection__current=True,
        reflection__origin=Origin.ANSWERED,
        reflection__closed_date__gte=report.period.start,
        reflection__closed_date__lt=report.period.end,
    ).exclude(text="")
    if report.scope.is_mine:
        answers = answers.filter(reflection__opportunity__owner=user)
    elif report.scope.kind != ScopeKind.ORG:
        field_name = fact_rules.SCOPE_FIELDS[report.scope.kind]
        answers = answers.filter(**{f"reflection__{field_name}": report.scope.key})
    keys = [int(f.key) for f in wanted]
    walk = connections[answers.db].features.supports_slicing_ordering_in_compound
    if walk and report.scope.kind == ScopeKind.ORG:
        rows = _latest_per_reason(answers, keys)
    else:
        rows = _ranked_per_reason(answers, keys)
    texts: dict[str, list[dict]] = {}
    for rkey, text, closed, _, _ in sorted(rows, key=lambda row: (row[3], row[4])):
        texts.setdefault(str(rkey), []).append({"text": text, "closed": closed})
    return [
        {"fact": f, "outcome": Outcome(f.outcome).label, "answers": texts[f.key]}
        for f in wanted
        if f.key in texts
    ]


QUOTE_COLUMNS = ("rkey", "text", "reflection__closed_date", "question__order", "id")


def _latest_per_reason(answers: QuerySet[Answer], keys: list[int]) -> list[tuple]:
    """
    The organisation's slice on PostgreSQL: one LIMITed branch per reason, UNION ALL. Each
    branch walks the current reflections newest first (`reflection_submitted_idx`) and stops
    at its third answer, where ranking every answer of the quarter read all of them (0.14 s on
    the large set; now about 20 ms, most of it planning six branches). A team's or a line's
    branch would join the deal for every step, so narrower slices are ranked in one pass.
    """
    branches = [
        answers.filter(
            # One filter() call, so both conditions apply to the same (primary-reason) answer.
            reflection__answers__question__kind=QuestionKind.PRIMARY_REASON,
            reflection__answers__reason__in=Reason.objects.annotate(
                key=Coalesce("merged_into_id", "id")
            )
            .filter(key=key)
            .values("pk"),
        )
        .annotate(rkey=Value(key, output_field=BigIntegerField()))
        .order_by("-reflection__submitted_at", "-id")
        .values_list(*QUOTE_COLUMNS)[:QUOTES_PER_REASON]
        for key in keys
    ]
    return list(branches[0].union(*branches[1:], all=True))


def _ranked_per_reason(answers: QuerySet[Answer], keys: list[int]) -> list[tuple]:
    """
    Slices narrower than the organisation, and databases without LIMIT inside UNION
    (SQLite): each free-text answer joined to its reflection's primary-reason answer (a
    prompt set has one primary-reason question, so one row each), ranked per reason by a
    window function.
    """
    answers = (
        answers.filter(reflection__answers__question__kind=QuestionKind.PRIMARY_REASON)
        .annotate(
            rkey=Coalesce(
                "reflection__answers__reason__merged_into_id", "reflection__answers__reason_id"
            )
        )
        .filter(rkey__in=keys)
    )
    return list(
        answers.annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("rkey")],
                order_by=[F("reflection__submitted_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=QUOTES_PER_REASON)
        .values_list(*QUOTE_COLUMNS)
    )


# --- runs --------------------------------------------------------------------------------------
def runs_visible_to(user: User) -> QuerySet[InsightRun]:
    """
    Everyone follows every run: a run recomputes the organisation's reports and carries no
    one's data, and pressing "refresh" during someone else's run joins that run.
    """
    return InsightRun.objects.all()


def run_for(user: User, run_id: int) -> InsightRun:
    return access.get_or_404(runs_visible_to(user), pk=run_id)


def dashboard_runs(user: User) -> dict:
    """The run to show on the dashboard (active, or failed last) and when figures were built."""
    newest = runs_visible_to(user).order_by("-created_at", "-id").first()
    succeeded = (
        InsightRun.objects.filter(status=RunStatus.SUCCEEDED)
        .only("finished_at")
        .order_by("-finished_at", "-id")
        .first()
    )
    show = newest if newest and newest.status != RunStatus.SUCCEEDED else None
    return {"run": show, "built_at": succeeded.finished_at if succeeded else None}


# --- My reflections: a rep's private mirror ----------------------------------------------------
# Everything below reads only the user it is given, which the view takes from
# accounts.access.private_subject (the signed-in user): no user id ever comes from a request.
LESSONS_PER_PAGE = 20
MY_OBJECTIONS = 5
MIRRORED = [
    (Dimension.PRIMARY_REASON_WON, "How you win", "wins"),
    (Dimension.PRIMARY_REASON_LOST, "How you lose", "losses"),
]


@dataclass
class MirrorRow:
    """One of the rep's figures next to the rest of the organisation's."""

    label: str
    x: int
    n: int
    rest_x: int
    rest_n: int
    low: float | None = None
    high: float | None = None
    rest_low: float | None = None
    rest_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    test: str = ""
    differs: bool = False
    noun: str = ""

    @property
    def rate(self) -> float | None:
        return self.x / self.n if self.n else None

    @property
    def rest_rate(self) -> float | None:
        return self.rest_x / self.rest_n if self.rest_n else None

    @property
    def difference(self) -> float | None:
        if self.rate is None or self.rest_rate is None:
            return None
        return self.rate - self.rest_rate

    @property
    def test_label(self) -> str:
        return Test(self.test).label if self.test else ""


@dataclass
class Mirror(headlines.Rules):
    kind: str
    period: Period
    periods: list[Period]
    today: datetime.date
    summary: InsightFact | None = None
    org: InsightFact | None = None
    win_rate: MirrorRow | None = None
    tables: list[tuple[str, str, list[MirrorRow]]] = field(default_factory=list)
    tested: int = 0

    @property
    def differences(self) -> list[MirrorRow]:
        rows = [self.win_rate] if self.win_rate else []
        rows += [row for _, _, table in self.tables for row in table]
        return [row for row in rows if row.differs]


def my_periods(user: User, kind: str, today: datetime.date) -> list[Period]:
    """Periods in which the user closed deals, newest first, always with the current one."""
    days = (
        Reflection.objects.filter(current=True, in_reports=True, opportunity__owner=user)
        .values_list("closed_date", flat=True)
        .distinct()
        .order_by()
    )
    starts = {Period.containing(kind, day).start for day in days}
    starts.add(Period.containing(kind, today).start)
    return sorted((Period(kind, s) for s in starts), reverse=True)


def my_mirror(user: User, *, kind: str, period: Period | None) -> Mirror:
    """
    The user's closed deals of one period next to the rest of the organisation: win rate,
    cycle time and main reasons won and lost, each with its 95% interval. The comparisons of
    the page are one family of tests with the insights' rules (stats and floor as in
    insights.headlines). Four queries.
    """
    today = timezone.localdate()
    periods = my_periods(user, kind, today)
    period = period or periods[0]
    mirror = Mirror(kind=kind, period=period, periods=periods, today=today)
    mine = fact_rules.compute_facts(
        kind=kind, periods=[period], scope_kind=ScopeKind.ORG, owner=user
    )
    mine = [f for f in mine if f.period_start == period.start and f.source == Source.ALL]
    org = list(
        InsightFact.objects.filter(
            period_kind=kind,
            period_start=period.start,
            scope_kind=ScopeKind.ORG,
            source=Source.ALL,
            dimension__in=[Dimension.SUMMARY, *(d for d, _, _ in MIRRORED)],
        )
    )
    mirror.summary = next((f for f in mine if f.dimension == Dimension.SUMMARY), None)
    mirror.org = next((f for f in org if f.dimension == Dimension.SUMMARY), None)
    if mirror.summary is None:
        return mirror
    rows: list[MirrorRow] = []
    mirror.win_rate = _mirror_row(
        "Win rate", mirror.summary.won, mirror.summary.deals, mirror.org, "won"
    )
    rows.append(mirror.win_rate)
    for dimension, title, noun in MIRRORED:
        my_rows = {f.key: f for f in mine if f.dimension == dimension}
        org_rows = {f.key: f for f in org if f.dimension == dimension}
        my_base = next((f.base for f in my_rows.values()), 0)
        org_base = next((f.base for f in org_rows.values()), 0)
        table = []
        for key in sorted(my_rows.keys() | org_rows.keys()):
            fact, whole = my_rows.get(key), org_rows.get(key)
            label = (fact or whole).label
            x = fact.deals if fact else 0
            whole_x = whole.deals if whole else 0
            row = MirrorRow(
                label=label,
                x=x,
                n=my_base,
                rest_x=max(whole_x - x, 0),
                rest_n=max(org_base - my_base, 0),
                noun=noun,
            )
            if row.n or row.x:
                table.append(row)
        table.sort(key=lambda r: (-r.x, -(r.rest_rate or 0), r.label))
        mirror.tables.append((title, noun, table))
        rows += table
    _mirror_tests(mirror, rows)
    return mirror


def _mirror_row(label, x, n, org_fact, field_name) -> MirrorRow:
    whole_x = getattr(org_fact, field_name) if org_fact else 0
    whole_n = org_fact.deals if org_fact else 0
    return MirrorRow(label=label, x=x, n=n, rest_x=max(whole_x - x, 0), rest_n=max(whole_n - n, 0))


def _mirror_tests(mirror: Mirror, rows: list[MirrorRow]) -> None:
    """Intervals for every row; tests, false-discovery control and floor for the testable."""
    least = settings.DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS
    mine = stats.intervals([r.x for r in rows], [r.n for r in rows])
    rest = stats.intervals([r.rest_x for r in rows], [r.rest_n for r in rows])
    for row, (low, high), (rest_low, rest_high) in zip(rows, mine, rest, strict=True):
        row.low, row.high = headlines.finite(low), headlines.finite(high)
        row.rest_low, row.rest_high = headlines.finite(rest_low), headlines.finite(rest_high)
    tested = [
        r
        for r in rows
        if r.n >= least and r.rest_n >= least and r.x <= r.n and r.rest_x <= r.rest_n
    ]
    mirror.tested = len(tested)
    results = stats.compare([(r.rest_x, r.rest_n, r.x, r.n) for r in tested])
    for row, (p, test) in zip(tested, results, strict=True):
        row.p_value, row.test = p, test
    for row, q in zip(tested, stats.adjust([r.p_value for r in tested]), strict=True):
        row.q_value = q
        row.differs = q <= settings.DEBRIEF_INSIGHT_FDR and headlines.large_enough(row.difference)


def my_lessons(user: User, *, search: str = "", line: int | None = None, outcome: str = ""):
    """
    What the user wrote down to learn from: their free-text closing answers and their call
    debrief notes, newest first, as one queryset of plain rows (a UNION of two queries).
    """
    answers = Answer.objects.filter(
        question__kind=QuestionKind.SHORT_TEXT,
        reflection__author=user,
        reflection__current=True,
        reflection__origin=Origin.ANSWERED,
    ).exclude(text="")
    debriefs = CallDebrief.objects.filter(author=user)
    if search:
        answers = answers.filter(text__icontains=search)
        debriefs = debriefs.filter(customer_said__icontains=search)
    if line:
        answers = answers.filter(reflection__opportunity__product__line_id=line)
        debriefs = debriefs.filter(opportunity__product__line_id=line)
    if outcome:
        answers = answers.filter(reflection__outcome=outcome)
        debriefs = debriefs.none()  # a call debrief has no outcome
    # The same columns, in the same order, on both sides of the UNION.
    columns = ["kind", "day", "what", "body", "deal", "deal_title", "firm", "company_name"]
    columns += ["outcome_value", "row_id"]
    text = CharField()
    answers = (
        answers.annotate(
            kind=Value("reflection", output_field=text),
            day=F("reflection__closed_date"),
            what=F("question__label"),
            body=F("text"),
            deal=F("reflection__opportunity_id"),
            deal_title=F("reflection__opportunity__title"),
            firm=F("reflection__opportunity__company_id"),
            company_name=F("reflection__opportunity__company__name"),
            outcome_value=F("reflection__outcome"),
            row_id=F("id"),
        )
        .values(*columns)
        .order_by()
    )
    debriefs = (
        debriefs.annotate(
            kind=Value("debrief", output_field=text),
            day=F("call_date"),
            what=Concat(Value("After a call with "), F("company__name"), output_field=text),
            body=F("customer_said"),
            deal=F("opportunity_id"),
            deal_title=F("opportunity__title"),
            firm=F("company_id"),
            company_name=F("company__name"),
            outcome_value=Value("", output_field=text),
            row_id=F("id"),
        )
        .values(*columns)
        .order_by()
    )
    return answers.union(debriefs, all=True).order_by("-day", "-row_id")


def my_objections(user: User, today: datetime.date | None = None) -> list[dict]:
    """
    The objections the user met most in the last twelve months (in their closed deals'
    reflections), each with what won deals across the organisation said about handling it
    (the objection playbook's answers). Two queries.
    """
    heard = objections_heard(
        today=today,
        limit=MY_OBJECTIONS,
        reflection__author=user,
        reflection__origin=Origin.ANSWERED,
    )
    answers = won_answers([row["objection_id"] for row in heard])
    return [
        {
            "label": row["objection__label"],
            "times": row["times"],
            "answers": answers.get(row["objection_id"], []),
        }
        for row in heard
    ]
