"""
The pull feed of suppression changes for machine clients (a dialler, a marketing database):
`GET /api/suppressions/changes?since=CURSOR&limit=N` with the same bearer tokens as the check.
A client keeps the `next` cursor of each answer and passes it as `since` on its next call; it
then gets every change exactly once, in commit order (feed.py says how).
docs/suppression-feed.md is the guide for integrators.
"""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.tokens import authenticate
from suppressions import feed
from suppressions.api_common import ERROR_SCHEMA, error, unauthorised
from suppressions.models import ChangeKind, SuppressionReason, SuppressionScope

_LIMIT_DIGITS = 4  # "1000"
# Anything else is refused, so that a misspelt "since" does not read the feed from its start.
PARAMETERS = ("since", "limit")


def _limit(raw: str | None) -> int:
    if raw is None:
        return feed.DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or len(raw) > _LIMIT_DIGITS:
        raise ValueError(f"limit must be a whole number from 1 to {feed.MAX_LIMIT}.")
    value = int(raw)
    if not 1 <= value <= feed.MAX_LIMIT:
        raise ValueError(f"limit is {value}; ask for 1 to {feed.MAX_LIMIT} changes per call.")
    return value


def _since(raw: str | None) -> tuple[int, int]:
    if raw is None:
        return feed.START
    try:
        return feed.cursor_decode(raw)
    except feed.BadCursor:
        raise ValueError(
            "since is not a cursor this feed gave out. Pass the `next` value of an earlier "
            "answer unchanged, or leave since out to read the feed from its beginning."
        ) from None


@csrf_exempt  # token-authenticated, never cookie-authenticated
def suppression_changes(request):
    if request.method not in ("GET", "HEAD"):
        return error(405, "Use GET.", Allow="GET, HEAD")
    if authenticate(request.headers.get("Authorization")) is None:
        return unauthorised()
    unknown = sorted(set(request.GET) - set(PARAMETERS))
    if unknown:
        return error(
            400,
            f"Unknown query parameter(s): {', '.join(unknown)[:200]}. This endpoint takes "
            "since and limit.",
        )
    try:
        since = _since(request.GET.get("since"))
        limit = _limit(request.GET.get("limit"))
    except ValueError as exc:
        return error(400, str(exc))
    page = feed.feed_page(since=since, limit=limit)
    response = JsonResponse(
        {
            "changes": [feed.event(change) for change in page.changes],
            "next": page.next,
            "has_more": page.has_more,
        }
    )
    response["Cache-Control"] = "no-store"
    return response


def schema_paths() -> dict:
    """This module's part of the OpenAPI document (merged in api._schema())."""
    nullable = {"type": ["string", "null"]}
    change = {
        "type": "object",
        "required": ["id", "kind", "occurred_at", "suppression"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": list(ChangeKind.values)},
            "occurred_at": {"type": "string", "format": "date-time"},
            "suppression": {
                "type": "object",
                "required": [
                    "id",
                    "reason",
                    "scope",
                    "product",
                    "product_line",
                    "starts_on",
                    "until",
                    "company",
                    "contact",
                ],
                "properties": {
                    "id": {"type": "integer"},
                    "reason": {"type": "string", "enum": list(SuppressionReason.values)},
                    "scope": {"type": "string", "enum": list(SuppressionScope.values)},
                    "product": nullable,
                    "product_line": nullable,
                    "starts_on": {"type": "string", "format": "date"},
                    "until": {"type": ["string", "null"], "format": "date"},
                    "company": {
                        "type": "object",
                        "required": ["id", "domain"],
                        "properties": {"id": {"type": "integer"}, "domain": nullable},
                    },
                    "contact": {
                        "type": ["object", "null"],
                        "required": ["id", "email", "phone"],
                        "properties": {
                            "id": {"type": "integer"},
                            "email": nullable,
                            "phone": nullable,
                        },
                    },
                },
            },
        },
    }
    return {
        "/api/suppressions/changes": {
            "get": {
                "summary": "The suppression changes after a cursor, in commit order",
                "description": "Pass each answer's `next` as `since` on the next call to get "
                "every change exactly once. Changes of transactions still running wait for "
                "a later call.",
                "operationId": "listSuppressionChanges",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "description": "The `next` of an earlier answer (opaque); leave out "
                        "to start from the beginning.",
                        "schema": {"type": "string", "pattern": feed.CURSOR_PATTERN},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": f"Changes per answer (default {feed.DEFAULT_LIMIT}).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": feed.MAX_LIMIT},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Up to `limit` changes and the cursor after them.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["changes", "next", "has_more"],
                                    "properties": {
                                        "changes": {"type": "array", "items": change},
                                        "next": {
                                            "type": "string",
                                            "pattern": feed.CURSOR_PATTERN,
                                        },
                                        "has_more": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "400": {
                        "description": "A bad cursor or limit, or an unknown parameter.",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                    "401": {
                        "description": "No or bad token.",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                    "500": {
                        "description": "A fault on the server.",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                },
            }
        }
    }
