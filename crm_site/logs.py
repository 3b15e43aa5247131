"""
Structured logs for requests and tasks: one line each, with ids and timings only.

No customer personal data goes into these lines: paths are logged as their URL pattern
(`/companies/<int:company_id>/`), never with a query string (searches and autocomplete
carry names), and people appear by id, never by e-mail or name.
"""

import logging
import time
import uuid

from celery.signals import task_failure, task_postrun, task_prerun, task_retry

request_log = logging.getLogger("debrief.request")
task_log = logging.getLogger("debrief.task")


class RequestLogMiddleware:
    """Logs every request once it is answered; adds an X-Request-ID to the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        request.request_id = request_id
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        user = getattr(request, "user", None)
        request_log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": f"/{match.route}" if match else "(unmatched)",
                "view": match.view_name if match else "",
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": user.pk if user is not None and user.is_authenticated else None,
                "htmx": bool(getattr(request, "htmx", False)),
            },
        )
        response["X-Request-ID"] = request_id
        return response


class ScrubRequestFilter(logging.Filter):
    """
    Django's own error lines (django.request, django.security) carry the request: its repr,
    and so the JSON line, would hold the full query string. Each such record keeps only the
    method and the route pattern, and a message that names a path loses its query string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "method"):
            match = getattr(request, "resolver_match", None)
            route = f"/{match.route}" if match else "(unmatched)"
            record.request = f"{request.method} {route}"
            record.request_id = getattr(request, "request_id", "")
            if record.args:
                record.args = tuple(
                    _without_query(a) if isinstance(a, str) else a for a in record.args
                )
            record.msg = _without_query(str(record.msg))
        return True


def _without_query(text: str) -> str:
    return text.split("?", 1)[0] if "?" in text else text


_task_started: dict[str, float] = {}


@task_prerun.connect
def _task_started_at(task_id=None, **kwargs):
    _task_started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_done(task_id=None, task=None, state=None, **kwargs):
    started = _task_started.pop(task_id, None)
    task_log.info(
        "task",
        extra={
            "task_id": task_id,
            "task": task.name if task else "",
            "state": state,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        },
    )


@task_retry.connect
def _task_retry(request=None, reason=None, **kwargs):
    task_log.warning(
        "task retry",
        extra={"task_id": getattr(request, "id", None), "reason": type(reason).__name__},
    )


@task_failure.connect
def _task_failed(task_id=None, sender=None, exception=None, **kwargs):
    task_log.error(
        "task failed",
        extra={
            "task_id": task_id,
            "task": sender.name if sender else "",
            "error": type(exception).__name__,
        },
    )
