"""What every page's navigation needs from customers: the exception requests that wait."""

import functools

from customers import selectors


def decisions_waiting(request) -> dict:
    """
    `decisions_waiting`: how many suppression-exception requests wait for the signed-in
    manager's (or administrator's) decision, for the badge in the navigation. Counted when a
    template first reads it (one query, however often the page shows it) and never for reps
    or visitors.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_rep:
        return {}

    @functools.cache
    def count() -> int:
        return selectors.overrides_waiting_for(user).count()

    return {"decisions_waiting": count}
