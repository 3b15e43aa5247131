"""
Outbound webhooks, delivered to real HTTP receivers started by the tests (ThreadingHTTPServer
on 127.0.0.1): the receiver checks the signature with the endpoint's secret the way the guide
(docs/suppression-feed.md) tells integrators to; failures are retried with backoff and disable
the endpoint after DEBRIEF_WEBHOOK_DISABLE_AFTER in a row; the admin shows the secret once.
"""

import datetime
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from celery.exceptions import Retry
from django.urls import reverse
from django.utils import timezone

from suppressions import feed, tasks, webhooks
from suppressions import services as suppressions_services
from suppressions.models import (
    DeliveryStatus,
    SuppressionChange,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def receiver_verifies(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """What a receiver does (the guide's example, word for word)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class Receiver:
    """A real HTTP server in a thread: it checks each POST's signature with `secret` and
    answers `status` (401 for a bad signature), or hangs for `hang` seconds first."""

    def __init__(self):
        self.secret = ""
        self.status = 200
        self.script: list[int] = []  # answers for the next requests, then `status`
        self.hang = 0.0
        self.received: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                verified = receiver_verifies(
                    owner.secret, self.headers.get("Debrief-Signature", ""), body
                )
                owner.received.append(
                    {"body": body, "headers": dict(self.headers), "verified": verified}
                )
                if owner.hang:
                    time.sleep(owner.hang)
                status = (
                    (owner.script.pop(0) if owner.script else owner.status) if verified else 401
                )
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"refused: bad signature")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/debrief"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def endpoint(receiver):
    endpoint, secret = webhooks.webhook_endpoint_create(name="Dialler", url=receiver.url)
    receiver.secret = secret
    return endpoint


def dnc(manager, contact=None, capture=None):
    contact = contact or ContactFactory()
    with capture(execute=True):
        return suppressions_services.do_not_contact_add(
            actor=manager, company=contact.company, contact=contact, note="Asked"
        )


def test_a_change_is_delivered_signed_to_a_real_receiver(
    embedded_default, receiver, endpoint, manager, django_capture_on_commit_callbacks
):
    suppression = dnc(manager, capture=django_capture_on_commit_callbacks)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["verified"] is True
    change = SuppressionChange.objects.get(suppression=suppression)
    assert json.loads(got["body"]) == feed.event(change)
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["Debrief-Event"] == str(change.pk)
    assert endpoint.secret not in got["body"].decode()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None


def test_a_receiver_with_the_wrong_secret_refuses_the_delivery(
    embedded_default, receiver, endpoint, manager, django_capture_on_commit_callbacks
):
    receiver.secret = "whsec_not-the-one-debrief-signs-with"
    dnc(manager, capture=django_capture_on_commit_callbacks)
    assert receiver.received[0]["verified"] is False
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING  # tried again later
    assert delivery.last_status == 401
    assert "bad signature" in delivery.last_error


def test_signatures_reject_other_secrets_old_timestamps_and_changed_bodies():
    body = b'{"id":1}'
    now = int(time.time())
    header = webhooks.signature_header("whsec_a", body, timestamp=now)
    assert webhooks.verify("whsec_a", header, body)
    assert receiver_verifies("whsec_a", header, body)
    assert not webhooks.verify("whsec_b", header, body)
    assert not webhooks.verify("whsec_a", header, b'{"id":2}')
    stale = webhooks.signature_header("whsec_a", body, timestamp=now - 301)
    assert not webhooks.verify("whsec_a", stale, body)
    assert not receiver_verifies("whsec_a", stale, body)
    for broken in ["", "t=abc,v1=00", "v1=00", "t=1"]:
        assert not webhooks.verify("whsec_a", broken, body)


def test_failures_back_off_then_disable_the_endpoint_and_enabling_sends_what_waited(
    receiver, endpoint, manager, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """A receiver answering 500: each attempt waits twice as long as the one before; the
    8th failure in a row disables the endpoint with the reason; enabling sends again."""
    settings.DEBRIEF_WEBHOOK_DISABLE_AFTER = 8
    receiver.status = 500
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        suppressions_services.do_not_contact_add(
            actor=manager, company=ContactFactory().company, note="Asked"
        )
        [delivery_id] = _dispatched()
    waits, now = [], start
    for _ in range(8):
        with time_machine.travel(now, tick=False):
            attempt = webhooks.delivery_attempt(delivery_id=delivery_id)
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        if attempt.retry_in is not None:
            waits.append(attempt.retry_in)
            assert delivery.next_attempt_at == now + datetime.timedelta(seconds=attempt.retry_in)
            # Not before its time: a message that arrives early sends nothing.
            with time_machine.travel(now + datetime.timedelta(seconds=10), tick=False):
                if attempt.retry_in > 15:
                    assert webhooks.delivery_attempt(delivery_id=delivery_id).status == "skipped"
            now = delivery.next_attempt_at
    assert waits == [30, 60, 120, 240, 480, 960, 1800]
    assert len(receiver.received) == 8
    endpoint.refresh_from_db()
    assert endpoint.active is False
    assert endpoint.consecutive_failures == 8
    assert "8 failed deliveries in a row" in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason
    # Disabled: nothing more is sent, and the delivery waits.
    with time_machine.travel(now + datetime.timedelta(hours=2), tick=False):
        assert webhooks.delivery_attempt(delivery_id=delivery_id).status == "skipped"
    assert WebhookDelivery.objects.get(pk=delivery_id).status == DeliveryStatus.PENDING
    receiver.status = 200
    sent = []
    monkeypatch.setattr(tasks, "delivery_send", sent.append)  # a worker would get it
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.webhook_endpoint_enable(endpoint=endpoint) == 1
    assert sent == [delivery_id]
    assert webhooks.delivery_attempt(delivery_id=delivery_id).status == DeliveryStatus.DELIVERED
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.consecutive_failures, endpoint.disabled_reason) == (
        True,
        0,
        "",
    )


def test_a_delivery_is_given_up_after_its_last_attempt(receiver, endpoint, manager, settings):
    settings.DEBRIEF_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.status = 503
    suppressions_services.do_not_contact_add(
        actor=manager, company=ContactFactory().company, note="Asked"
    )
    [delivery_id] = _dispatched()
    assert webhooks.delivery_attempt(delivery_id=delivery_id).retry_in == 30
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())
    assert webhooks.delivery_attempt(delivery_id=delivery_id).status == DeliveryStatus.FAILED
    assert WebhookDelivery.objects.get(pk=delivery_id).status == DeliveryStatus.FAILED


def _dispatched() -> list[int]:
    """Deliveries for every change, as the commit would make them, without sending."""
    original = tasks.delivery_send
    tasks.delivery_send = lambda delivery_id: None
    try:
        return webhooks.changes_dispatch(
            list(SuppressionChange.objects.values_list("pk", flat=True))
        )
    finally:
        tasks.delivery_send = original


def test_a_worker_retries_a_failed_delivery_through_celery(
    receiver, endpoint, manager, monkeypatch
):
    receiver.status = 500
    suppressions_services.do_not_contact_add(
        actor=manager, company=ContactFactory().company, note="Asked"
    )
    [delivery_id] = _dispatched()
    monkeypatch.setattr(tasks, "in_process", lambda: False)
    with pytest.raises(Retry) as retry:
        tasks.deliver_webhook.apply(args=[delivery_id], throw=True)
    assert retry.value.when == 30
    assert WebhookDelivery.objects.get(pk=delivery_id).attempts == 1


def test_inline_a_failing_endpoint_costs_one_attempt_per_commit(
    embedded_default, receiver, endpoint, manager, settings, django_capture_on_commit_callbacks
):
    """The embedded default sends right after the commit, with a short timeout, and never
    retries there: a hanging receiver holds the close up once, not once per change."""
    settings.DEBRIEF_WEBHOOK_TIMEOUT_SECONDS = 0.2
    receiver.hang = 1
    with django_capture_on_commit_callbacks(execute=True):
        suppressions_services.do_not_contact_add_many(
            actor=manager, contacts=ContactFactory.create_batch(3), note="List"
        )
    assert len(receiver.received) == 1
    deliveries = list(WebhookDelivery.objects.order_by("pk"))
    assert [d.attempts for d in deliveries] == [1, 0, 0]
    assert all(d.status == DeliveryStatus.PENDING for d in deliveries)
    assert "timed out" in deliveries[0].last_error


def test_redirects_and_refused_connections_are_failures(
    embedded_default, receiver, endpoint, manager, django_capture_on_commit_callbacks
):
    receiver.status = 302
    dnc(manager, capture=django_capture_on_commit_callbacks)
    assert WebhookDelivery.objects.get().last_status == 302
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    WebhookEndpoint.objects.update(url=f"http://127.0.0.1:{port}/hooks")
    WebhookDelivery.objects.all().delete()
    dnc(manager, capture=django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_status is None
    assert "refused" in delivery.last_error.lower()


def test_the_daily_run_sends_again_what_a_lost_retry_left(
    embedded_default, receiver, endpoint, manager
):
    suppressions_services.do_not_contact_add(
        actor=manager, company=ContactFactory().company, note="Asked"
    )
    [delivery_id] = _dispatched()
    later = timezone.now() + datetime.timedelta(minutes=11)
    with time_machine.travel(later, tick=False):
        tasks.record_ended.apply()
    assert WebhookDelivery.objects.get(pk=delivery_id).status == DeliveryStatus.DELIVERED
    assert receiver.received[0]["verified"]


# --- the admin ---------------------------------------------------------------------------------


def test_the_admin_shows_the_secret_once_on_creation(admin_client_, receiver):
    response = admin_client_.post(
        reverse("admin:suppressions_webhookendpoint_add"),
        {"name": "Marketing DB", "url": receiver.url},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    page = admin_client_.get(
        reverse("admin:suppressions_webhookendpoint_change", args=[endpoint.pk])
    )
    assert endpoint.secret not in page.content.decode()
    assert endpoint.secret[:10] in page.content.decode()


@pytest.mark.parametrize(
    "url",
    ["ftp://files.example/hook", "javascript:alert(1)", "file:///etc/passwd", "not a url", ""],
)
def test_the_admin_takes_only_http_and_https_urls(admin_client_, url):
    response = admin_client_.post(
        reverse("admin:suppressions_webhookendpoint_add"), {"name": "Bad", "url": url}
    )
    assert response.status_code == 200  # the form again, with the error
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_enables_a_disabled_endpoint(admin_client_, endpoint):
    webhooks.webhook_endpoint_disable(endpoint=endpoint, reason="Receiver moved")
    admin_client_.post(
        reverse("admin:suppressions_webhookendpoint_changelist"),
        {"action": "enable", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.disabled_at is None


def test_the_delivery_and_change_logs_are_read_only(admin_client_, endpoint, manager):
    suppressions_services.do_not_contact_add(
        actor=manager, company=ContactFactory().company, note="Asked"
    )
    _dispatched()
    for model in ("webhookdelivery", "suppressionchange"):
        changelist = reverse(f"admin:suppressions_{model}_changelist")
        assert admin_client_.get(changelist).status_code == 200
        assert admin_client_.get(reverse(f"admin:suppressions_{model}_add")).status_code == 403
    filtered = admin_client_.get(
        reverse("admin:suppressions_webhookdelivery_changelist"),
        {"status__exact": "pending", "endpoint__id__exact": endpoint.pk},
    )
    assert filtered.status_code == 200
    assert "1 webhook delivery" in filtered.content.decode()


def test_a_disabled_endpoint_holds_later_changes_until_enabled(
    embedded_default, receiver, endpoint, manager, django_capture_on_commit_callbacks
):
    webhooks.webhook_endpoint_disable(endpoint=endpoint, reason="Receiver moving")
    dnc(manager, capture=django_capture_on_commit_callbacks)
    assert receiver.received == []
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.webhook_endpoint_enable(endpoint=endpoint) == 1
    assert [r["verified"] for r in receiver.received] == [True]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


@pytest.mark.needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_through_the_broker_and_retries_after_a_failure(
    receiver, manager, monkeypatch
):
    """The whole path with workers: commit, the broker, a real worker, a 500 answered with a
    retry (its backoff shortened here), then the delivery."""
    from celery.contrib.testing.worker import start_worker

    from crm_site.celery import app

    assert not tasks.in_process()
    monkeypatch.setattr(webhooks, "BACKOFF_FIRST_SECONDS", 1)
    endpoint, receiver.secret = webhooks.webhook_endpoint_create(name="Dialler", url=receiver.url)
    receiver.script = [500]  # down for the first attempt, then back
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        suppressions_services.do_not_contact_add(
            actor=manager, company=ContactFactory().company, note="Asked"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            delivery = WebhookDelivery.objects.get()
            if delivery.status == DeliveryStatus.DELIVERED:
                break
            time.sleep(0.1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert (delivery.attempts, delivery.last_status) == (2, 200)
    assert [r["verified"] for r in receiver.received] == [True, True]
