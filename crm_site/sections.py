"""
Pages of an earlier app that show what later apps know (the company page shows reflections;
the deal page offers closing with a reflection) collect "sections" from functions listed in
settings, so that no app imports a later one. A provider returns dicts with `slot`,
`template`, `context` and optionally `order` (lower first within a slot, default 100, ties in
settings order); `collect` renders them, and the page prints each slot's HTML.
"""

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe


def collect(setting: str, *, request, **kwargs) -> dict[str, SafeString]:
    """The rendered sections of every provider named in `setting`, joined by slot."""
    sections = [
        section
        for path in getattr(settings, setting)
        for section in import_string(path)(request=request, **kwargs)
    ]
    slots: dict[str, list[str]] = {}
    for section in sorted(sections, key=lambda s: s.get("order", 100)):
        html = render_to_string(section["template"], section["context"], request=request)
        slots.setdefault(section["slot"], []).append(html)
    return {slot: mark_safe("".join(parts)) for slot, parts in slots.items()}
