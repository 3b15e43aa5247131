"""
Keyset ("cursor") pagination for long lists such as the pipeline.

A page is "the next N rows after this row in this order", so page 400 costs the same as page 1:
no OFFSET, no COUNT(*). The cursor is the sort-key values of the last (or first) row on the page,
encoded in the URL, so links can be bookmarked and keep working as rows come and go.

Why not django-cursor-pagination (evaluated, then not used): its `CursorPaginator` compares
every cursor value as text (`Value(v, output_field=TextField())`), wraps each key in
`OR key IS NULL` and orders with `NULLS LAST`. On PostgreSQL a descending sort with `NULLS LAST`
cannot walk an ordinary b-tree index backwards, and the `OR ... IS NULL` branches make the WHERE
clause hard for the planner to turn into an index range, so `?sort=-amount` on 100k deals falls
back to a sort of every visible row. This paginator is small because it asks more of the caller:

- every sort key must be NOT NULL and the last key unique (use the primary key as tiebreaker);
- cursor values are decoded with the model field's own `to_python`, so comparisons are typed;
- the WHERE clause is `k1 >= v1 AND (k1 > v1 OR (k1 = v1 AND k2 > v2) ...)`: the leading,
  redundant bound gives the planner an index range on the first key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Field, Model, Q, QuerySet


class InvalidCursor(ValueError):
    """The cursor was not made by this paginator for this ordering."""


@dataclass
class KeysetPage:
    items: list[Any]
    has_next: bool
    has_previous: bool
    next_cursor: str | None = None
    previous_cursor: str | None = None
    # True when a cursor was given but could not be used, so the first page was shown instead.
    cursor_ignored: bool = field(default=False)

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _resolve_field(model: type[Model], path: str) -> Field:
    parts = path.split("__")
    for part in parts[:-1]:
        model = model._meta.get_field(part).related_model
    return model._meta.get_field(parts[-1])


def _lookup_value(obj: Any, path: str) -> Any:
    if isinstance(obj, Mapping):  # a row of .values(), keyed by the lookup path itself
        return obj[path]
    for part in path.split("__"):
        obj = getattr(obj, part)
    return obj


class KeysetPaginator:
    """
    Paginate `queryset` in `ordering` (e.g. `("-amount", "-id")`), `page_size` rows at a time.

    `page(after=cursor)` gives the rows after a row, `page(before=cursor)` the rows before it;
    with neither it gives the first page. An unusable cursor gives the first page rather than
    an error: cursors come from URLs, which people edit and bookmark.
    """

    def __init__(self, queryset: QuerySet, ordering: Sequence[str], page_size: int):
        if not ordering:
            raise ValueError("Keyset pagination needs an ordering ending in a unique key.")
        if page_size < 1:
            raise ValueError("page_size must be at least 1.")
        self.queryset = queryset
        self.ordering = tuple(ordering)
        self.page_size = page_size
        self.keys = [(key.lstrip("-"), key.startswith("-")) for key in self.ordering]
        try:
            self.fields = [_resolve_field(queryset.model, path) for path, _ in self.keys]
        except (FieldDoesNotExist, AttributeError) as exc:
            raise ValueError(f"Cannot paginate on {ordering!r}: {exc}") from exc

    # Cursors -------------------------------------------------------------------------------
    def cursor_for(self, obj: Any) -> str:
        values = []
        for path, _ in self.keys:
            value = _lookup_value(obj, path)
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            elif not isinstance(value, int | str):
                value = str(value)  # Decimal and friends: exact, and parsed back by to_python.
            values.append(value)
        payload = json.dumps([list(self.ordering), values], separators=(",", ":"))
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> list[Any]:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            ordering, raw_values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (binascii.Error, UnicodeError, ValueError, TypeError) as exc:
            raise InvalidCursor("Unreadable cursor.") from exc
        if ordering != list(self.ordering) or not isinstance(raw_values, list):
            raise InvalidCursor("The cursor belongs to another sort order.")
        if len(raw_values) != len(self.fields):
            raise InvalidCursor("The cursor does not match the sort keys.")
        try:
            values = [f.to_python(v) for f, v in zip(self.fields, raw_values, strict=True)]
            # The field's own limits (digits of a decimal, length of a text): a cursor is
            # input from outside like any other, and the database must never see a value
            # that its column cannot hold.
            for f, v in zip(self.fields, values, strict=True):
                if v is not None:
                    f.run_validators(v)
        except (ValidationError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidCursor("The cursor holds a value of the wrong type.") from exc
        if any(v is None for v in values):
            raise InvalidCursor("Sort keys are never empty.")
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise InvalidCursor("The cursor holds a NUL byte.")
        return values

    # Queries -------------------------------------------------------------------------------
    def _order(self, backwards: bool) -> list[str]:
        return [("" if descending == backwards else "-") + path for path, descending in self.keys]

    def _beyond(self, values: list[Any], backwards: bool) -> Q:
        """Rows strictly after `values` in the walking direction."""
        condition = Q()
        equal: dict[str, Any] = {}
        for (path, descending), value in zip(self.keys, values, strict=True):
            op = "lt" if descending != backwards else "gt"
            condition |= Q(**equal, **{f"{path}__{op}": value})
            equal[path] = value
        first_path, first_descending = self.keys[0]
        bound = "lte" if first_descending != backwards else "gte"
        return Q(**{f"{first_path}__{bound}": values[0]}) & condition

    def page(self, *, after: str | None = None, before: str | None = None) -> KeysetPage:
        cursor, backwards = (before, True) if before else (after, False)
        ignored = False
        values = None
        if cursor:
            try:
                values = self.decode(cursor)
            except InvalidCursor:
                ignored, backwards = True, False
        queryset = self.queryset.order_by(*self._order(backwards))
        if values is not None:
            queryset = queryset.filter(self._beyond(values, backwards))
        rows = list(queryset[: self.page_size + 1])
        more = len(rows) > self.page_size
        items = rows[: self.page_size]
        if backwards:
            items.reverse()
            has_next, has_previous = True, more
        else:
            has_next, has_previous = more, values is not None
        return KeysetPage(
            items=items,
            has_next=has_next,
            has_previous=has_previous,
            next_cursor=self.cursor_for(items[-1]) if has_next and items else None,
            previous_cursor=self.cursor_for(items[0]) if has_previous and items else None,
            cursor_ignored=ignored,
        )
