"""
schemathesis generates requests from the API's own OpenAPI document (/api/schema) and checks
every answer against it: no 5xx, the documented status codes and response shapes.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from accounts.tokens import api_token_create
from crm_site.wsgi import application  # noqa: E402  (Django is set up by pytest-django)
from tests.fuzz.test_every_url import NASTY

# Loaded through the app itself, as a client would: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema", application)


@pytest.fixture
def token(db):
    return api_token_create(name="schemathesis")[1]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """
    schemathesis calls the WSGI handler directly, which closes "old" database connections
    when a request ends, including the test's own (inside its transaction). Django's test
    client switches that off during requests; so does this.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db
def test_api_matches_its_openapi_document(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})


HOSTILE = [
    *NASTY,
    "\ud800",
    "\udfff@x.example",
    "a" * 100,
    "a" * 101,
    "a" * 254,
    "a" * 255,
    "x" * 100_000,
    "[" * 5_000,
]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["email", "phone", "company_domain", "product"])
def test_api_answers_hostile_strings_as_its_document_says(token, field):
    """The fuzzing's hostile strings in every field, each answer checked against the schema."""
    operation = schema["/api/suppressions/check"]["POST"]
    for value in HOSTILE:
        contact = {field: value}
        if field == "product":
            contact["email"] = "someone@x.example"
        case = operation.Case(body={"contacts": [contact]}, media_type="application/json")
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 400), (field, value[:40], response.status_code)
    deep = operation.Case(body={"contacts": [{"email": [[[["a@b.c"]]]]}]})
    response = deep.call_and_validate(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
