"""Filters and sort orders for the pipeline list."""

import django_filters
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property

from accounts import access
from accounts.models import User
from crm_site.widgets import (
    FastCheckboxes,
    FastDateInput,
    FastNumberInput,
    FastSelect,
    FastTextInput,
)
from customers.models import Company
from opportunities import selectors
from opportunities.models import (
    CLOSED_STAGES,
    OPEN_STAGES,
    Product,
    Stage,
)

# Sort keys offered in the URL (`?sort=amount`, `?sort=-amount`) and the columns behind them.
# Every key ends in the primary key so the order is total, which keyset pagination needs; all
# columns are NOT NULL. A leading "-" reverses every column, tiebreaker included, so a single
# index can serve both directions.
SORTS = {
    "close": ("expected_close_date", "id"),
    # By worth: the amount in the reporting currency, so GBP and EUR deals interleave rightly.
    "amount": ("amount_reporting", "id"),
    "title": ("title", "id"),
    "company": ("company__name", "id"),
}
DEFAULT_SORT = "close"
SORT_LABELS = {
    "close": "expected close date",
    "amount": f"amount in {settings.DEBRIEF_REPORTING_CURRENCY}",
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


def line_choices(products) -> list[tuple[int, str]]:
    """[(id, line name), ...] of the lines that have products (only those can have deals)."""
    lines = {product.line_id: product.line for product in products}
    return [(line.pk, line.name) for line in sorted(lines.values(), key=lambda line: line.name)]


class LineFilter(django_filters.ChoiceFilter):
    """Deals of one product line; the choices come from the catalogue read for the products."""

    def filter(self, qs, value):
        if value in ("", None):
            return qs
        return qs.filter(product__line_id=value)


class OpportunityFilter(django_filters.FilterSet):
    """
    The pipeline's filter form. Pass `user`: the owner filter is only offered to managers and
    administrators, and only with the people they may see, so a forged owner id is an invalid
    choice (a form error), never a way to read someone else's deals. `people`, when given, are
    those choices as selectors.pipeline_people() read them.
    """

    q = django_filters.CharFilter(
        method="filter_text",
        label="Search",
        widget=FastTextInput(
            attrs={"type": "search", "placeholder": "Deal or company", "autocomplete": "off"}
        ),
    )
    status = django_filters.ChoiceFilter(
        method="filter_status",
        choices=Status.CHOICES,
        empty_label=None,
        label="Status",
        widget=FastSelect,
    )
    product = GroupedProductFilter(label="Product", empty_label="Any product", widget=FastSelect)
    line = LineFilter(label="Product line", empty_label="Any line", widget=FastSelect)
    owner = django_filters.ChoiceFilter(
        field_name="owner_id", label="Owner", empty_label="Anyone", widget=FastSelect
    )
    close_from = django_filters.DateFilter(
        field_name="expected_close_date",
        lookup_expr="gte",
        label="Closes from",
        widget=FastDateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    close_to = django_filters.DateFilter(
        field_name="expected_close_date",
        lookup_expr="lte",
        label="Closes by",
        widget=FastDateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    amount_min = django_filters.NumberFilter(
        field_name="amount_reporting",
        lookup_expr="gte",
        label=f"Amount from ({settings.DEBRIEF_REPORTING_CURRENCY})",
        min_value=0,
        widget=FastNumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal"}),
    )
    amount_max = django_filters.NumberFilter(
        field_name="amount_reporting",
        lookup_expr="lte",
        label=f"Amount up to ({settings.DEBRIEF_REPORTING_CURRENCY})",
        min_value=0,
        widget=FastNumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal"}),
    )

    # Last, so the form draws it last (a fieldset after the other fields).
    # One row per deal whatever is picked, so no DISTINCT (it would defeat the keyset index).
    stage = django_filters.MultipleChoiceFilter(
        choices=Stage.choices,
        distinct=False,
        label="Stage",
        widget=FastCheckboxes,
    )

    def __init__(self, data=None, *args, user: User, people: list | None = None, **kwargs):
        # The list is always bound so that the default status (open deals) applies.
        data = data.copy() if data is not None else {}
        if not data.get("status"):
            data["status"] = Status.DEFAULT
        super().__init__(data, *args, **kwargs)
        self.user = user
        if user.is_rep:
            del self.filters["owner"]
        elif people is not None:
            # Read by the view already (selectors.pipeline_people).
            self.filters["owner"].extra["choices"] = people
        else:
            # Plain (id, name) pairs: a manager's select lists dozens of people.
            self.filters["owner"].extra["choices"] = lambda: [
                (pk, full_name or email)
                for pk, full_name, email in access.users_visible_to(user)
                .order_by("full_name", "email")
                .values_list("pk", "full_name", "email")
            ]
        # Callables, so the catalogue is read only when a <select> is drawn or a product or line
        # is picked (an htmx refresh of the results skips it), and then once for both.
        self.filters["product"].extra["choices"] = lambda: product_choices(self.catalogue)
        self.filters["line"].extra["choices"] = lambda: line_choices(self.catalogue)

    @cached_property
    def catalogue(self) -> list[Product]:
        return selectors.catalogue()

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        # The matching companies first (a trigram index search on PostgreSQL), then deals whose
        # title matches OR whose company is one of them: both sides are index scans combined
        # with a BitmapOr. An OR across the company join would test every deal in turn.
        company_ids = list(
            Company.objects.filter(name__icontains=value).order_by().values_list("pk", flat=True)
        )
        return queryset.filter(Q(title__icontains=value) | Q(company_id__in=company_ids))

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

    def active_filter_count(self) -> int:
        """
        How many filters change the list from the default (open deals, nothing narrowed), for
        the folded "Filters" button on a phone; ticked stages count as one filter. Filters that
        could not be used count as they were sent.
        """
        if self.is_valid():
            values = dict(self.form.cleaned_data)
        else:
            getlist = getattr(self.data, "getlist", lambda name: [self.data.get(name)])
            values = {
                name: [v for v in getlist(name) if v is not None and str(v).strip()]
                for name in self.form.fields
            }
            values["status"] = (values.get("status") or [None])[0]
        status = values.pop("status", None)
        count = sum(value not in (None, "", [], ()) for value in values.values())
        return count + (status not in (None, "", Status.DEFAULT))
