"""
The objection playbook of the pre-call brief, precomputed by the rollup: for the products in a
customer's open deals, the objections heard most across the organisation in the last twelve
months, each with the latest things won deals said about handling it.

The rollup stores, per product, how often each objection came up per day and per month
(PlaybookEntry) and each objection's latest won answers (PlaybookQuote). Both add up across
products: a reflection belongs to one deal of one product, closed on one day. So the company
page reads a handful of stored rows and never aggregates reflections; `playbook_for` gives
exactly what reflections.selectors.objection_playbook computes from the reflections.

A refresh recomputes the counts of the months marked stale, and of the days on which changed
reflections closed (adding their months up from the stored days), and merges those months' or
days' answers into the stored quotes, reading the reflections of an objection's whole history
only when a quote left the list and the next one down was never stored.
"""

import datetime
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Q,
    Subquery,
    Sum,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import timezone

from insights.models import PlaybookEntry, PlaybookPeriodKind, PlaybookQuote
from insights.periods import Period
from opportunities.models import OPEN_STAGES, Opportunity
from reflections.models import Answer, Outcome, QuestionKind
from reflections.selectors import PLAYBOOK_EXAMPLES, PLAYBOOK_MONTHS, PLAYBOOK_OBJECTIONS

# Stored answers per product and objection: the page drops repeated wording after merging the
# products' lists, as the live computation did with its own spare rows.
QUOTES_KEPT = PLAYBOOK_EXAMPLES * 3
DAY, MONTH = PlaybookPeriodKind.DAY.value, PlaybookPeriodKind.MONTH.value

# (product id, objection id) -> stored quote rows, newest first.
Pair = tuple[int, int]
Window_ = tuple[datetime.date, datetime.date]  # [start, end)


# --- counts ------------------------------------------------------------------------------------
def _in_windows(prefix: str, windows: list[Window_] | None) -> Q:
    if windows is None:
        return Q()
    match = Q(pk__in=[])
    for start, end in windows:
        match |= Q(**{f"{prefix}closed_date__gte": start, f"{prefix}closed_date__lt": end})
    return match


def entries(windows: list[Window_] | None = None, *, months: bool = True) -> list[PlaybookEntry]:
    """
    Unsaved day and month rows for the reflections closed in `windows` (whole months; None:
    all history), or only the day rows (`months` False: any days). One query, grouped in the
    database.
    """
    days = (
        Answer.objects.filter(
            _in_windows("reflection__", windows),
            objection__isnull=False,
            reflection__current=True,
            reflection__in_reports=True,
        )
        .values("reflection__opportunity__product_id", "reflection__closed_date", "objection_id")
        .annotate(
            heard=Count("reflection_id", distinct=True),
            won=Count("reflection_id", distinct=True, filter=Q(reflection__outcome=Outcome.WON)),
        )
        .order_by()
    )
    rows: list[PlaybookEntry] = []
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for row in days:
        product, day, objection = (
            row["reflection__opportunity__product_id"],
            row["reflection__closed_date"],
            row["objection_id"],
        )
        rows.append(
            PlaybookEntry(
                product_id=product,
                period_kind=DAY,
                period_start=day,
                objection_id=objection,
                heard=row["heard"],
                won=row["won"],
            )
        )
        month = sums[(product, day.replace(day=1), objection)]
        month[0] += row["heard"]
        month[1] += row["won"]
    if not months:
        return rows
    rows.extend(
        PlaybookEntry(
            product_id=product,
            period_kind=MONTH,
            period_start=start,
            objection_id=objection,
            heard=heard,
            won=won,
        )
        for (product, start, objection), (heard, won) in sums.items()
    )
    return rows


def month_entries(months: Iterable[datetime.date]) -> list[PlaybookEntry]:
    """Unsaved month rows for these months (their first days), as the sums of their stored
    day rows. One query."""
    match = Q(pk__in=[])
    for start in months:
        end = Period(MONTH, start).end
        match |= Q(period_start__gte=start, period_start__lt=end)
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for product, day, objection, heard, won in (
        PlaybookEntry.objects.filter(match, period_kind=DAY)
        .values_list("product_id", "period_start", "objection_id", "heard", "won")
        .order_by()
    ):
        month = sums[(product, day.replace(day=1), objection)]
        month[0] += heard
        month[1] += won
    return [
        PlaybookEntry(
            product_id=product,
            period_kind=MONTH,
            period_start=start,
            objection_id=objection,
            heard=heard,
            won=won,
        )
        for (product, start, objection), (heard, won) in sums.items()
    ]


