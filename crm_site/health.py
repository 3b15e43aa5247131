"""Liveness and readiness for load balancers, compose healthchecks and operators."""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _database_status() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the class name says which
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True, "vendor": connection.vendor}


def _broker_status() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "eager (tasks run in-process, no broker)"}
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True, "mode": "redis"}


@never_cache
@require_GET
def healthz(request):
    checks = {"database": _database_status(), "broker": _broker_status()}
    down = [name for name, status in checks.items() if not status["ok"]]
    body = {"status": "ok" if not down else "unavailable", "down": down, "checks": checks}
    return JsonResponse(body, status=503 if down else 200)
