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
    _send_extra_parameters(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})


def _send_extra_parameters(case) -> None:
    """
    A negative case may add an unknown query parameter with an empty value (None, []), which
    the client then leaves out: the API received a valid request and answered 200, and
    schemathesis counted that as invalid data accepted (seen on GET /api/suppressions/changes
    as `?limit=1&since=0_0`). Such a parameter is sent with a value, as the case means it.
    """
    for name, value in list((case.query or {}).items()):
        if value is None or value == []:
            case.query[name] = "x"


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


@pytest.mark.django_db
def test_a_call_list_job_answers_as_its_document_says(token, django_capture_on_commit_callbacks):
    """Submit, poll, fetch and cancel a list through the document's operations, each answer
    checked against it (the generated cases above rarely find a job that exists)."""
    from suppressions.models import CallListJob
    from tests.suppressions.test_call_list_jobs import run_all

    headers = {"Authorization": f"Bearer {token}"}
    submit = schema["/api/suppressions/lists"]["POST"].Case(
        body="email,name\r\na@x.example,A\r\n=cmd,B\r\n", media_type="text/csv"
    )
    with django_capture_on_commit_callbacks(execute=False):
        submitted = submit.call_and_validate(headers=headers)
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    status = schema["/api/suppressions/lists/{id}"]["GET"]
    result = schema["/api/suppressions/lists/{id}/result"]["GET"]
    early = result.Case(path_parameters={"id": job_id}).call_and_validate(headers=headers)
    assert early.status_code == 409
    run_all(CallListJob.objects.get(pk=job_id))
    polled = status.Case(path_parameters={"id": job_id}).call_and_validate(headers=headers)
    assert polled.json()["status"] == "done"
    fetched = result.Case(path_parameters={"id": job_id}).call_and_validate(headers=headers)
    assert fetched.status_code == 200 and "'=cmd" in fetched.text
    cancel = schema["/api/suppressions/lists/{id}"]["DELETE"]
    refused = cancel.Case(path_parameters={"id": job_id}).call_and_validate(headers=headers)
    assert refused.status_code == 409
    for bad in ("", "name\r\nx\r\n", "email\r\n"):
        case = submit.operation.Case(body=bad, media_type="text/csv")
        with django_capture_on_commit_callbacks(execute=False):
            assert case.call_and_validate(headers=headers).status_code == 400
