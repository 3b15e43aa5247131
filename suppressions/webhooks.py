"""
Outbound webhooks: each suppression change (feed.py) is POSTed as JSON to every active
WebhookEndpoint, signed with the endpoint's secret.

- Signature: header `Debrief-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
  "<t>.<body>")>`; receivers check it with the secret and refuse a timestamp more than
  TOLERANCE_SECONDS away from their clock (verify() below is the reference; the guide,
  docs/suppression-feed.md, has the same in a few lines for receivers).
- Delivery: after the change commits, a WebhookDelivery per endpoint and change, sent by the
  Celery task `suppressions.webhook_deliver`. Any answer but a 2xx (redirects included), a
  timeout or a refused connection is a failure: the task tries again after 30 s, 1, 2, 4, 8,
  16 minutes, then every 30 minutes, up to DEBRIEF_WEBHOOK_MAX_ATTEMPTS attempts, after which
  the delivery is given up (the pull feed still has the change).
- Disabling: DEBRIEF_WEBHOOK_DISABLE_AFTER failed attempts in a row (any deliveries) disable
  the endpoint, with the reason; its waiting deliveries, and those of later changes, are
  held. Enabling it again in the admin sends them.
- The embedded default (eager tasks, no worker): each delivery is tried once, right after
  the commit, with the short DEBRIEF_WEBHOOK_TIMEOUT_SECONDS; an endpoint that fails is not
  tried again in the same commit, and nothing is retried inline (a retry would hold up the
  close). What failed waits, as pending, for the daily run or the admin's "Send again".
"""

import dataclasses
import datetime
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from suppressions import feed
from suppressions.models import (
    DeliveryStatus,
    SuppressionChange,
    WebhookDelivery,
    WebhookEndpoint,
    _webhook_secret,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Debrief-Signature"
TOLERANCE_SECONDS = 300
BACKOFF_FIRST_SECONDS = 30
# Below the broker's visibility timeout (one hour), so that a retry waiting in Redis is not
# handed out twice.
BACKOFF_MAX_SECONDS = 1800
# A pending delivery whose next attempt is this much overdue was lost (broker down, worker
# killed); the daily run sends it again.
LOST_AFTER = 10 * 60
ERROR_EXCERPT = 500


# --- signing -----------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = TOLERANCE_SECONDS, now=None
) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), parts.get("v1", ""))


def body_of(change: SuppressionChange) -> bytes:
    return json.dumps(feed.event(change), separators=(",", ":")).encode()


# --- endpoints ---------------------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_create(*, name: str, url: str) -> tuple[WebhookEndpoint, str]:
    """A new active endpoint and its secret (shown once by the admin)."""
    endpoint = WebhookEndpoint(name=name.strip(), url=url.strip())
    endpoint.full_clean()
    endpoint.save()
    return endpoint, endpoint.secret


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret; deliveries are signed with it from now on."""
    secret = _webhook_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret)
    return secret


@transaction.atomic
def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> bool:
    """Stop sending to it (its waiting deliveries are held). False if it was disabled."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why the endpoint is disabled.")
    return bool(
        WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
            active=False, disabled_at=timezone.now(), disabled_reason=reason[:500]
        )
    )


@transaction.atomic
def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> int:
    """
    Send to it again, its failure count reset; the deliveries it held are sent after the
    commit. Returns how many.
    """
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=True, consecutive_failures=0, disabled_at=None, disabled_reason=""
    )
    held = list(
        WebhookDelivery.objects.filter(
            endpoint=endpoint, status=DeliveryStatus.PENDING
        ).values_list("pk", flat=True)
    )
    WebhookDelivery.objects.filter(pk__in=held).update(next_attempt_at=timezone.now())
    transaction.on_commit(lambda: _send_all(held))
    return len(held)


# --- delivering --------------------------------------------------------------------------------


def changes_dispatch(change_ids: list[int]) -> list[int]:
    """
    After the changes committed: one delivery per endpoint and change; those of active
    endpoints are handed to the delivery task, those of disabled ones are held until the
    endpoint is enabled again (delete an endpoint to stop recording for it). Returns the
    deliveries' ids. With no endpoint this is one query.
    """
    endpoints = dict(WebhookEndpoint.objects.values_list("pk", "active"))
    if not endpoints or not change_ids:
        return []
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint_id=endpoint, change_id=change)
        for change in sorted(change_ids)
        for endpoint in endpoints
    )
    _send_all(d.pk for d in deliveries if endpoints[d.endpoint_id])
    return [d.pk for d in deliveries]


