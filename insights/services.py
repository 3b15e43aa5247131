"""
Every write of the insights app: rollups into report facts, the runs that track them, the
coalesced refresh after closes, and the weekly digest.

Facts are upserted on their unique cell and facts that no longer exist are deleted, so any
rerun (a retried task, a redelivered message, a second click) leaves the same rows.
"""

import collections
import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, User
from insights import delta, gap, headlines, playbook
from insights import facts as fact_rules
from insights.models import (
    DigestDelivery,
    InsightFact,
    InsightRun,
    PendingPeriod,
    PendingReflection,
    PeriodKind,
    PlaybookEntry,
    PlaybookQuote,
    RunKind,
    RunStatus,
    ScopeKind,
    Source,
)
from insights.periods import Period, week_start
from reflections.models import Reflection

logger = logging.getLogger(__name__)

PERIOD_KINDS = fact_rules.PERIOD_KINDS
# A queued run older than this lost its message (broker restart, enqueue failure).
QUEUED_TOO_LONG = datetime.timedelta(minutes=10)
QUEUE_FAILED = (
    "Could not queue the job: the background workers' queue did not answer. The figures "
    "shown are from the last run that succeeded; the job is tried again every few minutes."
)
DELETE_CHUNK = 900

Progress = Callable[[int], None]


# --- writing facts -----------------------------------------------------------------------------
def _write(
    facts: list[InsightFact],
    *,
    kind: str,
    scope_kind: str | None = None,
    period_starts: Iterable[datetime.date] | None = None,
    scope_key: str | None = None,
) -> int:
    """
    Make the stored facts of a region (a period kind, optionally some periods, one scope kind,
    one scope) equal to `facts`: upsert the ones that differ from what is stored and delete
    the ones that were not recomputed. Returns the number of facts in the region.

    The region's rows are locked before they are compared, so that two runs writing the same
    periods (a refresh and a rebuild on two workers) take turns instead of mixing their
    results; rerunning on unchanged reflections then writes nothing at all.
    """
    region = InsightFact.objects.filter(period_kind=kind)
    if scope_kind is not None:
        region = region.filter(scope_kind=scope_kind)
    if period_starts is not None:
        region = region.filter(period_start__in=list(period_starts))
    if scope_key is not None:
        region = region.filter(scope_key=scope_key)
    return _write_region(facts, region)


def _write_region(facts: list[InsightFact], region) -> int:
    """`_write` for any region: the facts in it become `facts`."""
    width = len(fact_rules.UNIQUE_FIELDS)
    with transaction.atomic():
        stored = {
            row[:width]: row[width:]
            for row in region.select_for_update()
            .order_by("pk")
            .values_list(*fact_rules.UNIQUE_FIELDS, *fact_rules.VALUE_FIELDS)
        }
        changed = [
            fact
            for fact in facts
            if stored.get(_cell(fact)) != tuple(getattr(fact, f) for f in fact_rules.VALUE_FIELDS)
        ]
        if changed:
            InsightFact.objects.bulk_create(
                sorted(changed, key=_cell),  # one lock order for every writer
                batch_size=500,
                update_conflicts=True,
                unique_fields=fact_rules.UNIQUE_FIELDS,
                update_fields=fact_rules.VALUE_FIELDS,
            )
        # Read again rather than trust `stored`: a run that committed while this one waited
        # may have added rows the first read could not see.
        keep = {_cell(fact) for fact in facts}
        stale = [
            pk
            for pk, *cell in region.values_list("pk", *fact_rules.UNIQUE_FIELDS)
            if tuple(cell) not in keep
        ]
        for i in range(0, len(stale), DELETE_CHUNK):
            InsightFact.objects.filter(pk__in=stale[i : i + DELETE_CHUNK]).delete()
    return len(facts)


def _cell(fact: InsightFact) -> tuple:
    return tuple(getattr(fact, f) for f in fact_rules.UNIQUE_FIELDS)


