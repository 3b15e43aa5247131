"""Creating and checking API tokens. Tokens look like `dbf_<prefix>_<secret>`."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User

PREFIX = "dbf"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, name: str, created_by: User | None = None) -> tuple[ApiToken, str]:
    """A new token and its plain text, which is never stored and cannot be shown again."""
    name = name.strip()
    if not name:
        raise ValueError("A token needs a name saying who uses it.")
    prefix = secrets.token_hex(4)
    plain = f"{PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        name=name, prefix=prefix, key_hash=_hash(plain), created_by=created_by
    )
    return token, plain


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def authenticate(header: str | None) -> ApiToken | None:
    """The active token named by an `Authorization: Bearer …` header, or None."""
    if not header or not header.startswith("Bearer "):
        return None
    plain = header[len("Bearer ") :].strip()
    parts = plain.split("_")
    if len(parts) < 3 or parts[0] != PREFIX:
        return None
    token = ApiToken.objects.filter(prefix=parts[1], revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.key_hash, _hash(plain)):
        return None
    now = timezone.now()
    # Record use at most once a minute, so that a busy client does not write on every call.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