def day_region(windows: list[Window_]):
    """The stored day rows `entries(windows, months=False)` replaces."""
    match = Q(pk__in=[])
    for start, end in windows:
        match |= Q(period_kind=DAY, period_start__gte=start, period_start__lt=end)
    return PlaybookEntry.objects.filter(match)


def month_region(months: Iterable[datetime.date]):
    """The stored month rows `month_entries(months)` replaces."""
    return PlaybookEntry.objects.filter(period_kind=MONTH, period_start__in=sorted(months))


def entry_region(windows: list[Window_] | None):
    """The stored rows `entries(windows)` replaces."""
    if windows is None:
        return PlaybookEntry.objects.all()
    match = Q(pk__in=[])
    for start, end in windows:
        match |= Q(period_kind=DAY, period_start__gte=start, period_start__lt=end)
        match |= Q(period_kind=MONTH, period_start__gte=start, period_start__lt=end)
    return PlaybookEntry.objects.filter(match)


# --- quotes ------------------------------------------------------------------------------------
def _quote_rows(where: Q) -> list[dict]:
    """
    The latest won short answers per product and objection they came with, QUOTES_KEPT at most
    each, among current reflections matching `where` (lookups on Answer). One query.
    """
    partition = [F("reflection__opportunity__product_id"), F("reflection__answers__objection_id")]
    rows = (
        Answer.objects.filter(
            where,
            question__kind=QuestionKind.SHORT_TEXT,
            reflection__outcome=Outcome.WON,
            reflection__current=True,
            reflection__in_reports=True,
            reflection__answers__objection_id__isnull=False,
        )
        .exclude(text="")
        .annotate(
            product=F("reflection__opportunity__product_id"),
            about=F("reflection__answers__objection_id"),
            position=Window(
                RowNumber(),
                partition_by=partition,
                order_by=[F("reflection__closed_date").desc(), F("id").desc()],
            ),
        )
        .filter(position__lte=QUOTES_KEPT)
        .values("product", "about", "position", "id", "text", "reflection__closed_date")
    )
    return [
        {
            "product": row["product"],
            "objection": row["about"],
            "rank": row["position"],
            "answer": row["id"],
            "text": row["text"],
            "closed_date": row["reflection__closed_date"],
        }
        for row in rows
    ]


def _by_pair(rows: Iterable[dict]) -> dict[Pair, list[dict]]:
    pairs: dict[Pair, list[dict]] = defaultdict(list)
    for row in rows:
        pairs[(row["product"], row["objection"])].append(row)
    for listed in pairs.values():
        listed.sort(key=_newest_first)
    return pairs


def _newest_first(row: dict) -> tuple:
    return (-row["closed_date"].toordinal(), -row["answer"])


def _ranked(pair: Pair, rows: list[dict]) -> list[PlaybookQuote]:
    return [
        PlaybookQuote(
            product_id=pair[0],
            objection_id=pair[1],
            rank=rank,
            answer_id=row["answer"],
            text=row["text"],
            closed_date=row["closed_date"],
        )
        for rank, row in enumerate(rows[:QUOTES_KEPT], start=1)
    ]


def quotes() -> list[PlaybookQuote]:
    """Unsaved quote rows for every product and objection, from all history. One query."""
    return [
        quote for pair, rows in _by_pair(_quote_rows(Q())).items() for quote in _ranked(pair, rows)
    ]


def quotes_merged(windows: list[Window_]) -> tuple[set[Pair], list[PlaybookQuote]]:
    """
    The quote lists that answers of reflections closed in `windows` change, and their new rows.

    Answers outside the windows did not change, and the stored list of a pair holds the latest
    of them, down to its last row. Merged with the windows' own answers, the list stays exact
    while it reaches no further down than that last row; when it would (a quote was reopened
    away and the one below it was never stored), that pair is read again from all history.
    Three queries, four when a pair needs its history.
    """
    fresh = _by_pair(_quote_rows(_in_windows("reflection__", windows)))
    in_windows = _in_windows("", windows)
    touched = set(fresh) | set(
        PlaybookQuote.objects.filter(in_windows).values_list("product_id", "objection_id")
    )
    if not touched:
        return set(), []
    stored: dict[Pair, list[dict]] = defaultdict(list)
    for row in PlaybookQuote.objects.filter(
        product_id__in={p for p, _ in touched}, objection_id__in={o for _, o in touched}
    ).values("product_id", "objection_id", "rank", "answer_id", "text", "closed_date"):
        pair = (row["product_id"], row["objection_id"])
        if pair in touched:
            stored[pair].append(
                {"answer": row["answer_id"], "text": row["text"], "closed_date": row["closed_date"]}
            )

    def recomputed(day: datetime.date) -> bool:
        return any(start <= day < end for start, end in windows)

    merged: dict[Pair, list[dict]] = {}
    again: set[Pair] = set()
    for pair in touched:
        old = sorted(stored.get(pair, []), key=_newest_first)
        kept = [row for row in old if not recomputed(row["closed_date"])]
        rows = sorted(kept + fresh.get(pair, []), key=_newest_first)[:QUOTES_KEPT]
        if len(old) >= QUOTES_KEPT:
            # Unchanged answers below the old last row were never stored.
            last = _newest_first(old[-1])
            if len(rows) < QUOTES_KEPT or _newest_first(rows[-1]) > last:
                again.add(pair)
                continue
        merged[pair] = rows
    if again:
        history = _by_pair(
            _quote_rows(
                Q(reflection__opportunity__product_id__in={p for p, _ in again})
                & Q(reflection__answers__objection_id__in={o for _, o in again})
            )
        )
        for pair in again:
            merged[pair] = history.get(pair, [])
    return touched, [quote for pair, rows in merged.items() for quote in _ranked(pair, rows)]


