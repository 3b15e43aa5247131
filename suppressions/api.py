"""
The JSON API for machine clients (marketing tools, diallers): a suppression check for up to
MAX_ITEMS contacts per call, with a bearer token from `create_api_token` or the admin.
"""

import json
import re

import numpy as np
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from accounts.tokens import authenticate
from customers.normalize import normalize_domain, normalize_email, normalize_phone
from suppressions import api_feed, api_lists, decisions
from suppressions.api_common import ERROR_SCHEMA, error, unauthorised

MAX_ITEMS = 1000
# 1,000 contacts of four fields at the longest allowed length, with room for JSON's quoting;
# a larger body is refused before it is read.
MAX_BODY_BYTES = 2 * 1024 * 1024
FIELDS = ("email", "phone", "company_domain", "product")
KEYS = ("email", "phone", "company_domain")
# The longest value each field can hold: an e-mail address (254, RFC 5321), a phone number as
# people write it, a domain name (253), a product's name (its column's 100).
MAX_LENGTHS = {"email": 254, "phone": 64, "company_domain": 253, "product": 100}
# The schema's regular expressions follow ECMAScript, whose \s leaves out U+001C-U+001F and
# U+0085, which Python's str.strip() (what the check uses) counts as white space.
# No field holds a NUL byte (lone surrogates, refused too, are said in the description: not
# every regular-expression engine can name them).
TEXT = r"^[^\u0000]*$"
TEXT_NOT_BLANK = r"^[^\u0000]*[^\s\u001c-\u001f\u0085\u0000][^\u0000]*$"


_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def _is_text(value: str) -> bool:
    """False for a string holding a NUL byte or a lone surrogate (JSON allows both)."""
    return _NOT_TEXT.search(value) is None


# The body is {"contacts": [{...}, ...]}: three levels. Deeper nesting is refused before the
# parser (which recurses per level) sees it.
MAX_DEPTH = 8
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPEN = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")


def _depth(body: bytes) -> int:
    """How deeply the JSON text nests arrays and objects, outside its strings."""
    skeleton = _STRINGS.sub(b"", body).translate(_OPEN)
    marks = np.frombuffer(skeleton, dtype=np.uint8)
    steps = (marks == 1).astype(np.int32) - (marks == 2).astype(np.int32)
    return int(steps.cumsum().max(initial=0))


def _parse(body: bytes) -> list[decisions.Pitch]:
    """The request's contacts as pitches, or ValueError with a message for the client."""
    if _depth(body) > MAX_DEPTH:
        raise ValueError("The body nests too deeply; send a flat list of contacts.")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"The body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise ValueError("The body nests too deeply; send a flat list of contacts.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("contacts"), list):
        raise ValueError('The body must be an object with a "contacts" list.')
    items = data["contacts"]
    if not items:
        raise ValueError('"contacts" is empty; send between 1 and 1000 items.')
    if len(items) > MAX_ITEMS:
        raise ValueError(f'"contacts" has {len(items)} items; send at most {MAX_ITEMS} per call.')
    pitches = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"contacts[{index}] must be an object.")
        unknown = set(item) - set(FIELDS)
        if unknown:
            raise ValueError(f"contacts[{index}] has unknown fields: {', '.join(sorted(unknown))}.")
        for field in FIELDS:
            value = item.get(field)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"contacts[{index}].{field} must be a string or null.")
            if len(value) > MAX_LENGTHS[field]:
                raise ValueError(
                    f"contacts[{index}].{field} is {len(value)} characters long; "
                    f"at most {MAX_LENGTHS[field]} are allowed."
                )
            if not _is_text(value):
                # No stored contact detail can hold one (PostgreSQL and UTF-8 cannot).
                raise ValueError(
                    f"contacts[{index}].{field} holds a NUL byte or a lone surrogate, which is "
                    "not text; remove it and send the call again."
                )
        if not any((item.get(key) or "").strip() for key in KEYS):
            raise ValueError(f"contacts[{index}] needs at least one of {', '.join(KEYS)}.")
        pitches.append(
            decisions.Pitch(
                email=normalize_email(item.get("email")),
                phone=normalize_phone(item.get("phone")),
                domain=normalize_domain(item.get("company_domain")),
                product=(item.get("product") or "").strip(),
            )
        )
    return pitches


@csrf_exempt  # token-authenticated, never cookie-authenticated
def suppression_check(request):
    if request.method != "POST":
        return error(405, "Use POST.", Allow="POST")
    if authenticate(request.headers.get("Authorization")) is None:
        return unauthorised()
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return error(400, "The Content-Length header is not a number.")
    if length > MAX_BODY_BYTES:
        return error(
            413,
            f"The body is {length:,} bytes; send at most {MAX_BODY_BYTES:,} "
            f"({MAX_ITEMS} contacts) per call.",
        )
    try:
        pitches = _parse(request.body)
    except ValueError as exc:
        return error(400, str(exc))
    results = decisions.check_many(pitches)
    return JsonResponse(
        {
            "results": [
                {
                    "suppressed": r.suppressed,
                    "reason": r.reason or None,
                    "until": r.until.isoformat() if r.until else None,
                }
                for r in results
            ]
        }
    )


def _schema() -> dict:
    contact = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {"type": ["string", "null"], "maxLength": MAX_LENGTHS[name]} for name in FIELDS
        },
        "description": "At least one of email, phone and company_domain, not blank; no field "
        "holds a NUL byte or a lone surrogate.",
        # Each branch states every field's pattern itself (text; the key also not blank), so
        # that a generator never has to merge two patterns of one field.
        "anyOf": [
            {
                "required": [key],
                "properties": {
                    name: {
                        "type": "string" if name == key else ["string", "null"],
                        "pattern": TEXT_NOT_BLANK if name == key else TEXT,
                    }
                    for name in FIELDS
                },
            }
            for key in KEYS
        ],
    }
    paths = _check_paths(contact, ERROR_SCHEMA)
    # Later endpoints add their paths here.
    paths.update(api_lists.schema_paths())
    paths.update(api_feed.schema_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Debrief API",
            "version": "1.0.0",
            "description": "Check contacts against Debrief's suppressions before a campaign.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _check_paths(contact: dict, error: dict) -> dict:
    return {
        "/api/suppressions/check": {
            "post": {
                "summary": "Check up to 1000 contacts against the suppressions",
                "operationId": "checkSuppressions",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["contacts"],
                                "properties": {
                                    "contacts": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_ITEMS,
                                        "items": contact,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "One result per contact, in the same order.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["results"],
                                    "properties": {
                                        "results": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "required": ["suppressed", "reason", "until"],
                                                "properties": {
                                                    "suppressed": {"type": "boolean"},
                                                    "reason": {"type": ["string", "null"]},
                                                    "until": {
                                                        "type": ["string", "null"],
                                                        "format": "date",
                                                    },
                                                },
                                            },
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "400": {
                        "description": "Bad JSON or too many contacts.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "401": {
                        "description": "No or bad token.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "413": {
                        "description": "The body is larger than 1000 contacts can be.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "500": {
                        "description": "A fault on the server; nothing was changed.",
                        "content": {"application/json": {"schema": error}},
                    },
                },
            }
        }
    }


@require_GET
def schema(request):
    """The OpenAPI document of this API."""
    return JsonResponse(_schema())