def insights_rollup(
    *, kind: str, period_start: datetime.date, scope_kind: str, scope_key: str = ""
) -> int:
    """
    Recompute one period of one scope (e.g. Q2 2026, team 3), compared with the period
    before it. Returns the number of facts written.
    """
    period = Period.containing(kind, period_start)
    facts = fact_rules.compute_facts(
        kind=kind,
        periods=[period],
        scope_kind=scope_kind,
        scope_key=scope_key if scope_kind != ScopeKind.ORG else None,
    )
    return _write(
        facts,
        kind=kind,
        scope_kind=scope_kind,
        period_starts=[period.start],
        scope_key=scope_key if scope_kind != ScopeKind.ORG else None,
    )


def insights_rebuild(*, progress: Progress | None = None) -> int:
    """
    Recompute every period that has reflections, in every scope, and drop facts of periods
    that have none any more. Returns the number of facts written.

    Every period is tallied from one read of the reflections and their answers, so each is
    compared with its previous period as just recomputed, never with stored facts.
    """
    pending = _pending_snapshot()
    changed = list(PendingReflection.objects.values_list("reflection_id", "marked_at"))
    facts = fact_rules.rollup_facts(periods=None, progress=_scaled(progress, 0, 50))
    written = 0
    for done, kind in enumerate(PERIOD_KINDS, start=1):
        written += _write(facts.get(kind, []), kind=kind)
        if progress:
            progress(50 + int(done * 49 / len(PERIOD_KINDS)))
    insights_playbook_write(months=None)
    insights_gap_write(periods=None)
    _pending_clear(pending)
    _changed_after_rebuild(changed)
    return written


def _changed_after_rebuild(snapshot: list[tuple[int, datetime.datetime]]) -> None:
    """
    A rebuild counts every change that committed before it read the reflections: those marks
    are done. A change marked (or marked again) since may or may not be in what it read, so
    nothing is known about what the facts count for it: its periods are recomputed instead.
    """
    left = list(PendingReflection.objects.values_list("pk", "marked_at"))
    if not left:
        return
    read = set(snapshot)
    unknown = [pk for pk, marked_at in left if (pk, marked_at) not in read]
    with transaction.atomic():
        if unknown:
            days = Reflection.objects.filter(pk__in=unknown).values_list("closed_date", flat=True)
            insights_mark_stale(dates=set(days))
        _changed_clear(left)


def _changed_clear(snapshot: Iterable[tuple[int, datetime.datetime]]) -> None:
    """Forget these marks unless renewed since (then the next refresh takes them)."""
    snapshot = list(snapshot)
    for i in range(0, len(snapshot), DELETE_CHUNK):
        match = Q(pk__in=[])
        for reflection_id, marked_at in snapshot[i : i + DELETE_CHUNK]:
            match |= Q(pk=reflection_id, marked_at=marked_at)
        PendingReflection.objects.filter(match).delete()


def insights_refresh_pending(*, progress: Progress | None = None) -> int:
    """
    Bring the stored facts up to date after closes, reopenings, amendments, buyers' answers
    and imports. Returns the number of facts written.

    A changed reflection (PendingReflection) is applied as a delta (insights.delta): what the
    facts counted for it is taken away and what it says now is added, and only the reports
    it counts in, and the next period's that compare with them, are recomputed from their
    stored counts. A marked period (PendingPeriod: imports, a buyer changing their answers, a
    delta the stored facts could not take) is recomputed from its reflections, with the period
    after it (its comparison changed), as `insights_recompute` says. What neither can see
    (renamed teams, merged reasons, new currency rates) waits for the nightly rebuild.
    """
    pending = _pending_snapshot()
    targets: dict[str, set[Period]] = {kind: set() for kind in PERIOD_KINDS}
    for kind, start, _ in pending:
        period = Period.containing(kind, start)
        targets[kind].update({period, period.next()})
    written = insights_recompute(periods=targets, progress=_scaled(progress, 0, 50))
    recomputed = {(kind, p.start) for kind, ps in targets.items() for p in ps}
    changed_ids = list(PendingReflection.objects.values_list("pk", flat=True))  # for the gap
    changed, days = insights_apply_changes(skip=recomputed)
    written += changed
    if progress:
        progress(90)
    # The playbook: marked months from their reflections, the changed reflections' days from
    # theirs. Until it has been stored once (just after an upgrade), a refresh stores all of
    # it: a month alone would show partial counts as if they were whole.
    months = {Period(kind, start) for kind, start, _ in pending if kind == PeriodKind.MONTH}
    if not PlaybookEntry.objects.exists():
        insights_playbook_write(months=None)
    else:
        insights_playbook_write(months=sorted(months))
        whole = {month.start for month in months}
        insights_playbook_write_days(days={d for d in days if d.replace(day=1) not in whole})
    insights_gap_refresh(pending=pending, days=days, changed=changed_ids)
    _pending_clear(pending)
    return written


