"""
Celery tasks for buyer surveys: thin, they take ids and call services. Sending is safe to run
twice (only a request still "requested" is sent, under a row lock), so it is acknowledged late
and retried with backoff on transient SMTP, network and database errors.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from surveys import services

MAX_RETRIES = 6


@shared_task(
    name="surveys.send",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def send_survey(self, request_id: int) -> str:
    """E-mail one requested survey; after the last retry the request is marked failed."""
    try:
        return services.survey_send(request_id=request_id)
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    except Exception as exc:
        if not services.is_transient(exc):
            raise
        if self.request.retries >= self.max_retries:
            services.survey_send_failed(request_id=request_id, note=str(exc) or type(exc).__name__)
            return "failed"
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


def _backoff(retries: int) -> int:
    # 30 s, 1, 2, 4, 8, 16 minutes: a mail server that is down for a while still gets it.
    return min(30 * 2**retries, 3600)
