"""The database itself keeps domains and e-mail addresses unique and lowercase."""

import pytest
from django.db import IntegrityError, transaction

from customers.models import Company, Contact, Region, Segment, SizeBand

pytestmark = pytest.mark.django_db


def company(**fields) -> Company:
    defaults = {
        "name": "Acme",
        "segment": Segment.SOFTWARE,
        "size_band": SizeBand.MID,
        "region": Region.UK,
    }
    return Company(**{**defaults, **fields})


def test_company_domain_is_unique_in_the_database():
    Company.objects.bulk_create([company(domain="acme.example")])
    with pytest.raises(IntegrityError), transaction.atomic():
        Company.objects.bulk_create([company(name="Acme again", domain="acme.example")])


def test_companies_without_a_domain_may_coexist():
    Company.objects.bulk_create([company(domain=""), company(name="Other", domain="")])
    assert Company.objects.filter(domain="").count() == 2


def test_company_domain_must_be_lowercase_in_the_database():
    # save() normalises; bulk_create and update() do not, so the constraint is the backstop.
    with pytest.raises(IntegrityError), transaction.atomic():
        Company.objects.bulk_create([company(domain="Acme.example")])


def test_company_save_normalises_the_domain():
    saved = company(domain="https://www.Acme.example/about")
    saved.save()
    assert saved.domain == "acme.example"


def test_contact_email_is_unique_per_company_in_the_database(acme):
    Contact.objects.create(company=acme, full_name="Ann", email="ann@acme.example")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(company=acme, full_name="Ann again", email="ANN@acme.example")


def test_same_email_may_appear_at_two_companies_and_blank_emails_repeat(acme):
    other = Company.objects.create(
        name="Other", domain="other.example", segment="retail", size_band="small", region="uk"
    )
    Contact.objects.create(company=acme, full_name="Ann", email="ann@shared.example")
    Contact.objects.create(company=other, full_name="Ann", email="ann@shared.example")
    Contact.objects.create(company=acme, full_name="Bo", email="")
    Contact.objects.create(company=acme, full_name="Cy", email="")
    assert Contact.objects.count() == 4


def test_contact_email_must_be_lowercase_in_the_database(acme):
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.bulk_create(
            [Contact(company=acme, full_name="Ann", email="Ann@acme.example")]
        )