def insights_recompute(*, periods: dict[str, set[Period]], progress: Progress | None = None) -> int:
    """
    Recompute these periods (kind -> periods) from their reflections in every scope. Each is
    compared with the stored facts of the period before it, unless that period is recomputed
    too (then as just tallied) or has no facts yet (then from its reflections). Returns the
    number of facts written.
    """
    periods = {kind: sorted(ps) for kind, ps in periods.items() if ps}
    written = 0
    if not periods:
        return written
    facts = fact_rules.rollup_facts(
        periods=periods, stored_previous=True, progress=_scaled(progress, 0, 50)
    )
    for done, (kind, kind_periods) in enumerate(periods.items(), start=1):
        written += _write(
            facts.get(kind, []), kind=kind, period_starts=[p.start for p in kind_periods]
        )
        if progress:
            progress(50 + int(done * 49 / len(periods)))
    return written


def insights_apply_changes(
    *, skip: set[tuple[str, datetime.date]] = frozenset()
) -> tuple[int, set[datetime.date]]:
    """
    Apply the changed reflections' deltas to the stored facts (insights.delta), except in the
    periods of `skip`, just recomputed from their reflections. When the stored facts cannot
    take the deltas (counts below zero: something changed that no mark saw, such as a deal
    moved to another team; facts stored before their sums were; a period never computed), the
    periods they touch, and the ones after, are recomputed from their reflections instead.
    Returns the number of facts written and the days the changes closed on.

    The marks are locked while their deltas are applied, so that two refreshes never apply
    one twice; a mark renewed meanwhile stays, counting what this refresh counted.
    """
    if not PendingReflection.objects.exists():
        return 0, set()
    with transaction.atomic():
        marked = list(
            PendingReflection.objects.select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "counted", "marked_at")
        )
        if not marked:
            return 0, set()
        ids = [reflection_id for reflection_id, _, _ in marked]
        now = delta.contributions(ids)
        changes = [(c, now.get(r)) for r, c, _ in marked if c != now.get(r)]
        touched = [c for change in changes for c in change if c is not None]
        days = {datetime.date.fromisoformat(c["day"]) for c in touched}
        written = 0
        if changes:
            try:
                result = delta.delta_facts(
                    changes,
                    changed=ids,
                    skip=skip,
                    k=settings.DEBRIEF_INSIGHT_MIN_SLICE,
                    today=timezone.localdate(),
                )
                written = _write_region(
                    result.facts, InsightFact.objects.filter(delta.region(result.slots))
                )
            except delta.Inconsistent as exc:
                logger.warning("Refresh by delta not possible (%s); recomputing instead", exc)
                targets: dict[str, set[Period]] = collections.defaultdict(set)
                for contribution in touched:
                    for kind, start in delta.periods_of(contribution):
                        if (kind, start) not in skip:
                            targets[kind].update({Period(kind, start), Period(kind, start).next()})
                written = insights_recompute(periods=targets)
        _changed_clear((r, marked_at) for r, _, marked_at in marked)
        for reflection_id in PendingReflection.objects.filter(pk__in=ids).values_list(
            "pk", flat=True
        ):
            PendingReflection.objects.filter(pk=reflection_id).update(
                counted=now.get(reflection_id)
            )
    return written, days


def insights_mark_changed(*, reflection_id: int, counted: Callable[[], dict | None] | None) -> bool:
    """
    Mark a reflection changed. Called INSIDE the transaction that changes it (close, reopening,
    amendment, buyer's answer), before the change where what it counted would be lost:
    `counted()` says what the stored facts count for it now (insights.delta.contributions;
    None: nothing), and is asked only when it is not marked already (then the stored facts
    still count what the mark says). With `counted` None (not known), an unmarked reflection
    stays unmarked; False says so, and the caller marks its periods instead.
    """
    now = timezone.now()
    if PendingReflection.objects.filter(pk=reflection_id).update(marked_at=now):
        return True
    if counted is None:
        return False
    try:
        with transaction.atomic():
            PendingReflection.objects.create(
                reflection_id=reflection_id, counted=counted(), marked_at=now
            )
    except IntegrityError:  # marked by a concurrent change, whose `counted` stands
        PendingReflection.objects.filter(pk=reflection_id).update(marked_at=now)
    return True