def windows_of(months: Iterable[Period]) -> list[Window_]:
    return sorted({(m.start, m.end) for m in months})


def day_windows(days: Iterable[datetime.date]) -> list[Window_]:
    """These days as windows, consecutive days as one."""
    windows: list[list[datetime.date]] = []
    for day in sorted(set(days)):
        if windows and windows[-1][1] == day:
            windows[-1][1] = day + datetime.timedelta(days=1)
        else:
            windows.append([day, day + datetime.timedelta(days=1)])
    return [(start, end) for start, end in windows]


# --- reading -----------------------------------------------------------------------------------
def playbook_for(company_id: int, *, today: datetime.date | None = None) -> dict:
    """
    The playbook for the products of a company's open deals, from the stored rows: the
    objections heard most in the last twelve months (day rows for the month the year starts
    in, month rows after it), each with its latest won answers. Two queries whatever the data
    size (when no objection was heard, the second says whether the company has open deals and
    whether the playbook was ever worked out).
    """
    today = today or timezone.localdate()
    since = today - datetime.timedelta(days=365 * PLAYBOOK_MONTHS // 12)
    whole_months_from = Period.containing(MONTH, since).end
    products = (
        Opportunity.objects.filter(company_id=company_id, stage__in=OPEN_STAGES)
        .order_by()
        .values("product_id")
    )
    heard = list(
        PlaybookEntry.objects.filter(product_id__in=Subquery(products))
        .filter(
            Q(period_kind=DAY, period_start__gte=since, period_start__lt=whole_months_from)
            | Q(period_kind=MONTH, period_start__gte=whole_months_from)
        )
        .values("objection_id", "objection__label")
        .annotate(times=Sum("heard"))
        .order_by("-times", "objection__label")[:PLAYBOOK_OBJECTIONS]
    )
    if not heard:
        # Whether the company has open deals, and if so whether the playbook was never worked
        # out (before the first rollup that stores it): then the page says so, not "none heard".
        never_stored = Exists(
            Answer.objects.filter(
                objection__isnull=False, reflection__current=True, reflection__in_reports=True
            )
        ) & ~Exists(PlaybookEntry.objects.all())
        found = list(
            Opportunity.objects.filter(company_id=company_id, stage__in=OPEN_STAGES)
            .annotate(not_ready=ExpressionWrapper(never_stored, output_field=BooleanField()))
            .values_list("not_ready", flat=True)[:1]
        )
        has_open_deals, not_ready = bool(found), bool(found and found[0])
        return {"playbook": [], "has_open_deals": has_open_deals, "not_ready": not_ready}
    by_objection: dict[int, list[dict]] = defaultdict(list)
    for row in (
        PlaybookQuote.objects.filter(
            product_id__in=Subquery(products),
            objection_id__in=[row["objection_id"] for row in heard],
        )
        .values("objection_id", "answer_id", "text", "closed_date", "product__name")
        .order_by("-closed_date", "-answer_id")
    ):
        by_objection[row["objection_id"]].append(row)
    playbook = []
    for row in heard:
        answers: list[dict] = []
        # The latest few across the products, then repeated wording dropped.
        for quote in by_objection[row["objection_id"]][:QUOTES_KEPT]:
            if len(answers) < PLAYBOOK_EXAMPLES and all(
                a["text"] != quote["text"] for a in answers
            ):
                answers.append(
                    {
                        "text": quote["text"],
                        "closed_date": quote["closed_date"],
                        "product": quote["product__name"],
                    }
                )
        playbook.append(
            {"label": row["objection__label"], "times": row["times"], "answers": answers}
        )
    return {"playbook": playbook, "has_open_deals": True}
