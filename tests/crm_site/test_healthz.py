from unittest import mock

import pytest
from django.db.utils import OperationalError

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_healthz_is_503_naming_a_dead_broker(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


def test_healthz_is_503_naming_a_dead_database(client):
    with mock.patch(
        "crm_site.health.connection.cursor", side_effect=OperationalError("connection refused")
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database"]
    # Anyone may ask: the answer names no exception, no vendor, no address.
    assert body["checks"]["database"] == {"ok": False}
    assert "OperationalError" not in response.content.decode()
    assert "refused" not in response.content.decode()


def test_healthz_needs_no_login_and_no_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301


@pytest.mark.needs_redis
def test_healthz_with_real_redis_is_ok_and_says_nothing_more(client):
    body = client.get("/healthz").json()
    assert body["checks"] == {"database": {"ok": True}, "broker": {"ok": True}}