def _scaled(progress: Progress | None, start: int, end: int) -> Progress | None:
    """A step's own 0-100% as its share (start to end) of the whole run's progress."""
    if progress is None:
        return None
    return lambda percent: progress(start + percent * (end - start) // 100)


def _pending_snapshot() -> list[tuple[str, datetime.date, datetime.datetime]]:
    return list(PendingPeriod.objects.values_list("period_kind", "period_start", "marked_at"))


def _pending_clear(snapshot) -> None:
    """Forget the marks that were processed; a mark renewed meanwhile stays for the next run."""
    if not snapshot:
        return
    match = Q()
    for kind, start, marked_at in snapshot:
        match |= Q(period_kind=kind, period_start=start, marked_at=marked_at)
    PendingPeriod.objects.filter(match).delete()


# --- the objection playbook --------------------------------------------------------------------
def insights_playbook_write(*, months: list[Period] | None) -> int:
    """
    Store the objection playbook of the company page (insights.playbook) for the reflections
    closed in `months` (None: all history): their counts per product, day and month, and the
    latest won answers of every product and objection they change. Upserted and pruned like
    the facts, in one transaction. Returns the number of rows the region holds.
    """
    windows = None if months is None else playbook.windows_of(months)
    if windows == []:
        return 0
    entries = playbook.entries(windows)
    if windows is None:
        pairs, quotes = None, playbook.quotes()
    else:
        pairs, quotes = playbook.quotes_merged(windows)
    entry_cell = ["product_id", "period_kind", "period_start", "objection_id"]
    quote_cell = ["product_id", "objection_id", "rank"]
    quote_region = PlaybookQuote.objects.all()
    if pairs is not None:
        quote_region = quote_region.filter(
            product_id__in={p for p, _ in pairs}, objection_id__in={o for _, o in pairs}
        )
    with transaction.atomic():
        written = _sync(playbook.entry_region(windows), entries, entry_cell, ["heard", "won"])
        written += _sync(
            quote_region,
            quotes,
            quote_cell,
            ["answer_id", "text", "closed_date"],
            owned=None if pairs is None else (lambda cell: (cell[0], cell[1]) in pairs),
        )
    return written


def _sync(region, rows: list, cell: list[str], values: list[str], owned=None) -> int:
    """
    Make the stored rows of `region` that `owned(cell)` accepts (all by default) equal to
    `rows`: lock them, upsert those that differ, delete those not in `rows`.
    """
    model = region.model
    key = lambda row: tuple(getattr(row, f) for f in cell)  # noqa: E731
    stored = {}
    for pk, *fields in region.select_for_update().order_by("pk").values_list("pk", *cell, *values):
        here = tuple(fields[: len(cell)])
        if owned is None or owned(here):
            stored[here] = (pk, tuple(fields[len(cell) :]))
    changed = [
        row
        for row in rows
        if stored.get(key(row), (None, None))[1] != tuple(getattr(row, f) for f in values)
    ]
    if changed:
        model.objects.bulk_create(
            sorted(changed, key=key),  # one lock order for every writer
            batch_size=500,
            update_conflicts=True,
            unique_fields=[f.removesuffix("_id") for f in cell],
            update_fields=[f.removesuffix("_id") for f in values],
        )
    keep = {key(row) for row in rows}
    stale = [pk for here, (pk, _) in stored.items() if here not in keep]
    for i in range(0, len(stale), DELETE_CHUNK):
        model.objects.filter(pk__in=stale[i : i + DELETE_CHUNK]).delete()
    return len(rows)


def insights_playbook_write_days(*, days: Iterable[datetime.date]) -> int:
    """
    Store the playbook's counts and quotes for the reflections closed on these days (a close,
    reopening or amendment changes its own day only): their day rows from the reflections, the
    months they fall in as the sums of the stored days, and the quotes those days change.
    Returns the number of rows the region holds.
    """
    days = set(days)
    windows = playbook.day_windows(days)
    if not windows:
        return 0
    day_rows = playbook.entries(windows, months=False)
    pairs, quotes = playbook.quotes_merged(windows)
    months = {day.replace(day=1) for day in days}
    entry_cell = ["product_id", "period_kind", "period_start", "objection_id"]
    with transaction.atomic():
        written = _sync(playbook.day_region(windows), day_rows, entry_cell, ["heard", "won"])
        written += _sync(
            playbook.month_region(months),
            playbook.month_entries(months),
            entry_cell,
            ["heard", "won"],
        )
        if pairs:
            written += _sync(
                PlaybookQuote.objects.filter(
                    product_id__in={p for p, _ in pairs}, objection_id__in={o for _, o in pairs}
                ),
                quotes,
                ["product_id", "objection_id", "rank"],
                ["answer_id", "text", "closed_date"],
                owned=lambda cell: (cell[0], cell[1]) in pairs,
            )
    return written


# --- the perception gap ------------------------------------------------------------------------
def insights_gap_write(*, periods: dict[str, set[Period]] | None) -> int:
    """
    Store the perception gap's grouped counts (insights.gap.counts) of these periods (kind ->
    periods; None: all history), for the organisation, every team and every product line, from
    one grouped query. Upserted and pruned like the facts, in one transaction. Returns the
    number of rows the region holds.
    """
    if periods is not None and not any(periods.values()):
        return 0
    rows = gap.counts(periods)
    with transaction.atomic():
        return _sync(gap.count_region(periods), rows, gap.STORED_CELL, ["deals"])


def insights_gap_refresh(
    *,
    pending: list[tuple[str, datetime.date, datetime.datetime]],
    days: Iterable[datetime.date],
    changed: list[int],
) -> int:
    """
    The refresh's part of the gap: recompute the marked periods (imports, buyers changing
    answers, merged reasons), and the periods of the changed reflections' closing days when one
    of those reflections has an answered survey (a close without one changes no pair). Until
    the counts were stored once (just after an upgrade), all of them. Returns the rows written.

    `changed` is read just before the deltas are applied: a reflection marked in between is
    applied without being looked at here, and if only it had a buyer's answer, its periods'
    gap waits for their next recount (the nightly rebuild at the latest).
    """
    if not gap.stored_once():
        return insights_gap_write(periods=None)
    targets: dict[str, set[Period]] = {kind: set() for kind in PERIOD_KINDS}
    for kind, start, _ in pending:
        targets[kind].add(Period(kind, start))
    days = set(days)
    if days and gap.any_answered(changed):
        for day in days:
            for kind in PERIOD_KINDS:
                targets[kind].add(Period.containing(kind, day))
    return insights_gap_write(periods=targets)


# --- runs --------------------------------------------------------------------------------------
WORK = {RunKind.REBUILD: insights_rebuild, RunKind.REFRESH: insights_refresh_pending}


def insight_run_execute(*, run_id: int, beat: bool | None = None) -> InsightRun | None:
    """
    Do the work of a run and record how it went. A run that already succeeded is left alone
    (a redelivered message), and so is one that no longer exists; a failure is stored with
    its reason and re-raised, so the task can retry when the error is transient.

    `beat` stamps the heartbeat from a thread of its own while the work goes on; by default
    a worker does and an eager run (inside the request or command that asked for it) does not.
    """
    started = InsightRun.objects.filter(pk=run_id).exclude(status=RunStatus.SUCCEEDED)
    now = timezone.now()
    if not started.update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        progress=0,
        error="",
    ):
        run = InsightRun.objects.filter(pk=run_id).first()
        if run is None:
            logger.warning("Insight run %s no longer exists; nothing to do", run_id)
        return run
    run = InsightRun.objects.get(pk=run_id)

    def progress(percent: int) -> None:
        InsightRun.objects.filter(pk=run_id).update(
            progress=min(percent, 99), heartbeat_at=timezone.now()
        )

    try:
        with _heartbeat(run_id, beat=beat):
            written = WORK[run.kind](progress=progress)
    except Exception as exc:
        InsightRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        logger.exception("Insight run %s failed", run_id)
        raise
    InsightRun.objects.filter(pk=run_id).update(
        status=RunStatus.SUCCEEDED,
        progress=100,
        finished_at=timezone.now(),
        facts_written=written,
    )
    run.refresh_from_db()
    return run


