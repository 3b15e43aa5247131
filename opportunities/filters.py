"""Filters and sort orders for the pipeline list."""

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from accounts import access
from accounts.models import User
from opportunities.models import CLOSED_STAGES, OPEN_STAGES, Product, ProductLine, Stage

# Sort keys offered in the URL (`?sort=amount`, `?sort=-amount`) and the columns behind them.
# Every key ends in the primary key so the order is total, which keyset pagination needs; all
# columns are NOT NULL. A leading "-" reverses every column, tiebreaker included, so a single
# index can serve both directions.
SORTS = {
    "close": ("expected_close_date", "id"),
    "amount": ("amount", "id"),
    "title": ("title", "id"),
    "company": ("company__name", "id"),
}
DEFAULT_SORT = "close"
SORT_LABELS = {
    "close": "expected close date",
    "amount": "amount",
    "title": "deal name",
    "company": "company name",
}


def parse_sort(value: str | None) -> str:
    """The sort from the URL if it is one of SORTS (optionally with "-"), else the default."""
    value = (value or "").strip()
    return value if value.lstrip("-") in SORTS and value.count("-") <= 1 else DEFAULT_SORT


def ordering_for(sort: str) -> tuple[str, ...]:
    descending = sort.startswith("-")
    columns = SORTS[sort.lstrip("-")]
    return tuple(f"-{column}" if descending else column for column in columns)


class Status:
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"
    CHOICES = [(OPEN, "Open deals"), (CLOSED, "Closed deals"), (ALL, "All deals")]
    DEFAULT = OPEN


class GroupedProductFilter(django_filters.ChoiceFilter):
    """Products grouped by line in <optgroup>s; the choices are filled in per request."""

    def filter(self, qs, value):
        if value in ("", None):
            return qs
        return qs.filter(product_id=value)


def product_choices(products) -> list:
    """[(line name, [(id, product name), ...]), ...] for a grouped <select>."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for product in products:
        label = product.name if product.active else f"{product.name} (retired)"
        groups.setdefault(product.line.name, []).append((product.pk, label))
    return list(groups.items())


class OpportunityFilter(django_filters.FilterSet):
    """
    The pipeline's filter form. Pass `user`: the owner filter is only offered to managers and
    administrators, and only with the people they may see, so a forged owner id is an invalid
    choice (a form error), never a way to read someone else's deals.
    """

    q = django_filters.CharFilter(
        method="filter_text",
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Deal or company", "autocomplete": "off"}
        ),
    )
    status = django_filters.ChoiceFilter(
        method="filter_status", choices=Status.CHOICES, empty_label=None, label="Status"
    )
    # One row per deal whatever is picked, so no DISTINCT (it would defeat the keyset index).
    stage = django_filters.MultipleChoiceFilter(
        choices=Stage.choices,
        distinct=False,
        label="Stage",
        widget=forms.CheckboxSelectMultiple,
    )
    product = GroupedProductFilter(label="Product", empty_label="Any product")
    line = django_filters.ModelChoiceFilter(
        field_name="product__line",
        queryset=ProductLine.objects.order_by("name"),
        label="Product line",
        empty_label="Any line",
        distinct=False,
    )
    owner = django_filters.ModelChoiceFilter(
        queryset=User.objects.none(), label="Owner", empty_label="Anyone", distinct=False
    )
    close_from = django_filters.DateFilter(
        field_name="expected_close_date",
        lookup_expr="gte",
        label="Closes from",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    close_to = django_filters.DateFilter(
        field_name="expected_close_date",
        lookup_expr="lte",
        label="Closes by",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    amount_min = django_filters.NumberFilter(
        field_name="amount",
        lookup_expr="gte",
        label="Amount from",
        min_value=0,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal"}),
    )
    amount_max = django_filters.NumberFilter(
        field_name="amount",
        lookup_expr="lte",
        label="Amount up to",
        min_value=0,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal"}),
    )

    def __init__(self, data=None, *args, user: User, **kwargs):
        # The list is always bound so that the default status (open deals) applies.
        data = data.copy() if data is not None else {}
        if not data.get("status"):
            data["status"] = Status.DEFAULT
        super().__init__(data, *args, **kwargs)
        self.user = user
        if user.is_rep:
            del self.filters["owner"]
        else:
            self.filters["owner"].queryset = access.users_visible_to(user).order_by(
                "full_name", "email"
            )
        # Callable, so the catalogue is read only when the <select> is drawn or a product is
        # picked (an htmx refresh of the results skips it).
        self.filters["product"].extra["choices"] = lambda: product_choices(
            Product.objects.select_related("line").order_by("line__name", "name")
        )

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(title__icontains=value) | Q(company__name__icontains=value))

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == Status.OPEN:
            return queryset.filter(stage__in=OPEN_STAGES)
        if value == Status.CLOSED:
            return queryset.filter(stage__in=CLOSED_STAGES)
        return queryset

    @property
    def selected_status(self) -> str:
        return self.form.cleaned_data.get("status") or Status.DEFAULT

    def has_narrowing_filters(self) -> bool:
        """Whether anything other than the status narrows the list (for the empty message)."""
        if not self.is_valid():
            return True
        return any(
            value not in (None, "", [], ())
            for name, value in self.form.cleaned_data.items()
            if name != "status"
        )
