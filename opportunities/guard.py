"""
The pitch guard: what the pipeline asks before a pitch goes ahead (creating, editing or
reopening a deal) and to flag the open deals a suppression now covers.

The suppressions app answers; it reads the pipeline, so the pipeline cannot import it. Its
answering module is named by settings.DEBRIEF_PITCH_GUARD (as the company page's sections are
named by DEBRIEF_BRIEF_SECTIONS) and must provide the three functions of `PitchGuard`. There is
no fallback: without a guard every pitch fails loudly rather than going ahead unchecked.
"""

import datetime
from collections.abc import Iterable
from functools import cache
from importlib import import_module
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError


class Verdict(Protocol):
    """Whether a pitch may go ahead, and the sentences that say why not."""

    @property
    def suppressed(self) -> bool: ...

    @property
    def blocked(self) -> bool: ...

    @property
    def sentences(self) -> list[str]: ...

    def error(self) -> ValidationError: ...


class PitchGuard(Protocol):
    def check(
        self,
        *,
        company_id: int,
        contact_id: int | None,
        product_id: int,
        product_line_id: int,
        opportunity_id: int | None = None,
        requester_id: int | None = None,
    ) -> Verdict: ...

    def use_override(self, verdict: Verdict, opportunity_id: int) -> None: ...

    def flags_for_deals(
        self,
        deals: Iterable[tuple[int, int, int | None, int, int]],
        *,
        on: datetime.date | None = None,
    ) -> dict[int, Any]: ...


@cache
def guard() -> PitchGuard:
    path = getattr(settings, "DEBRIEF_PITCH_GUARD", "")
    if not path:
        raise ImproperlyConfigured(
            "DEBRIEF_PITCH_GUARD names no module: pitches cannot be checked."
        )
    return import_module(path)
