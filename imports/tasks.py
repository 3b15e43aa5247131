"""Thin Celery tasks of history imports."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from imports import services


@shared_task(
    name="imports.run",
    acks_late=True,
    reject_on_worker_lost=True,
    # A lost database connection stops the import with its batches so far committed; the
    # retry resumes after them (history_import_run claims a stopped import again).
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def run(import_id: int) -> str:
    """Import a queued file, or resume it after its committed rows; returns its status."""
    history_import = services.history_import_run(import_id=import_id)
    return history_import.status if history_import else "missing"
