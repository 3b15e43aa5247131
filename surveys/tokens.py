"""
The link a buyer opens: the survey request's id and its random nonce, signed with the site's
key under a salt of its own. Tampering breaks the signature; a link of one survey names that
survey's nonce and can never open another. Expiry is the request's own `expires_at`.
"""

from django.core import signing

SALT = "surveys.link"


def make(survey) -> str:
    return signing.dumps([survey.pk, survey.nonce], salt=SALT, compress=False)


def read(token: str) -> tuple[int, str] | None:
    """(request id, nonce) from a link's token; None when it was not made here."""
    if len(token) > 200:
        return None
    try:
        value = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
    ):
        return None
    return value[0], value[1]
