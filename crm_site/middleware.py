"""
The edge rule for text from outside: a query string or form field holding a NUL byte, or bytes
that are not UTF-8 text, is refused with a 400 before any view (or query) sees it. No field of
the project can store such a value (PostgreSQL text cannot hold a NUL), so it is never real
input, and refusing it here spares every view its own check. The JSON API checks its own body
(suppressions.api), and every error under /api/ is answered in JSON (ApiJsonErrorsMiddleware).
"""

import logging
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

logger = logging.getLogger("debrief.api")

NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _holds_nul(data) -> bool:
    return any(NUL in key or any(NUL in value for value in data.getlist(key)) for key in data)


def _not_utf8(encoded: bytes | str) -> bool:
    """Whether percent-encoded data decodes to something that is not UTF-8 text (e.g. %FF, or
    %ED%A0%80, a lone surrogate); Django would quietly turn it into U+FFFD."""
    try:
        unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


class RefuseNulBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _not_utf8(request.META.get("QUERY_STRING", "")) or (
            request.method == "POST"
            and request.content_type == FORM_TYPES[0]
            and _not_utf8(request.body.replace(b"+", b" "))
        ):
            return _refuse("This request holds characters that are not UTF-8 text")
        bad = _holds_nul(request.GET)
        if not bad and request.method == "POST" and request.content_type in FORM_TYPES:
            bad = _holds_nul(request.POST)
        if bad:
            return _refuse("This request holds a NUL byte (%00), which no field accepts")
        return self.get_response(request)


def _refuse(what: str) -> HttpResponse:
    return HttpResponse(
        f"{what}. Remove it and try again.", status=400, content_type="text/plain; charset=utf-8"
    )


API_PREFIX = "/api/"
# What a client is told for an error that no API view worded itself (a 404 page, a CSRF or
# method refusal, a crash): never a traceback, never an HTML page.
API_MESSAGES = {
    400: "The request could not be read.",
    403: "This request is not allowed.",
    404: "There is nothing at this address. The API's endpoints are listed at /api/schema.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    500: "Something went wrong on our side; nothing was changed. Please try again later.",
}
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


class ApiJsonErrorsMiddleware:
    """
    Every answer under /api/ is JSON, errors included: an error response that is not JSON
    already (an HTML 404 or 500 page, the NUL refusal, a method refusal) is replaced by
    {"error": "..."} with the same status, and an exception in an API view answers a JSON 500
    (logged with its traceback, which the client never sees). Placed outside the other
    middleware, so that their refusals are answered the same way.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        message = (
            API_MESSAGES.get(response.status_code)
            or API_MESSAGES[500 if response.status_code >= 500 else 400]
        )
        if response.get("Content-Type", "").startswith("text/plain") and response.content:
            # One of this project's own plain-text refusals (e.g. the NUL rule): its words.
            message = response.content.decode("utf-8", "replace")[:500]
        replacement = JsonResponse({"error": message}, status=response.status_code)
        for name in KEPT_HEADERS:
            if name in response:
                replacement[name] = response[name]
        return replacement

    def process_exception(self, request, exception):
        if not request.path.startswith(API_PREFIX):
            return None
        logger.error("API error on %s", request.path, exc_info=exception)
        return JsonResponse({"error": API_MESSAGES[500]}, status=500)


class PrivatePagesMiddleware:
    """
    A page or export drawn for a signed-in person is theirs: no shared cache (a proxy, a CDN)
    or browser history cache may keep it. Answers that set their own Cache-Control keep it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and "Cache-Control" not in response:
            response["Cache-Control"] = "private, no-store"
        return response


class RequestSizeLimitMiddleware:
    """
    Refuses a body larger than its URL may take (Content-Length) before anything reads it: the
    CSRF check or the NUL rule would otherwise parse, and spool to disk, a 200 MB upload to the
    login page before any view could say no. Upload pages (DEBRIEF_UPLOAD_PATHS) take
    DEBRIEF_MAX_UPLOAD_BYTES, everything else DEBRIEF_MAX_REQUEST_BYTES; a view marked with
    takes_large_bodies may take more, as its own limit says at request time (for whom, and how
    much), and answers a body over it in its own words (its page with the error, the API's
    JSON). Placed after the session and authentication middleware, which read no body, so that
    a large limit can depend on who asks. In production the proxy in front should refuse the
    same sizes (e.g. nginx's client_max_body_size).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse("The Content-Length header is not a number")
        limit = _limit(request.path)
        if length > limit:
            view = _view(request)
            larger = view.body_limit(request) if hasattr(view, "body_limit") else None
            if larger is None or length > larger:
                refuse = getattr(view, "refuse_body", None)
                refusal = refuse(request, length) if refuse is not None else None
                return refusal or _too_large(length, larger or limit)
        return self.get_response(request)


def takes_large_bodies(limit, refuse=None):
    """
    Marks a view that takes bodies over the path's limit (see RequestSizeLimitMiddleware):
    `limit(request)` is how large a body this request may carry, read at request time, or None
    for the path's limit (not signed in, no token); `refuse(request, length)` answers a body
    over it before anything reads it, or None for the plain refusal. Apply it outermost.
    """

    def decorate(view):
        view.body_limit = limit
        if refuse is not None:
            view.refuse_body = refuse
        return view

    return decorate


def _view(request):
    try:
        return resolve(request.path_info).func
    except Resolver404:
        return None


def _too_large(length: int, limit: int) -> HttpResponse:
    return HttpResponse(
        f"This request is {length / 1024 / 1024:.1f} MB; this page takes at most "
        f"{limit / 1024 / 1024:.0f} MB.",
        status=413,
        content_type="text/plain; charset=utf-8",
    )


def _limit(path: str) -> int:
    """The largest body a request to `path` may carry unless its view takes more."""
    if path.startswith(tuple(settings.DEBRIEF_UPLOAD_PATHS)):
        return settings.DEBRIEF_MAX_UPLOAD_BYTES
    return settings.DEBRIEF_MAX_REQUEST_BYTES
