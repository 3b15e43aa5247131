"""Where a form goes back to when it is done: the page it was opened from, if that is ours."""

from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request) -> str | None:
    """
    The `next` a form or link carries (posted, else in the query string) when it points into
    this site; anything else (another host, a scheme-relative //evil.example, javascript:) is
    ignored, so that a crafted link cannot send someone elsewhere after they act.
    """
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and allowed else None
