"""
schemathesis generates requests from the API's own OpenAPI document (/api/schema) and checks
every answer against it: no 5xx, the documented status codes and response shapes.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from accounts.tokens import api_token_create
from crm_site.wsgi import application  # noqa: E402  (Django is set up by pytest-django)

# Loaded through the app itself, as a client would: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema", application)


@pytest.fixture
def token(db):
    return api_token_create(name="schemathesis")[1]


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db
def test_api_matches_its_openapi_document(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
