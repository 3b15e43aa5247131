"""
Liveness and readiness for load balancers, compose healthchecks and operators. Anyone may ask,
so the answer says only what is up or down; why is in the log (with the exception), never in
the answer.
"""

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("debrief.health")


def _database_status() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any driver error means "down"
        logger.warning("healthz: the database is unreachable", exc_info=True)
        return {"ok": False}
    return {"ok": True}


def _broker_status() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True}
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
    except redis.RedisError:
        logger.warning("healthz: the broker is unreachable", exc_info=True)
        return {"ok": False}
    return {"ok": True}


@never_cache
@require_GET
def healthz(request):
    checks = {"database": _database_status(), "broker": _broker_status()}
    down = [name for name, status in checks.items() if not status["ok"]]
    body = {"status": "ok" if not down else "unavailable", "down": down, "checks": checks}
    return JsonResponse(body, status=503 if down else 200)
