"""
Every write to customer records. Each function is one transaction and raises ValidationError
(keyed by field name, so a form can show it next to the field) before anything is saved.

Uniqueness is checked up front for a clear message, and again by the database constraint: two
people saving the same domain at the same moment get the same message, not a server error.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from customers.models import Company, Contact
from customers.normalize import normalize_domain, normalize_email


def domain_taken_message(owner: Company) -> str:
    return (
        f"{owner.name} already uses the domain {owner.domain}. "
        "Open that company instead of adding it twice, or correct the domain."
    )


def email_taken_message(contact: Contact) -> str:
    return (
        f"{contact.full_name} at this company already has the e-mail address {contact.email}, "
        "so this person is probably listed already. If not, use a different address."
    )


def _check_domain_free(domain: str, *, exclude_pk: int | None = None) -> None:
    if not domain:
        return
    clash = Company.objects.filter(domain=domain).exclude(pk=exclude_pk).first()
    if clash is not None:
        raise ValidationError({"domain": domain_taken_message(clash)}, code="unique")


def _check_email_free(company: Company, email: str) -> None:
    if not email:
        return
    clash = Contact.objects.filter(company=company, email=email).first()
    if clash is not None:
        raise ValidationError({"email": email_taken_message(clash)}, code="unique")


def _save_company(company: Company) -> Company:
    company.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            company.save()
    except IntegrityError as exc:
        # Lost a race with another save of the same domain.
        _check_domain_free(company.domain, exclude_pk=company.pk)
        raise ValidationError(
            "This company could not be saved. Please try again.", code="integrity"
        ) from exc
    return company


@transaction.atomic
def company_create(
    *,
    name: str,
    segment: str,
    size_band: str,
    region: str,
    domain: str = "",
    created_by: User | None = None,
) -> Company:
    """Add a customer company. The domain is normalised and must not belong to another company."""
    company = Company(
        created_by=created_by,
        name=name.strip(),
        domain=normalize_domain(domain),
        segment=segment,
        size_band=size_band,
        region=region,
    )
    _check_domain_free(company.domain)
    return _save_company(company)


@transaction.atomic
def company_update(
    *,
    company: Company,
    name: str,
    segment: str,
    size_band: str,
    region: str,
    domain: str = "",
) -> Company:
    """Change a company's facts. The same domain rules apply as when adding one."""
    company = Company.objects.select_for_update().get(pk=company.pk)
    company.name = name.strip()
    company.domain = normalize_domain(domain)
    company.segment = segment
    company.size_band = size_band
    company.region = region
    _check_domain_free(company.domain, exclude_pk=company.pk)
    return _save_company(company)


@transaction.atomic
def contact_create(
    *,
    company: Company,
    full_name: str,
    title: str = "",
    email: str = "",
    phone: str = "",
) -> Contact:
    """Add a person at a company. An e-mail address may appear only once per company."""
    contact = Contact(
        company=company,
        full_name=full_name.strip(),
        title=title.strip(),
        email=normalize_email(email),
        phone=phone.strip(),
    )
    _check_email_free(company, contact.email)
    contact.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError as exc:
        _check_email_free(company, contact.email)
        raise ValidationError(
            "This contact could not be saved. Please try again.", code="integrity"
        ) from exc
    return contact
