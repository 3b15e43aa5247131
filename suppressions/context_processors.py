"""What every page's navigation needs from suppressions: the exception requests that wait."""

import functools

from suppressions import selectors


def decisions_waiting(request) -> dict:
    """
    `decisions_waiting`: how many suppression-exception requests wait for the signed-in
    manager's (or administrator's) decision, for the badge in the navigation. Counted when a
    template first reads it (one query per request, however often the page and its sections
    show it) and never for reps or visitors.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_rep:
        return {}

    # Sections rendered apart (suppressions.brief) run the context processors again: the count
    # is kept on the request, not in this call.
    if "_decisions_waiting" not in request.__dict__:
        request.__dict__["_decisions_waiting"] = functools.cache(
            selectors.overrides_waiting_for(user).count
        )
    return {"decisions_waiting": request.__dict__["_decisions_waiting"]}