@contextlib.contextmanager
def _heartbeat(run_id: int, *, beat: bool | None = None):
    """
    While a worker runs the job, a thread of its own stamps the run's heartbeat every third of
    the lease, so that a run whose worker died (killed, out of memory, the machine gone) is
    told from a slow one within a lease. Eager runs stamp it through their progress only: they
    run inside the request or command that asked for them. A run in a background thread of
    the embedded default (`insight_run_start_in_process`) is stamped like a worker's.
    """
    if beat is None:
        beat = not settings.CELERY_TASK_ALWAYS_EAGER
    if not beat:
        yield
        return
    stop = threading.Event()
    every = max(settings.DEBRIEF_INSIGHT_RUN_LEASE_SECONDS / 3, 1)

    def beat() -> None:
        try:
            while not stop.wait(every):
                # One failed stamp (a locked SQLite file, a dropped connection) must not end
                # the heartbeats: the run would be reaped as dead while it still works.
                try:
                    InsightRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    logger.warning("Insight run %s: heartbeat failed", run_id, exc_info=True)
                    connection.close()  # a fresh connection for the next stamp
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"insight-run-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def insight_runs_reap() -> list[tuple[InsightRun, bool]]:
    """
    Runs whose worker died: "running" with no heartbeat for longer than the lease. Each is
    marked failed with a plain reason, and a run of the same kind is claimed in its place
    (once: the queued-run constraint coalesces). Returns each claimed run and whether it is
    new, which the caller queues (insights.queue).
    """
    lease = datetime.timedelta(seconds=settings.DEBRIEF_INSIGHT_RUN_LEASE_SECONDS)
    now = timezone.now()
    dead = InsightRun.objects.filter(status=RunStatus.RUNNING).filter(
        Q(heartbeat_at__lt=now - lease) | Q(heartbeat_at__isnull=True, started_at__lt=now - lease)
    )
    restarted = []
    for run in dead:
        marked = InsightRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED,
            finished_at=now,
            error="The worker stopped before finishing (it went silent). A new run was started "
            "in its place.",
        )
        if not marked:
            continue  # another reaper, or the run itself, got there first
        restarted.append(_claim(run.kind, run.requested_by, "Restarted after a worker stopped"))
    return restarted


