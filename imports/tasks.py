"""Thin Celery tasks of history imports."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from imports import services
from imports.models import ImportStatus

# Both jobs are safe to run again: a lost database connection stops an import with its batches
# so far committed and the retry resumes after them (history_import_run claims a stopped import
# again); a check writes nothing but its own import's row, so a redelivered one checks again.
RERUNNABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="imports.run", bind=True, **RERUNNABLE)
def run(self, import_id: int) -> str:
    """
    Import a queued file, or resume it after its committed rows; returns its status. An import
    still RUNNING afterwards belongs to another worker, or to one that died with its heartbeat
    still fresh (a redelivered task): look again once it would count as stale.
    """
    history_import = services.history_import_run(import_id=import_id)
    if history_import is not None and history_import.status == ImportStatus.RUNNING:
        raise self.retry(countdown=services.STALE_AFTER.total_seconds(), max_retries=12)
    return history_import.status if history_import else "missing"


@shared_task(name="imports.check", **RERUNNABLE)
def check(import_id: int) -> str:
    """Check (dry run) a large file marked CHECKING; returns its status."""
    history_import = services.history_import_check_run(import_id=import_id)
    return history_import.status if history_import else "missing"


@shared_task(name="imports.expire_uploads")
def expire_uploads() -> int:
    """Cancel imports left waiting for DEBRIEF_IMPORT_KEEP_DAYS and delete their files."""
    return services.history_imports_expire()
