"""
Celery tasks for insights: thin, they take ids and call services. Every one is safe to run
twice (facts are upserted, runs are claimed, digests are claimed per week), so they are
acknowledged late and retried with backoff on transient database or broker errors.
"""

import datetime

import kombu.exceptions
import redis.exceptions
from celery import shared_task
from django.db import InterfaceError, OperationalError

from insights import services

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
    return services.insights_sweep()


@shared_task(name="insights.weekly_digest", **RELIABLE)
def send_weekly_digest() -> int:
    """E-mail each manager the week's meaningful shifts; returns how many were sent."""
    return services.digest_send_all()