def _claim(
    kind: str, requested_by: User | None = None, detail: str = ""
) -> tuple[InsightRun, bool]:
    """The queued run of `kind`, created if there is none: the partial unique constraint on
    queued runs makes this an atomic claim even when many closes race for it."""
    try:
        with transaction.atomic():
            return (
                InsightRun.objects.create(kind=kind, requested_by=requested_by, detail=detail),
                True,
            )
    except IntegrityError:
        run = InsightRun.objects.filter(kind=kind, status=RunStatus.QUEUED).first()
        if run is None:  # it started in between; claim again
            return _claim(kind, requested_by, detail)
        return run, False


def insight_run_queue_failed(*, run_id: int) -> None:
    """The broker refused a queued run's message: the run fails with a plain reason (the page
    shows it; the exception goes to the log), and the sweep tries its work again later."""
    InsightRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED, finished_at=timezone.now(), error=QUEUE_FAILED
    )


# The embedded default's stand-in for a worker: one daemon thread of this process does the runs
# handed to it, one at a time and in order. So a refresh never runs twice at once, and closes
# that commit while one runs share the next one (they all find its queued run). A run handed
# over to settle (a refresh after closes) starts once nothing was handed over for
# LOCAL_QUIET_SECONDS, and at the latest `settle` seconds after it first was: a burst of closes,
# and the page each close leads to, go first instead of waiting behind its writes.
LOCAL_QUIET_SECONDS = 1.0
_local_lock = threading.Lock()
_local_runs: collections.deque[int] = collections.deque()
_local_deadlines: dict[int, float] = {}
_local_last_handed = 0.0
_local_thread: threading.Thread | None = None


