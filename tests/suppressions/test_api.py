import json
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import ApiToken
from accounts.tokens import api_token_create, api_token_revoke
from suppressions import services as suppressions_services
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
    suppressions_services.do_not_contact_add(actor=rep, company=company, contact=dana, note="Asked")
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
    from tests.factories import ProductFactory
    from tests.reflections.conftest import lost_answers
    from tests.suppressions.test_suppression import closed

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
        (json.dumps({"contacts": [{"email": "a" * 255}]}), "at most 254"),
        (json.dumps({"contacts": [{"company_domain": "d" * 254}]}), "at most 253"),
        (json.dumps({"contacts": [{"email": "a@b.c", "product": "p" * 101}]}), "at most 100"),
        ('{"contacts": [[[[[[[[[["a@b.c"]]]]]]]]]]}', "nests too deeply"),
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
        "long-email",
        "long-domain",
        "long-product",
        "nesting-within-the-limit-of-the-parser",
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
def test_characters_that_are_not_text_are_refused_with_the_field_named(client, token, contact):
    """A NUL byte or a lone surrogate cannot be stored or matched: the call is refused."""
    response = post(client, json.dumps({"contacts": [contact]}), token, raw=True)
    assert response.status_code == 400
    assert "holds a NUL byte or a lone surrogate" in response.json()["error"]
    bad = next(k for k, v in contact.items() if "\u0000" in v or "\ud800" in v)
    assert response.json()["error"].startswith(f"contacts[0].{bad} ")


def test_get_is_405(client, token):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response.json()["error"] == "Use POST."


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, token):
    body = json.dumps({"contacts": [{"email": "a" * 2_500_000}]})
    with mock.patch("suppressions.api._parse") as parse:
        response = post(client, body, token, raw=True)
    assert response.status_code == 413
    assert "send at most" in response.json()["error"]
    parse.assert_not_called()


def test_a_huge_body_is_refused_before_anything_reads_it(client, token):
    body = json.dumps({"contacts": [{"email": "a" * 10_000_000}]})
    with mock.patch("suppressions.api._parse") as parse:
        response = post(client, body, token, raw=True)
    assert response.status_code == 413
    assert "at most 3 MB" in response.json()["error"]
    parse.assert_not_called()


def test_every_api_error_is_json_without_internals(client, token):
    nul = client.get(reverse("api_schema") + "?x=%00")
    assert nul.status_code == 400 and "NUL byte" in nul.json()["error"]
    missing = client.get("/api/no-such-endpoint")
    assert missing.status_code == 404 and "/api/schema" in missing.json()["error"]
    wrong = client.post(reverse("api_schema"))
    assert wrong.status_code == 405 and wrong.json()["error"] and "Allow" in wrong
    client.raise_request_exception = False
    with mock.patch("suppressions.api.decisions.check_many", side_effect=RuntimeError("boom")):
        crash = post(client, {"contacts": [{"email": "a@b.c"}]}, token)
    assert crash.status_code == 500
    assert crash["Content-Type"] == "application/json"
    assert "boom" not in crash.content.decode() and "Traceback" not in crash.content.decode()
    assert "nothing was changed" in crash.json()["error"]


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
