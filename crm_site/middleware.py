"""
The edge rule for text from outside: a query string or form field holding a NUL byte is
refused with a 400 before any view (or query) sees it. No field of the project can store one
(PostgreSQL text cannot hold it), so such input is never a real value, and refusing it here
spares every view its own check. The JSON API checks its own body (customers.api).
"""

from django.http import HttpResponse

NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _holds_nul(data) -> bool:
    return any(NUL in key or any(NUL in value for value in data.getlist(key)) for key in data)


class RefuseNulBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bad = _holds_nul(request.GET)
        if not bad and request.method == "POST" and request.content_type in FORM_TYPES:
            bad = _holds_nul(request.POST)
        if bad:
            return HttpResponse(
                "This request holds a NUL byte (%00), which no field accepts. "
                "Remove it and try again.",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