def insight_run_start_in_process(*, run_id: int, settle: float = 0) -> threading.Thread:
    """
    Hand a committed run to this process's background thread, started if idle, instead of
    doing it inside the request or command that asked for it. A run already waiting there is
    not added twice. The thread has its own database connection (SQLite in WAL mode lets the
    requests read meanwhile; a write waits its turn through the busy timeout) and closes it
    when it has nothing left to do. A failure is recorded on the run by insight_run_execute; a
    process that stops mid-run leaves the run silent, and the next poll or "Refresh now" after
    a lease restarts it. Returns the thread, which ends once every run handed to it is done.
    """
    global _local_thread, _local_last_handed
    with _local_lock:
        _local_last_handed = time.monotonic()
        if run_id not in _local_runs:
            _local_runs.append(run_id)
            if settle:
                _local_deadlines[run_id] = _local_last_handed + settle
        if _local_thread is None or not _local_thread.is_alive():
            _local_thread = threading.Thread(target=_local_work, name="insight-runs", daemon=True)
            _local_thread.start()
        return _local_thread


def _local_work() -> None:
    global _local_thread
    try:
        while True:
            with _local_lock:
                if not _local_runs:
                    _local_thread = None
                    return
                run_id = _local_runs[0]  # stays listed while it runs: handing it again is a no-op
            try:
                _local_settle(run_id)
                # A failure is recorded on the run and logged by insight_run_execute.
                with contextlib.suppress(Exception):
                    insight_run_execute(run_id=run_id, beat=True)
            finally:
                with _local_lock:
                    _local_runs.popleft()
                    _local_deadlines.pop(run_id, None)
    finally:
        connection.close()


def _local_settle(run_id: int) -> None:
    while True:
        with _local_lock:
            deadline = _local_deadlines.get(run_id)
            if deadline is None:
                return
            wake = min(_local_last_handed + LOCAL_QUIET_SECONDS, deadline)
        pause = wake - time.monotonic()
        if pause <= 0:
            return
        time.sleep(pause)


def insight_run_rebuild_claim(*, requested_by: User | None) -> tuple[InsightRun, bool]:
    """
    The rebuild "Refresh now" follows: the one already running, else the queued one, created
    if there is none. Returns it and whether it is new (the caller queues a new one).
    """
    active = (
        InsightRun.objects.filter(kind=RunKind.REBUILD, status=RunStatus.RUNNING)
        .order_by("-created_at")
        .first()
    )
    if active is not None:
        return active, False
    return _claim(RunKind.REBUILD, requested_by, "Requested from the dashboard")


def insights_rebuild_now(*, detail: str) -> InsightRun:
    """A full rebuild done here and now (the nightly task, seed_demo, the management command),
    recorded as a run; a rebuild already queued is taken over rather than duplicated."""
    run, _ = _claim(RunKind.REBUILD, detail=detail)
    return insight_run_execute(run_id=run.pk)


def insights_mark_stale(*, dates: Iterable[datetime.date]) -> None:
    """
    Mark the periods of these closing dates stale. Called INSIDE the close (or amendment, or
    reopening) transaction, so the mark commits with the close or not at all: a close can
    never be left out of the reports, even if the broker is down or the process dies right
    after committing. insights.queue then asks for the refresh, after commit.
    """
    now = timezone.now()
    marks = {
        (kind, Period.containing(kind, day).start) for day in dates if day for kind in PERIOD_KINDS
    }
    if not marks:
        return
    PendingPeriod.objects.bulk_create(
        [PendingPeriod(period_kind=k, period_start=s, marked_at=now) for k, s in sorted(marks)],
        update_conflicts=True,
        unique_fields=["period_kind", "period_start"],
        update_fields=["marked_at"],
    )


def insights_refresh_claim() -> tuple[InsightRun, bool]:
    """
    After a close commits: the queued refresh, created if there is none (the claim is what
    coalesces a burst of closes into one refresh), and whether it is new. The marks committed
    before the claim is tried, so a refresh that has started is sure to see them or leave a
    new queued run behind for them. insights.queue queues it.
    """
    return _claim(RunKind.REFRESH, detail="After closes")


def insights_sweep() -> list[InsightRun]:
    """
    The safety net the scheduler runs every few minutes: fail runs whose worker vanished and
    claim one in their place, find queued runs whose message was lost, and claim a refresh
    for marks nobody is processing. Returns the runs to (re)queue, which the sweep task does.
    """
    now = timezone.now()
    send = [run for run, created in insight_runs_reap() if created]
    send += InsightRun.objects.filter(status=RunStatus.QUEUED, created_at__lt=now - QUEUED_TOO_LONG)
    if PendingPeriod.objects.exists() or PendingReflection.objects.exists():
        run, created = _claim(RunKind.REFRESH, detail="Sweep of pending periods")
        if created:
            send.append(run)
    return send


