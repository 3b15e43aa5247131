"""
Report facts computed from current reflections with SQL GROUP BY, one query per dimension,
for many periods and every scope of a kind at once. Python only arranges the aggregated
groups: previous-period comparisons, the significance test and headlines.

What each dimension counts:

- summary: closed deals with a current reflection, outcomes, win rate (won / closed), amounts
  won and lost in the reporting currency, average cycle days (closing day minus the day the
  deal was created).
- primary reasons (won, lost and no decision apart): share of that outcome's deals whose main
  reason it is; also split by who gave the reason (customer said / rep's own read). A retired
  reason merged into another counts under the one it was merged into.
- contributing reasons: share of that outcome's deals where it played a part.
- competitors: deals against each (the deal's primary competitor) and our win rate there.
- objections: share of closed deals where it was heard, and the win rate when heard.
- segments: deals and win rate per customer segment (not within a segment scope).
"""

import datetime
from collections import defaultdict
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DateField,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, TruncDate

from accounts.models import User
from customers.models import Segment
from insights.models import Dimension, InsightFact, ScopeKind, Source
from insights.periods import Period
from insights.stats import two_proportion_z_test
from opportunities.models import Currency
from reflections.models import Answer, Outcome, QuestionKind, Reflection

SCOPE_FIELDS = {
    ScopeKind.ORG: None,
    ScopeKind.TEAM: "opportunity__owner__team_id",
    ScopeKind.PRODUCT_LINE: "opportunity__product__line_id",
    ScopeKind.SEGMENT: "opportunity__company__segment",
}
SCOPE_LABEL_FIELDS = {
    ScopeKind.TEAM: "opportunity__owner__team__name",
    ScopeKind.PRODUCT_LINE: "opportunity__product__line__name",
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
UNKNOWN_KEY = "unknown"
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
    "prev_deals",
    "prev_base",
    "prev_rate",
    "change",
    "p_value",
    "significant",
    "headline",
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


def currency_rates() -> dict[str, Decimal]:
    """Rates into the reporting currency, checked: every deal currency needs one."""
    rates = {}
    for code, value in settings.DEBRIEF_CURRENCY_RATES.items():
        try:
            rates[code.strip().upper()] = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ImproperlyConfigured(
                f"DEBRIEF_CURRENCY_RATES: {code}={value!r} is not a number."
            ) from exc
    missing = [c for c in Currency.values if c not in rates]
    if missing:
        raise ImproperlyConfigured(
            f"DEBRIEF_CURRENCY_RATES has no rate for {', '.join(missing)}; add one per currency."
        )
    return rates


def _amount(prefix: str):
    rates = currency_rates()
    return Case(
        *(
            When(
                **{f"{prefix}opportunity__currency": code},
                then=F(f"{prefix}opportunity__amount") * Value(rate),
            )
            for code, rate in rates.items()
        ),
        output_field=DecimalField(max_digits=24, decimal_places=6),
    )


def _cycle(prefix: str):
    return ExpressionWrapper(
        F(f"{prefix}closed_date") - TruncDate(f"{prefix}opportunity__created_at"),
        output_field=DurationField(),
    )


def _outcome_counts(prefix: str, field: str, distinct: bool = False) -> dict:
    return {
        "deals": Count(field, distinct=distinct),
        "won": Count(field, distinct=distinct, filter=Q(**{f"{prefix}outcome": Outcome.WON})),
        "lost": Count(field, distinct=distinct, filter=Q(**{f"{prefix}outcome": Outcome.LOST})),
        "no_decision": Count(
            field, distinct=distinct, filter=Q(**{f"{prefix}outcome": Outcome.NO_DECISION})
        ),
    }


def _money(prefix: str) -> dict:
    return {
        "amount_won": Sum(_amount(prefix), filter=Q(**{f"{prefix}outcome": Outcome.WON})),
        "amount_lost": Sum(_amount(prefix), filter=Q(**{f"{prefix}outcome": Outcome.LOST})),
    }


class _Slices:
    """The reflections of some periods in every scope of one kind, as querysets to group."""

    def __init__(
        self,
        kind: str,
        periods: list[Period],
        scope_kind: str,
        scope_key: str | None,
        owner: User | None,
    ):
        self.kind, self.scope_kind = kind, scope_kind
        self.windows = sorted({p for period in periods for p in (period.previous(), period)})
        self.scope_key, self.owner = scope_key, owner

    def where(self, prefix: str) -> Q:
        q = Q(**{f"{prefix}current": True})
        ranges = Q()
        for period in _merged(self.windows):
            ranges |= Q(
                **{f"{prefix}closed_date__gte": period[0], f"{prefix}closed_date__lt": period[1]}
            )
        q &= ranges
        field = SCOPE_FIELDS[self.scope_kind]
        if field is not None:
            q &= Q(**{f"{prefix}{field}__isnull": False})
            if self.scope_key is not None:
                q &= Q(**{f"{prefix}{field}": self.scope_key})
        if self.owner is not None:
            q &= Q(**{f"{prefix}opportunity__owner": self.owner})
        return q

    def group(self, queryset, prefix: str):
        # Explicit period bounds rather than TruncMonth/TruncQuarter: plain comparisons that
        # every database evaluates natively (SQLite truncates dates in Python, row by row).
        period = Case(
            *(
                When(
                    **{
                        f"{prefix}closed_date__gte": window.start,
                        f"{prefix}closed_date__lt": window.end,
                    },
                    then=Value(window.start),
                )
                for window in self.windows
            ),
            output_field=DateField(),
        )
        field = SCOPE_FIELDS[self.scope_kind]
        label_field = SCOPE_LABEL_FIELDS.get(self.scope_kind)
        return queryset.filter(self.where(prefix)).annotate(
            period=period,
            scope=Cast(f"{prefix}{field}", CharField()) if field else Value(""),
            scope_label=F(f"{prefix}{label_field}") if label_field else Value(""),
        )


def _merged(periods: list[Period]) -> list[tuple[datetime.date, datetime.date]]:
    """Adjacent periods as one date range, so the WHERE clause stays short."""
    ranges: list[list[datetime.date]] = []
    for period in periods:
        if ranges and ranges[-1][1] >= period.start:
            ranges[-1][1] = max(ranges[-1][1], period.end)
        else:
            ranges.append([period.start, period.end])
    return [(a, b) for a, b in ranges]


def _as_date(value) -> datetime.date:
    return value.date() if isinstance(value, datetime.datetime) else value


def _days(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() / 86400, 4)
    return round(float(value) / 86_400_000_000, 4)  # SQLite may hand back microseconds


def _cents(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(CENT)


def _first_lower(label: str) -> str:
    if len(label) > 1 and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def _pct(rate: float) -> str:
    return f"{round(rate * 100)}%"


def headline(fact: InsightFact, period: Period, scope_label: str) -> str:
    """One plain sentence for a meaningful shift, e.g. "Losses with price as the main reason
    in Mid-market rose from 18% to 31% in Q2 2026."""
    name = _first_lower(fact.label)
    unknown = fact.key == UNKNOWN_KEY
    main = "no known main reason" if unknown else f"{name} as the main reason"
    subjects = {
        Dimension.SUMMARY: "Win rate",
        Dimension.PRIMARY_REASON_LOST: f"Losses with {main}",
        Dimension.PRIMARY_REASON_WON: f"Wins with {main}",
        Dimension.PRIMARY_REASON_NO_DECISION: f"Deals ending without a decision with {main}",
        Dimension.CONTRIBUTING_REASON: f"Deals where {name} played a part",
        Dimension.COMPETITOR: f"Our win rate against {fact.label}",
        Dimension.OBJECTION: f"Deals where customers raised “{fact.label}”",
        Dimension.SEGMENT: f"Our win rate in {fact.label}",
    }
    where = ""
    if fact.scope_kind in (ScopeKind.TEAM, ScopeKind.SEGMENT):
        where = f" in {scope_label}"
    elif fact.scope_kind == ScopeKind.PRODUCT_LINE:
        where = f" for {scope_label}"
    source = {
        Source.CUSTOMER: " (as customers told it)",
        Source.REP: " (in reps' own read)",
    }.get(fact.source, "")
    direction = "rose" if fact.change > 0 else "fell"
    return (
        f"{subjects[fact.dimension]}{where}{source} {direction} from {_pct(fact.prev_rate)} "
        f"to {_pct(fact.rate)} in {period.label}."
    )


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
    Unsaved facts for `periods` (each compared with the period before it) in every scope of
    `scope_kind` (or only `scope_key`), optionally only for deals `owner` owns (a person's own
    results, never stored). A constant number of queries, whatever the data size.
    """
    if not periods:
        return []
    k = settings.DEBRIEF_INSIGHT_MIN_SLICE if min_slice is None else min_slice
    slices = _Slices(kind, periods, scope_kind, scope_key, owner)
    # (period_start, scope) -> aggregated row
    summary: dict[tuple, dict] = {}
    scope_labels: dict[str, str] = {}
    for row in (
        slices.group(Reflection.objects.all(), "")
        .values("period", "scope", "scope_label")
        .annotate(**_outcome_counts("", "id"), **_money(""), cycle=Avg(_cycle("")))
        .order_by()
    ):
        summary[(_as_date(row["period"]), row["scope"])] = row
        scope_labels[row["scope"]] = row["scope_label"]

    # (dimension, source) -> (period_start, scope) -> key -> row
    cells: dict[tuple, dict] = defaultdict(lambda: defaultdict(dict))

    def put(dimension, source, row, key, label, outcome=None):
        slot = (_as_date(row["period"]), row["scope"])
        cell = cells[(dimension, source)][slot].get(key)
        if cell is None:
            cell = {"label": label, "outcome": outcome, "deals": 0, "won": 0, "lost": 0}
            cell.update(no_decision=0, amount_won=None, amount_lost=None)
            cells[(dimension, source)][slot][key] = cell
        for name in ("deals", "won", "lost", "no_decision"):
            cell[name] += row.get(name, 0)
        if outcome and "won" not in row:  # grouped by outcome: all its deals have that outcome
            cell[outcome] += row["deals"]
        for name in ("amount_won", "amount_lost"):
            if row.get(name) is not None:
                cell[name] = (cell[name] or 0) + row[name]

    reason_key = Coalesce("reason__merged_into_id", "reason_id")
    reason_label = Coalesce("reason__merged_into__label", "reason__label")
    for row in (
        slices.group(Answer.objects.all(), "reflection__")
        .filter(question__kind=QuestionKind.PRIMARY_REASON)
        .annotate(rkey=reason_key, rlabel=reason_label)
        .values("period", "scope", "reflection__outcome", "reason_source", "rkey", "rlabel")
        .annotate(deals=Count("reflection_id", distinct=True))
        .order_by()
    ):
        outcome = row["reflection__outcome"]
        key = str(row["rkey"]) if row["rkey"] is not None else UNKNOWN_KEY
        label = row["rlabel"] or UNKNOWN_LABEL
        dimension = PRIMARY_DIMENSION[outcome]
        put(dimension, Source.ALL, row, key, label, outcome)
        if row["reason_source"] in (Source.CUSTOMER, Source.REP):
            put(dimension, row["reason_source"], row, key, label, outcome)

    for row in (
        slices.group(Answer.objects.all(), "reflection__")
        .filter(question__kind=QuestionKind.CONTRIBUTING_REASONS, reason__isnull=False)
        .annotate(rkey=reason_key, rlabel=reason_label)
        .values("period", "scope", "reflection__outcome", "rkey", "rlabel")
        .annotate(deals=Count("reflection_id", distinct=True))
        .order_by()
    ):
        put(
            Dimension.CONTRIBUTING_REASON,
            Source.ALL,
            row,
            str(row["rkey"]),
            row["rlabel"],
            row["reflection__outcome"],
        )

    for row in (
        slices.group(Reflection.objects.all(), "")
        .filter(opportunity__primary_competitor__isnull=False)
        .values(
            "period",
            "scope",
            "opportunity__primary_competitor_id",
            "opportunity__primary_competitor__name",
        )
        .annotate(**_outcome_counts("", "id"), **_money(""))
        .order_by()
    ):
        put(
            Dimension.COMPETITOR,
            Source.ALL,
            row,
            str(row["opportunity__primary_competitor_id"]),
            row["opportunity__primary_competitor__name"],
        )

    for row in (
        slices.group(Answer.objects.all(), "reflection__")
        .filter(question__kind=QuestionKind.OBJECTIONS, objection__isnull=False)
        .values("period", "scope", "objection_id", "objection__label")
        .annotate(**_outcome_counts("reflection__", "reflection_id", distinct=True))
        .order_by()
    ):
        put(
            Dimension.OBJECTION,
            Source.ALL,
            row,
            str(row["objection_id"]),
            row["objection__label"],
        )

    if scope_kind != ScopeKind.SEGMENT:
        segment_labels = dict(Segment.choices)
        for row in (
            slices.group(Reflection.objects.all(), "")
            .values("period", "scope", "opportunity__company__segment")
            .annotate(**_outcome_counts("", "id"), **_money(""))
            .order_by()
        ):
            code = row["opportunity__company__segment"]
            put(Dimension.SEGMENT, Source.ALL, row, code, segment_labels.get(code, code))

    if scope_kind == ScopeKind.SEGMENT:
        scope_labels = {code: label for code, label in Segment.choices}

    facts: list[InsightFact] = []
    for period in periods:
        previous = period.previous()
        for (start, scope), row in summary.items():
            if start != period.start:
                continue
            prev_row = summary.get((previous.start, scope))
            scope_label = scope_labels.get(scope, scope)
            facts.append(
                _summary_fact(kind, period, scope_kind, scope, row, prev_row, k, scope_label)
            )
            for (dimension, source), by_slot in cells.items():
                current = by_slot.get((period.start, scope), {})
                before = by_slot.get((previous.start, scope), {}) if prev_row else {}
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
                    _compare(fact, k)
                    if fact.significant:
                        fact.headline = headline(fact, period, scope_label)
                    facts.append(fact)
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


def _summary_fact(kind, period, scope_kind, scope, row, prev_row, k, scope_label) -> InsightFact:
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
        avg_cycle_days=_days(row["cycle"]),
    )
    fact.x, fact.prev_x = row["won"], prev_row["won"] if prev_row else None
    if prev_row:
        fact.prev_deals, fact.prev_base = prev_row["deals"], prev_row["deals"]
        fact.prev_rate = _rate(prev_row["won"], prev_row["deals"])
    _compare(fact, k)
    if fact.significant:
        fact.headline = headline(fact, period, scope_label)
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


def _compare(fact: InsightFact, k: int) -> None:
    """Change against the previous period; flagged only when meaningful and not tiny."""
    fact.change = fact.p_value = None
    fact.significant = False
    if fact.rate is None or fact.prev_rate is None:
        return
    fact.change = fact.rate - fact.prev_rate
    result = two_proportion_z_test(fact.prev_x, fact.prev_base, fact.x, fact.base)
    if result is None:
        return
    fact.p_value = result.p_value
    fact.significant = result.significant and fact.base >= k and fact.prev_base >= k
