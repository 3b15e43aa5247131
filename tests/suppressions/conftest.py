import pytest

from tests.factories import CompanyFactory


@pytest.fixture
def acme(db):
    return CompanyFactory(name="Acme Analytics Ltd", domain="acme.example")
