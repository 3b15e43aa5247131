import datetime

import pytest
import time_machine
from auditlog.models import LogEntry
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from suppressions import services as suppressions_services
from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db
LOGIN = reverse("login")


def attempt(client, email, password, ip="10.0.0.1"):
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_lock_that_email_from_that_address_with_a_cool_off(client, rep):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, rep.email, "wrong").status_code == 200
    assert attempt(client, rep.email, "wrong").status_code == 429  # the limit is reached
    # Now even the right password is refused, from this address.
    locked = attempt(client, rep.email, settings.DEBRIEF_DEMO_PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    # The same person from another address is not locked out: nobody can lock a colleague out.
    assert (
        attempt(client, rep.email, settings.DEBRIEF_DEMO_PASSWORD, ip="10.0.0.2").status_code == 302
    )
    client.logout()
    later = timezone.now() + settings.AXES_COOLOFF_TIME + datetime.timedelta(minutes=1)
    with time_machine.travel(later):
        assert attempt(client, rep.email, settings.DEBRIEF_DEMO_PASSWORD).status_code == 302


def test_lockout_counts_the_email_in_any_case(client, rep):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, rep.email.upper(), "wrong")
    assert attempt(client, rep.email, settings.DEBRIEF_DEMO_PASSWORD).status_code == 429


def test_pages_carry_a_strict_content_security_policy(rep_client):
    response = rep_client.get(reverse("opportunities:plan"))
    policy = response["Content-Security-Policy"]
    assert (
        "script-src 'self'" in policy
        and "unsafe-eval" not in policy.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert b"<script>" not in response.content  # every script is a static file


def test_security_headers_and_cookies_in_production_settings(client, settings):
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    response = client.get(LOGIN, secure=True)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.cookies["csrftoken"]["secure"]


def test_lifting_a_suppression_is_audited_with_its_actor(manager_client, manager, rep):
    company = CompanyFactory()
    dnc = suppressions_services.do_not_contact_add(
        actor=rep, company=company, contact=ContactFactory(company=company), note="Asked"
    )
    response = manager_client.post(
        reverse("suppressions:suppression_lift", args=[dnc.pk]), {"reason": "Called us back"}
    )
    assert response.status_code == 302
    entry = LogEntry.objects.get_for_object(dnc).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == manager
    assert "lift_reason" in entry.changes_dict


def test_audit_trail_is_visible_in_admin(admin_client_, rep):
    suppressions_services.do_not_contact_add(actor=rep, company=CompanyFactory(), note="Asked")
    response = admin_client_.get(reverse("admin:auditlog_logentry_changelist"))
    assert response.status_code == 200 and b"suppression" in response.content.lower()


def test_an_oversized_form_post_is_refused(rep_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = rep_client.post(reverse("opportunities:create"), {"title": "x" * 5000})
    assert response.status_code == 400
