"""The edge rule: a NUL byte in a query string or a form answers 400 before any view runs."""

import pytest
from django.urls import reverse

from opportunities.models import Opportunity
from tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url, params",
    [
        ("opportunities:company_autocomplete", {"q": "\x00"}),
        ("opportunities:pipeline", {"q": "a\x00b"}),
        ("opportunities:pipeline", {"stage\x00": "x"}),
        ("customers:company_list", {"q": "\x00"}),
        ("insights:dashboard", {"scope": "org\x00"}),
        ("insights:my_reflections", {"q": "\x00"}),
    ],
)
def test_a_nul_byte_in_a_query_string_answers_400(rep_client, url, params):
    response = rep_client.get(reverse(url), params)
    assert response.status_code == 400
    assert "NUL byte" in response.content.decode()


def test_a_nul_byte_in_a_form_answers_400_and_saves_nothing(rep_client, rep):
    company = CompanyFactory()
    before = Opportunity.objects.count()
    response = rep_client.post(
        reverse("opportunities:create"),
        {"company": company.pk, "title": "Deal\x00", "amount": "100", "owner": rep.pk},
    )
    assert response.status_code == 400
    assert Opportunity.objects.count() == before


def test_an_anonymous_login_with_a_nul_byte_answers_400(client):
    response = client.post(reverse("login"), {"username": "a\x00@b.c", "password": "x"})
    assert response.status_code == 400


def test_plain_text_passes(rep_client):
    assert rep_client.get(reverse("opportunities:pipeline"), {"q": "Acme é ü"}).status_code == 200


def test_an_overlong_login_name_is_a_failed_login_not_an_error(client):
    """The lockout records at most 254 characters (its column holds 255)."""
    from axes.models import AccessAttempt

    response = client.post(reverse("login"), {"username": "a" * 300 + "@b.c", "password": "x"})
    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password." in response.content.decode()
    (attempt,) = AccessAttempt.objects.all()
    assert attempt.username == "a" * 254


@pytest.mark.parametrize("value", ["²", "١٢", "-1", "0", "1e3", " 7"])
def test_ids_in_query_strings_are_ascii_digits_or_nothing(rep_client, value):
    """ "²" passes str.isdigit() but not int(): such a value is no id, not an error."""
    response = rep_client.get(reverse("suppressions:pitch_status"), {"company": value})
    assert response.status_code == 200


@pytest.mark.parametrize("raw", ["%FF", "%ED%A0%80", "%C0%AF", "%E2%82"])
def test_bytes_that_are_not_utf8_answer_400(rep_client, rep, raw):
    """A lone surrogate or a stray byte is refused, not quietly turned into U+FFFD."""
    response = rep_client.get(reverse("opportunities:pipeline") + f"?q=a{raw}b")
    assert response.status_code == 400
    assert "not UTF-8 text" in response.content.decode()
    company = CompanyFactory()
    before = Opportunity.objects.count()
    response = rep_client.post(
        reverse("opportunities:create"),
        data=f"company={company.pk}&title=Deal{raw}&amount=100&owner={rep.pk}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert Opportunity.objects.count() == before


def test_text_in_other_scripts_is_text(rep_client):
    response = rep_client.get(reverse("opportunities:pipeline"), {"q": "Zoë 東京 😀 ١٢٣"})
    assert response.status_code == 200
