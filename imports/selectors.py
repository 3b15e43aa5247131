"""Reads of history imports, scoped to the admins who may see them."""

from dataclasses import dataclass

from django.db.models import QuerySet

from imports import engine
from imports.models import HistoryImport, MappingAction, MappingKind, ValueMapping
from opportunities.models import Product
from reflections.models import Outcome

_OUTCOME_ORDER = {Outcome.LOST: 0, Outcome.WON: 1, Outcome.NO_DECISION: 2, "": 3}


@dataclass(frozen=True)
class ValueRow:
    """One distinct reason or product text of a file, with its saved mapping or a suggestion."""

    kind: str
    outcome: str
    text: str
    key: str
    count: int
    saved: ValueMapping | None
    suggestion_action: str
    suggestion_id: int | None
    suggestion_label: str
    score: int


@dataclass(frozen=True)
class _Text:
    kind: str
    outcome: str
    key: str
    text: str
    count: int


def history_imports_visible_to(user) -> QuerySet[HistoryImport]:
    """Every import for administrators (the Django admin's view permission), none otherwise."""
    if not getattr(user, "is_authenticated", False) or not (
        user.is_superuser or (user.is_staff and user.has_perm("imports.view_historyimport"))
    ):
        return HistoryImport.objects.none()
    return HistoryImport.objects.select_related("created_by", "default_owner")


def value_rows(history_import: HistoryImport) -> list[ValueRow]:
    """
    The distinct reason texts (per outcome) and product texts of a file's closed deals, each
    with its count, the spelling that occurs most, the saved decision if any, and a suggestion:
    the saved decision, else an exact label or name (score 100), else the closest by difflib
    (and, for reasons, words people commonly type for the default reasons) when it scores at
    least 60, else "Unknown" for reasons and nothing for products. Reasons first, grouped by
    outcome (lost, won, no decision), then products; most frequent first within a group. Empty
    once the file is gone (the import is done or cancelled). Reads the texts stored on the
    import when its file or columns changed (HistoryImport.texts), never the file itself.
    """
    texts = (history_import.texts or []) if history_import.file else []
    saved = {
        (m.kind, m.outcome, m.text): m
        for m in ValueMapping.objects.select_related("reason", "product")
    }
    reasons = engine.active_reasons()
    products = [(p.pk, p.name) for p in Product.objects.filter(active=True)]
    rows = []
    for stored in texts:
        t = _Text(**stored)
        mapping = saved.get((t.kind, t.outcome, t.key))
        if mapping is not None:
            target = mapping.reason if t.kind == MappingKind.REASON else mapping.product
            suggestion = (
                mapping.action,
                target.pk if target else None,
                (target.label if t.kind == MappingKind.REASON else target.name) if target else "",
                100,
            )
        elif t.kind == MappingKind.REASON:
            suggestion = _reason_suggestion(t.key, reasons.get(t.outcome, []))
        else:
            suggestion = _product_suggestion(t.key, products)
        rows.append(
            ValueRow(
                kind=t.kind,
                outcome=t.outcome,
                text=t.text,
                key=t.key,
                count=t.count,
                saved=mapping,
                suggestion_action=suggestion[0],
                suggestion_id=suggestion[1],
                suggestion_label=suggestion[2],
                score=suggestion[3],
            )
        )
    rows.sort(
        key=lambda r: (
            r.kind != MappingKind.REASON,
            _OUTCOME_ORDER.get(r.outcome, 9),
            -r.count,
            r.key,
        )
    )
    return rows


def _reason_suggestion(key: str, candidates: list[tuple[int, str]]) -> tuple:
    if not key:
        return (MappingAction.UNKNOWN, None, "Unknown / not sure", 100)
    for pk, label in candidates:
        if engine.parsing.normalise_text(label) == key:
            return (MappingAction.MAP, pk, label, 100)
    pk, label, score = engine.suggest(candidates, key, keywords=True)
    if pk is not None and score >= engine.SUGGEST_AT:
        return (MappingAction.MAP, pk, label, score)
    return (MappingAction.UNKNOWN, None, "Unknown / not sure", score)


def _product_suggestion(key: str, candidates: list[tuple[int, str]]) -> tuple:
    for pk, name in candidates:
        if engine.parsing.normalise_text(name) == key and key:
            return (MappingAction.MAP, pk, name, 100)
    pk, name, score = engine.suggest(candidates, key)
    if pk is not None and score >= engine.SUGGEST_AT:
        return (MappingAction.MAP, pk, name, score)
    return ("", None, "", score)
