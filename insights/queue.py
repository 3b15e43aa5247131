"""
When insight runs are queued: after closes, on "Refresh now", and in place of a run whose worker
died. Each claims its run through a service and hands it over with tasks.run_send, so services
never import tasks: this module imports both, and receivers, views and the admin call it.

With workers, a run goes to the broker. In the embedded default (eager tasks, no worker) it goes
to the background thread of this process, which does one run at a time: a close there only marks
its periods stale and returns, and the refresh catches up outside the request.
"""

from django.conf import settings
from django.db import transaction

from accounts.models import User
from insights import services, tasks
from insights.models import InsightRun, RunStatus


def insights_refresh_queue() -> bool:
    """
    After a close commits: queue a refresh unless one is already queued, so that a burst of
    closes makes one refresh, and closes that commit while a refresh runs make one more. If
    the broker refuses, the sweep picks the marks up later; False says so.
    """
    run, created = services.insights_refresh_claim()
    if created:
        tasks.run_send(run.pk, countdown=settings.DEBRIEF_INSIGHT_REFRESH_DELAY)
    elif tasks.in_process():
        # Waiting in this process's thread: handing it over again tells the thread closes go
        # on. Or left queued by a process that stopped (no sweep runs here): the thread does it.
        tasks.run_send(run.pk, countdown=settings.DEBRIEF_INSIGHT_REFRESH_DELAY)
    if not created or transaction.get_connection().in_atomic_block:
        return True  # sent when the surrounding transaction commits
    return not InsightRun.objects.filter(pk=run.pk, status=RunStatus.FAILED).exists()


def insight_run_request_rebuild(*, requested_by: User | None) -> InsightRun:
    """
    "Refresh now": a full rebuild, queued after commit (in the embedded default, started in a
    thread of this process), so that the page answers at once and follows its progress. A
    rebuild already queued or running is returned instead of starting a second one.
    """
    insight_runs_reap()  # never join a run whose worker died
    run, created = services.insight_run_rebuild_claim(requested_by=requested_by)
    if created or (tasks.in_process() and run.status == RunStatus.QUEUED):
        # Joining a queued rebuild in the embedded default: it may have been left by a server
        # that stopped (no sweep runs there), so the thread is told again; twice is harmless.
        tasks.run_send(run.pk)
    return run


def insight_runs_reap() -> list[int]:
    """
    Fail the runs whose worker died (services.insight_runs_reap) and queue the runs claimed in
    their place. Returns those runs' ids.
    """
    restarted = []
    for run, created in services.insight_runs_reap():
        if created:
            tasks.run_send(run.pk)
        restarted.append(run.pk)
    return restarted