def _send_all(delivery_ids: Iterable[int]) -> None:
    from suppressions import tasks  # tasks call this module; it hands work back to them

    ids = list(delivery_ids)
    if not ids:
        return
    failed_here: set[int] = set()
    endpoint_of = dict(WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", "endpoint_id"))
    for delivery_id in sorted(endpoint_of):
        if endpoint_of[delivery_id] in failed_here:
            continue  # inline: one timeout per endpoint and commit is enough
        attempt = tasks.delivery_send(delivery_id)
        if attempt is not None and attempt.status != DeliveryStatus.DELIVERED:
            failed_here.add(endpoint_of[delivery_id])


@dataclasses.dataclass(frozen=True)
class Attempt:
    status: str  # a DeliveryStatus, or "skipped" when it was not this call's to send
    retry_in: int | None = None  # seconds, when it should be tried again


def backoff(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th failed attempt: 30 s doubling, at most 30 min."""
    return min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an answer like any other non-2xx: a failure


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """(HTTP status or None, error text or '') of one POST."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=settings.DEBRIEF_WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        excerpt = exc.read(300).decode("utf-8", "replace") if exc.fp else ""
        return exc.code, f"HTTP {exc.code} {exc.reason}: {excerpt}".strip(": ")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return None, f"{type(exc).__name__}: {reason}"


def delivery_attempt(*, delivery_id: int) -> Attempt:
    """
    Send one delivery once, if it is still waiting, its endpoint active and its time come;
    record the outcome on it and on its endpoint. Safe to call twice at once: the first call
    claims it (moves its next attempt past the timeout), the second finds nothing to do.
    """
    now = timezone.now()
    lease = now + datetime.timedelta(seconds=settings.DEBRIEF_WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        endpoint__active=True,
        # A retry sent with a countdown may arrive a moment early.
        next_attempt_at__lte=now + datetime.timedelta(seconds=5),
    ).update(next_attempt_at=lease, attempts=F("attempts") + 1)
    if not claimed:
        return Attempt("skipped")
    delivery = WebhookDelivery.objects.select_related("endpoint", "change").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = body_of(delivery.change)
    status, error = _post(
        endpoint.url,
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": "Debrief-Webhooks/1",
            SIGNATURE_HEADER: signature_header(endpoint.secret, body),
            "Debrief-Delivery": str(delivery.pk),
            "Debrief-Event": str(delivery.change_id),
        },
    )
    if status is not None and 200 <= status < 300:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.DELIVERED,
            delivered_at=timezone.now(),
            last_status=status,
            last_error="",
        )
        WebhookEndpoint.objects.filter(pk=endpoint.pk, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
        return Attempt(DeliveryStatus.DELIVERED)
    return _failed(delivery, status, error or f"HTTP {status}")


@transaction.atomic
def _failed(delivery: WebhookDelivery, status: int | None, error: str) -> Attempt:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    endpoint.consecutive_failures += 1
    fields = ["consecutive_failures"]
    if endpoint.active and endpoint.consecutive_failures >= settings.DEBRIEF_WEBHOOK_DISABLE_AFTER:
        endpoint.active = False
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = (
            f"Disabled after {endpoint.consecutive_failures} failed deliveries in a row. "
            f"The last, of change {delivery.change_id}: {error}"
        )[:500]
        fields += ["active", "disabled_at", "disabled_reason"]
        logger.warning("Webhook endpoint %s disabled after repeated failures", endpoint.pk)
    endpoint.save(update_fields=fields)
    gave_up = delivery.attempts >= settings.DEBRIEF_WEBHOOK_MAX_ATTEMPTS
    wait = backoff(delivery.attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED if gave_up else DeliveryStatus.PENDING,
        last_status=status,
        last_error=error[:ERROR_EXCERPT],
        next_attempt_at=timezone.now() + datetime.timedelta(seconds=wait),
    )
    if gave_up or not endpoint.active:
        return Attempt(DeliveryStatus.FAILED if gave_up else DeliveryStatus.PENDING)
    return Attempt(DeliveryStatus.PENDING, retry_in=wait)


def deliveries_resend(*, delivery_ids: Iterable[int]) -> int:
    """The admin's "Send again": given-up or waiting deliveries of active endpoints, now."""
    ids = list(
        WebhookDelivery.objects.filter(pk__in=list(delivery_ids), endpoint__active=True)
        .exclude(status=DeliveryStatus.DELIVERED)
        .values_list("pk", flat=True)
    )
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
    )
    _send_all(ids)
    return len(ids)


def deliveries_sweep() -> int:
    """Send again the waiting deliveries of active endpoints whose retry was lost."""
    overdue = timezone.now() - datetime.timedelta(seconds=LOST_AFTER)
    ids = list(
        WebhookDelivery.objects.filter(
            Q(next_attempt_at__lt=overdue),
            status=DeliveryStatus.PENDING,
            endpoint__active=True,
        ).values_list("pk", flat=True)
    )
    _send_all(ids)
    return len(ids)
