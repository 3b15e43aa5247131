import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in to Debrief" in response.content
    assert b"csrfmiddlewaretoken" in response.content


@pytest.mark.smoke
def test_login_asks_for_an_email_address(client):
    field = client.get(reverse("login")).context["form"]["username"]
    html = str(field)
    assert field.label == "E-mail"
    assert 'type="email"' in html and 'autocomplete="username"' in html


@pytest.mark.smoke
def test_login_by_email_is_case_insensitive(client, rep):
    response = client.post(
        reverse("login"),
        {"username": "RILEY@example.com", "password": settings.DEBRIEF_DEMO_PASSWORD},
    )
    assert response.status_code == 302
    assert response.url == reverse("home")


def test_wrong_password_shows_a_clear_error(client, rep):
    response = client.post(reverse("login"), {"username": rep.email, "password": "nope"})
    assert response.status_code == 200
    assert b"enter a correct" in response.content.lower()


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_logout_is_post_only_and_works(rep_client):
    assert rep_client.get(reverse("logout")).status_code == 405
    response = rep_client.post(reverse("logout"))
    assert response.status_code == 302
    assert rep_client.get(reverse("home")).status_code == 302


def test_password_change(rep_client, rep):
    response = rep_client.post(
        reverse("password_change"),
        {
            "old_password": settings.DEBRIEF_DEMO_PASSWORD,
            "new_password1": "brand-new-secret-77",
            "new_password2": "brand-new-secret-77",
        },
    )
    assert response.status_code == 302
    rep.refresh_from_db()
    assert rep.check_password("brand-new-secret-77")


def test_password_change_rejects_weak_password(rep_client, rep):
    response = rep_client.post(
        reverse("password_change"),
        {
            "old_password": settings.DEBRIEF_DEMO_PASSWORD,
            "new_password1": "12345",
            "new_password2": "12345",
        },
    )
    assert response.status_code == 200
    rep.refresh_from_db()
    assert rep.check_password(settings.DEBRIEF_DEMO_PASSWORD)


def test_password_reset_round_trip(client, rep):
    response = client.post(reverse("password_reset"), {"email": "riley@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    link = next(line for line in body.splitlines() if "/password/reset/" in line)
    path = link.split("testserver", 1)[1]
    response = client.get(path, follow=True)
    assert response.status_code == 200 and response.context["validlink"]
    response = client.post(
        response.redirect_chain[-1][0],
        {"new_password1": "reset-to-this-one-42", "new_password2": "reset-to-this-one-42"},
    )
    assert response.status_code == 302
    assert User.objects.get(pk=rep.pk).check_password("reset-to-this-one-42")


def test_password_reset_for_unknown_address_sends_nothing_but_looks_the_same(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_email_is_unique_regardless_of_case(rep):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("Riley@Example.com".upper(), "x")


def test_create_superuser_is_an_admin():
    user = User.objects.create_superuser("root@example.com", "pw-unusual-123", full_name="Root")
    assert user.is_admin and user.is_staff and user.is_superuser


def test_base_layout_sends_csrf_on_htmx_requests_and_serves_htmx_locally(rep_client):
    content = rep_client.get(reverse("home"), follow=True).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in content
    assert "/static/vendor/htmx-" in content
    assert "https://" not in content.split("<body")[0]
