"""Normalising e-mail addresses, phone numbers and domains so that matching is exact and indexed."""

import phonenumbers
from django.conf import settings


def normalize_email(value: str | None) -> str:
    return (value or "").strip().lower()


def normalize_phone(value: str | None, region: str | None = None) -> str:
    """E.164 (+441632960961) when the number parses, else its digits; '' for nothing."""
    raw = (value or "").strip()
    if not raw:
        return ""
    try:
        parsed = phonenumbers.parse(raw, region or settings.DEBRIEF_PHONE_REGION)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return "".join(ch for ch in raw if ch.isdigit())


def normalize_domain(value: str | None) -> str:
    """example.com from 'https://www.Example.com/path' or 'someone@example.com'."""
    domain = (value or "").strip().lower()
    if "@" in domain:
        domain = domain.rsplit("@", 1)[1]
    for prefix in ("https://", "http://"):
        if domain.startswith(prefix):
            domain = domain[len(prefix) :]
    domain = domain.split("/", 1)[0].split(":", 1)[0]
    if domain.startswith("www."):
        domain = domain[4:]
    return domain.strip(".")
