"""
Celery tasks for insights: thin, they take ids and call services. Every one is safe to run
twice (facts are upserted, runs are claimed, digests are claimed per week), so they are
acknowledged late and retried with backoff on transient database or broker errors.

`run_send` is the one way a run reaches whatever does it. Imports go one way: these tasks
import services; insights.queue (what closes, "Refresh now" and polls call) imports both;
services import neither.
"""

import datetime
import logging

import kombu.exceptions
import redis.exceptions
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from insights import services

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (
    OperationalError,
    InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)
RELIABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="insights.run", **RELIABLE)
def run_insights(run_id: int) -> str:
    """Do a queued InsightRun (a full rebuild, or the refresh of periods marked by closes)."""
    run = services.insight_run_execute(run_id=run_id)
    return run.status if run else "missing"


@shared_task(name="insights.rollup", **RELIABLE)
def rollup_insights(kind: str, period_start: str, scope_kind: str, scope_key: str = "") -> int:
    """Recompute one period of one scope; `period_start` is an ISO date."""
    return services.insights_rollup(
        kind=kind,
        period_start=datetime.date.fromisoformat(period_start),
        scope_kind=scope_kind,
        scope_key=scope_key,
    )


@shared_task(name="insights.rebuild", **RELIABLE)
def rebuild_insights() -> int:
    """The scheduled full rebuild; returns the run id."""
    return services.insights_rebuild_now(detail="Scheduled rebuild").pk


@shared_task(name="insights.sweep", **RELIABLE)
def sweep_insights() -> list[int]:
    """Safety net: refresh pending periods nobody is processing, requeue lost runs."""
    runs = services.insights_sweep()
    for run in runs:
        run_send(run.pk)
    return [run.pk for run in runs]


@shared_task(name="insights.weekly_digest", **RELIABLE)
def send_weekly_digest() -> int:
    """E-mail each manager the week's meaningful shifts; returns how many were sent."""
    return services.digest_send_all()


# --- queueing ----------------------------------------------------------------------------------
def in_process() -> bool:
    """
    The embedded default: tasks are eager in the settings and in the Celery app (which a test
    may switch alone), so no worker listens and apply_async would do a run right here.
    """
    return settings.CELERY_TASK_ALWAYS_EAGER and run_insights.app.conf.task_always_eager


def run_send(run_id: int, *, countdown: int = 0) -> None:
    """
    Hand a run to a worker once the current transaction commits (so the worker finds its row),
    after `countdown` seconds; a refusal by the broker is recorded on the run. In the embedded
    default the run goes to the background thread of this process instead, which starts it
    once closes pause (within `countdown` seconds): never is a run done inside the request or
    command that asked for it.
    """

    def send() -> None:
        if in_process():
            services.insight_run_start_in_process(run_id=run_id, settle=countdown)
            return
        try:
            run_insights.apply_async(args=[run_id], countdown=countdown or None)
        except Exception as exc:
            services.insight_run_queue_failed(run_id=run_id)
            logger.exception("Could not queue insight run %s (%s)", run_id, type(exc).__name__)

    transaction.on_commit(send)
