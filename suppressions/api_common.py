"""What every endpoint of the JSON API answers alike: errors as JSON, the 401, their schema."""

from django.http import JsonResponse

# The body of every error answer, in the OpenAPI document.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


def error(status: int, message: str, **headers) -> JsonResponse:
    """`{"error": message}` with this status; header names with "_" for "-"."""
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def unauthorised() -> JsonResponse:
    return error(
        401,
        "A valid API token is required: send 'Authorization: Bearer <token>'.",
        WWW_Authenticate='Bearer realm="debrief"',
    )
