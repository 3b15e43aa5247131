import pytest

from tests.factories import CompanyFactory, ContactFactory


@pytest.fixture
def acme(db):
    return CompanyFactory(name="Acme Analytics Ltd", domain="acme.example")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    """Call-list jobs store their files under MEDIA_ROOT: a fresh folder for each test."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def blocked(rep, db):
    """Dana at Brightwater is on the do-not-contact list (the call-list tests' suppressed row)."""
    from suppressions import services

    company = CompanyFactory(name="Brightwater", domain="brightwater.example")
    dana = ContactFactory(
        company=company, full_name="Dana", email="dana@brightwater.example", phone="020 7946 0018"
    )
    services.do_not_contact_add(actor=rep, company=company, contact=dana, note="Asked")
    return dana
