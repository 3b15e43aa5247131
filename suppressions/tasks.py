"""
The suppressions app's Celery tasks: thin wrappers that call services, so that a worker and a
test run the same code.
"""

from celery import shared_task  # noqa: F401
from django.conf import settings
from django.db import InterfaceError, OperationalError

from suppressions import feed, webhooks

# --- the change feed and outbound webhooks ----------------------------------------------------


@shared_task(
    name="suppressions.record_ended",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=30,
    max_retries=5,
)
def record_ended() -> int:
    """
    Daily: report the suppressions whose last day passed (safe to run twice), and send again
    the webhook deliveries whose retry was lost. Returns how many ends were recorded.
    """
    ended = feed.changes_record_ended()
    webhooks.deliveries_sweep()
    return ended


@shared_task(
    name="suppressions.webhook_deliver",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # the delivery counts its own attempts (DEBRIEF_WEBHOOK_MAX_ATTEMPTS)
)
def deliver_webhook(self, delivery_id: int) -> str:
    """Send one webhook delivery; on failure, try again later with backoff."""
    try:
        attempt = webhooks.delivery_attempt(delivery_id=delivery_id)
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=webhooks.backoff(self.request.retries + 1)) from exc
    if attempt.retry_in is not None and not in_process():
        raise self.retry(countdown=attempt.retry_in)
    return attempt.status


def in_process() -> bool:
    """The embedded default: eager tasks, no worker; a retry would run inline at once."""
    return settings.CELERY_TASK_ALWAYS_EAGER and deliver_webhook.app.conf.task_always_eager


def delivery_send(delivery_id: int) -> "webhooks.Attempt | None":
    """
    Hand a delivery to a worker; in the embedded default, try it here, once, and return how
    it went. A broker that refuses is logged: the daily run sends what is left waiting.
    """
    if in_process():
        return webhooks.delivery_attempt(delivery_id=delivery_id)
    try:
        deliver_webhook.apply_async(args=[delivery_id])
    except Exception as exc:
        webhooks.logger.warning(
            "Could not queue webhook delivery %s (%s)", delivery_id, type(exc).__name__
        )
    return None


# --- call-list jobs ----------------------------------------------------------------------------


@shared_task(
    name="suppressions.calllist_chunk",
    bind=True,
    acks_late=True,  # a chunk rewrites its own part file: a second delivery is harmless
    reject_on_worker_lost=True,
    max_retries=None,  # the chunk counts its own attempts (jobs.MAX_ATTEMPTS)
)
def calllist_chunk(self, chunk_id: int) -> str:
    """Check one chunk of a call-list job; after an error, wait and try it again."""
    from suppressions import jobs

    try:
        chunk = jobs.call_list_chunk_run(chunk_id=chunk_id)
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= 5:
            raise
        raise self.retry(exc=exc, countdown=5 * (self.request.retries + 1)) from exc
    if chunk is None:
        return "missing"
    if chunk.status == "queued" and chunk.error:  # an attempt failed; it has more
        raise self.retry(countdown=5 * chunk.attempts)
    if chunk.status == "running" and jobs.call_list_chunk_waits(chunk):
        # Another worker holds it, or held it and died: a message delivered again at once
        # (acks_late, reject_on_worker_lost) lands here. Come back once its heartbeat is stale,
        # to take it over then, or to find it done.
        raise self.retry(countdown=settings.DEBRIEF_CALLLIST_STALE_SECONDS + 5)
    return chunk.status


def calllist_chunks_send(chunk_ids: list[int]) -> None:
    """Queue a job's chunks at once (a group), so that every free worker takes one."""
    from celery import group

    group(calllist_chunk.si(pk) for pk in chunk_ids).apply_async()


def calllist_in_process() -> bool:
    """The embedded default: eager tasks and no worker, so chunks go to a local thread."""
    return settings.CELERY_TASK_ALWAYS_EAGER and calllist_chunk.app.conf.task_always_eager


@shared_task(
    name="suppressions.calllist_assemble",
    acks_late=True,  # the assembly writes a temporary file and renames it: a rerun is harmless
    reject_on_worker_lost=True,
)
def calllist_assemble(job_id: int) -> None:
    """Put a call-list job's checked parts together again (after a retry)."""
    from suppressions import jobs

    jobs.call_list_job_assemble(job_id=job_id)


@shared_task(name="suppressions.calllist_sweep")
def calllist_sweep() -> dict:
    """Delete expired call-list files, fail chunks whose worker went silent, finish the rest."""
    from suppressions import jobs

    return jobs.call_list_jobs_sweep()
