import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import ApiToken
from accounts.tokens import api_token_create, api_token_revoke
from customers import suppression
from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db
URL = reverse("api_suppression_check")


@pytest.fixture
def token(db):
    return api_token_create(name="Dialler")[1]


def post(client, body, token=None, raw=False):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if raw else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **headers)


@pytest.mark.smoke
def test_results_come_back_in_order(client, token, rep):
    company = CompanyFactory(domain="brightwater.example")
    dana = ContactFactory(company=company, email="dana@brightwater.example")
    suppression.do_not_contact_add(actor=rep, company=company, contact=dana, note="Asked")
    body = {
        "contacts": [
            {"email": "nobody@else.example"},
            {"email": " Dana@BrightWater.example ", "product": "Anything"},
            {"company_domain": "https://www.brightwater.example/about"},
        ]
    }
    response = post(client, body, token)
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0] == {"suppressed": False, "reason": None, "until": None}
    assert results[1]["suppressed"] is True and "do-not-contact" in results[1]["reason"]
    assert results[1]["until"] is None
    # The DNC is on Dana only, not the whole company.
    assert results[2]["suppressed"] is False


def test_until_is_an_iso_date(client, token, rep, lost_set):
    from reflections.models import Outcome
    from tests.customers.test_suppression import closed
    from tests.factories import ProductFactory
    from tests.reflections.conftest import lost_answers

    company = CompanyFactory()
    contact = ContactFactory(company=company, email="x@acme.example")
    product = ProductFactory(name="Card Terminal")
    deal = closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    response = post(
        client, {"contacts": [{"email": "x@acme.example", "product": "Card terminal"}]}, token
    )
    result = response.json()["results"][0]
    import datetime

    assert result["until"] == (deal.closed_date + datetime.timedelta(days=89)).isoformat()


@pytest.mark.parametrize("header", [None, "Bearer nope", "Token abc", "Bearer dbf_1234_wrong"])
def test_missing_or_bad_token_is_401(client, token, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post(
        URL,
        data=json.dumps({"contacts": [{"email": "a@b.c"}]}),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "token" in response.json()["error"]


def test_revoked_token_is_401(client):
    record, plain = api_token_create(name="Old")
    api_token_revoke(token=record)
    assert post(client, {"contacts": [{"email": "a@b.c"}]}, plain).status_code == 401


@pytest.mark.parametrize(
    "body, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", '"contacts" list'),
        ('{"contacts": []}', "is empty"),
        (json.dumps({"contacts": [{"email": "a@b.c"}] * 1001}), "at most 1000"),
        ('{"contacts": [{"name": "x"}]}', "unknown fields"),
        ('{"contacts": [{"email": 5}]}', "must be a string"),
        ('{"contacts": [{"product": "X"}]}', "needs at least one of"),
        ('{"contacts": ["a@b.c"]}', "must be an object"),
        ("[" * 100_000, "nests too deeply"),
        (json.dumps({"contacts": [{"email": "a" * 10_000_000}]}), "at most 320"),
    ],
    ids=[
        "bad-json",
        "not-object",
        "empty",
        "too-many",
        "unknown-field",
        "wrong-type",
        "no-key",
        "not-item",
        "deep-nesting",
        "ten-megabyte-email",
    ],
)
def test_bad_requests_are_400_with_a_message(client, token, body, message):
    response = post(client, body, token, raw=True)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "contact",
    [
        {"email": "\u0000@x.example"},
        {"company_domain": "x\u0000.example"},
        {"phone": "+44 20 \u0000"},
        {"email": "\ud800@x.example"},
        {"email": "a@x.example", "product": "\u0000"},
    ],
    ids=["nul-in-email", "nul-in-domain", "nul-in-phone", "lone-surrogate", "nul-in-product"],
)
def test_characters_no_contact_holds_match_nothing(client, token, contact):
    """A NUL byte or a lone surrogate cannot be stored, so it can match no suppression."""
    response = post(client, json.dumps({"contacts": [contact]}), token, raw=True)
    assert response.status_code == 200
    assert response.json() == {"results": [{"suppressed": False, "reason": None, "until": None}]}


def test_get_is_405(client, token):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


def test_create_api_token_prints_it_once_and_stores_only_a_hash(capsys):
    call_command("create_api_token", "Marketing dialler")
    plain = capsys.readouterr().out.strip().splitlines()[-1]
    record = ApiToken.objects.get(name="Marketing dialler")
    assert plain.startswith(f"dbf_{record.prefix}_")
    assert plain not in record.key_hash and len(record.key_hash) == 64


def test_schema_is_openapi(client):
    schema = client.get(reverse("api_schema")).json()
    assert schema["openapi"].startswith("3.")
    assert "/api/suppressions/check" in schema["paths"]