# --- weekly digest -----------------------------------------------------------------------------
def digest_content(*, manager: User, today: datetime.date) -> dict:
    """
    What a manager's digest says: the meaningful shifts of the month and quarter the past
    week fell in, for their teams and the organisation, and each team's headline numbers.
    The digest is one family of tests: a change it lists is headlined in its own report and
    also survives the false-discovery control across every change the digest tested. Slices
    under the minimum size are left out.
    """
    k = settings.DEBRIEF_INSIGHT_MIN_SLICE
    day = today - datetime.timedelta(days=1)
    periods = [Period.containing(kind, day) for kind in PERIOD_KINDS]
    teams = list(manager.managed_teams.order_by("name"))
    team_keys = [str(t.pk) for t in teams]
    in_periods = Q()
    for period in periods:
        in_periods |= Q(period_kind=period.kind, period_start=period.start)
    in_scopes = Q(scope_kind=ScopeKind.TEAM, scope_key__in=team_keys) | Q(scope_kind=ScopeKind.ORG)
    # The main view of each report (split main reasons belong to their own views).
    tested = list(
        InsightFact.objects.filter(
            in_periods, in_scopes, source=Source.ALL, p_value__isnull=False
        ).order_by("scope_kind", "p_value", "id")
    )
    shifts = headlines.digest_shifts(tested, k=k)
    summaries = {
        (f.period_kind, f.scope_key): f
        for f in InsightFact.objects.filter(
            in_periods, scope_kind=ScopeKind.TEAM, scope_key__in=team_keys, dimension="summary"
        )
    }
    quarter = periods[0]
    rows = []
    for team in teams:
        fact = summaries.get((PeriodKind.QUARTER, str(team.pk)))
        rows.append({"team": team, "fact": fact if fact and fact.base >= k else None})
    return {
        "manager": manager,
        "teams": teams,
        "team_rows": rows,
        "quarter": quarter,
        "periods": periods,
        "team_shifts": [s for s in shifts if s.scope_kind == ScopeKind.TEAM],
        "org_shifts": [s for s in shifts if s.scope_kind == ScopeKind.ORG],
        "tested": len(tested),
        "min_slice": k,
        "fdr_percent": round(settings.DEBRIEF_INSIGHT_FDR * 100),
        "min_change": settings.DEBRIEF_INSIGHT_MIN_CHANGE_POINTS,
    }


def digest_send(*, manager: User, today: datetime.date, base_url: str = "") -> bool:
    """
    E-mail one manager this week's digest, once: the delivery row is claimed first and
    released if sending fails, so a retry sends it and a rerun after success does not.
    """
    week = week_start(today)
    try:
        with transaction.atomic():
            delivery = DigestDelivery.objects.create(recipient=manager, week_start=week)
    except IntegrityError:
        return False
    context = digest_content(manager=manager, today=today)
    context["dashboard_url"] = base_url + reverse("insights:dashboard")
    shifts = len(context["team_shifts"]) + len(context["org_shifts"])
    subject = (
        f"Debrief weekly: {shifts} meaningful shift{'s' if shifts != 1 else ''} "
        f"in {', '.join(t.name for t in context['teams'])}"
        if shifts
        else "Debrief weekly: no meaningful shifts this week"
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("insights/email/digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[manager.email],
    )
    message.attach_alternative(render_to_string("insights/email/digest.html", context), "text/html")
    try:
        message.send()
    except Exception:
        delivery.delete()
        raise
    DigestDelivery.objects.filter(pk=delivery.pk).update(shifts=shifts)
    return True


def digest_send_all(*, today: datetime.date | None = None) -> int:
    """Send the weekly digest to every active manager who manages a team. Returns how many."""
    today = today or timezone.localdate()
    base_url = settings.DEBRIEF_SITE_URL.rstrip("/")
    managers = User.objects.filter(
        role=Role.MANAGER, is_active=True, managed_teams__isnull=False
    ).distinct()
    return sum(digest_send(manager=m, today=today, base_url=base_url) for m in managers)
