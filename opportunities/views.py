"""
The pipeline list, the deal page and the deal form, with their two autocomplete endpoints.

The pipeline is paged with crm_site.pagination.KeysetPaginator (see its docstring for why not
django-cursor-pagination) and counts at most PIPELINE_COUNT_CAP rows, so a page costs the same
on 100 or 100,000 deals.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, prefetch_related_objects
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts import access
from crm_site import sections
from crm_site.forms import add_service_errors
from crm_site.pagination import KeysetPaginator
from customers import selectors as customer_selectors
from opportunities import selectors, services
from opportunities.filters import (
    SORT_LABELS,
    SORTS,
    OpportunityFilter,
    ordering_for,
    parse_sort,
)
from opportunities.forms import CONTACT_OPTIONS_LIMIT, OpportunityForm, contact_label
from opportunities.guard import guard
from opportunities.models import OPEN_STAGES, Opportunity, StageChange

PIPELINE_COUNT_CAP = 1000
AUTOCOMPLETE_LIMIT = 10


def _wants_fragment(request) -> bool:
    # A history restore (back button after the cache is gone) needs the whole page.
    return bool(request.htmx) and not request.htmx.history_restore_request


def deal_flags(rows: list[dict]) -> dict:
    """The suppression flags of the open deals among pipeline rows (see flags_for_deals)."""
    return guard().flags_for_deals(
        (r["id"], r["company_id"], r["contact_id"], r["product_id"], r["product__line_id"])
        for r in rows
        if r["stage"] in OPEN_STAGES
    )


def _filter_errors(filterset: OpportunityFilter) -> list[tuple[str, str]]:
    fields = filterset.form.fields
    return [
        (fields[name].label if name in fields else "", error)
        for name, errors in filterset.errors.items()
        for error in errors
    ]


# The table's columns in order: (sort key or None, heading, numeric).
COLUMNS = (
    ("title", "Deal", False),
    ("company", "Company", False),
    (None, "Product", False),
    (None, "Stage", False),
    ("owner", "Owner", False),
    ("amount", "Amount", True),
    ("close", "Expected close", False),
    (None, "Next step", False),
)


def _table_headers(request, sort: str, show_owner: bool) -> list[dict]:
    """
    The pipeline's column headings: for a sortable one, the URL that sorts by it (reversing
    the order when it is already the sort; the filters kept, the page reset) and its aria-sort.
    """
    key, descending = sort.lstrip("-"), sort.startswith("-")
    params = request.GET.copy()
    for name in ("after", "before"):
        params.pop(name, None)
    headers = []
    for column, label, numeric in COLUMNS:
        if column == "owner":
            if show_owner:
                headers.append({"label": label})
            continue
        header = {"label": label, "numeric": numeric}
        if column in SORTS:
            current = column == key
            params["sort"] = f"-{column}" if current and not descending else column
            header["url"] = f"?{params.urlencode()}"
            header["aria"] = ("descending" if descending else "ascending") if current else ""
        headers.append(header)
    return headers


@login_required
@require_GET
def pipeline(request):
    user = request.user
    people = selectors.pipeline_people(user)
    filterset = OpportunityFilter(
        request.GET,
        queryset=selectors.pipeline_for(user, people=people),
        user=user,
        people=people,
    )
    sort = parse_sort(request.GET.get("sort"))
    page, count, flags = None, 0, {}
    if filterset.is_valid():
        queryset = filterset.qs
        paginator = KeysetPaginator(
            # The capped count rides along on every row: the page and the count in one query.
            selectors.pipeline_rows(queryset, count_upto=PIPELINE_COUNT_CAP + 1),
            ordering_for(sort),
            settings.DEBRIEF_PIPELINE_PAGE_SIZE,
        )
        page = paginator.page(after=request.GET.get("after"), before=request.GET.get("before"))
        # An empty page shows no count (only a message), so 0 there is never drawn.
        count = page.items[0][selectors.PIPELINE_COUNT_KEY] if page.items else 0
        flags = deal_flags(page.items)
    context = {
        "filter": filterset,
        "filter_errors": _filter_errors(filterset),
        "page": page,
        "count": count,
        "count_capped": count > PIPELINE_COUNT_CAP,
        "count_cap": PIPELINE_COUNT_CAP,
        "sort": sort,
        "sort_label": SORT_LABELS[sort.lstrip("-")],
        "sort_descending": sort.startswith("-"),
        "headers": _table_headers(request, sort, show_owner=not user.is_rep),
        "status": filterset.selected_status if filterset.is_valid() else None,
        "narrowed": filterset.has_narrowing_filters(),
        "active_filters": filterset.active_filter_count(),
        "show_owner": not user.is_rep,
        "flags": flags,
    }
    template = "opportunities/pipeline.html"
    fragment = _wants_fragment(request)
    # A fragment also refreshes the count on the folded "Filters" button, out of band.
    context["filter_count_oob"] = fragment
    if fragment:
        template += "#results"
    response = render(request, template, context)
    if fragment and request.htmx.current_url_abs_path == request.get_full_path():
        # The same list again (the search box losing focus fires "change" after its input
        # already drew the list): no second history entry for Back to step through.
        response["HX-Push-Url"] = "false"
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def opportunity_detail(request, opportunity_id: int):
    deal = selectors.opportunity_for(request.user, opportunity_id)
    prefetch_related_objects(
        [deal],
        Prefetch(
            "stage_changes",
            queryset=StageChange.objects.select_related("changed_by").order_by("changed_at", "id"),
        ),
    )
    can_edit = deal.is_open and access.can_act_for(request.user, deal.owner)
    # An open deal that a suppression now covers is flagged here, with every sentence; the
    # exception that counts is one approved for this very deal.
    verdict = (
        services.pitch_verdict(
            company=deal.company, contact=deal.contact, product=deal.product, opportunity=deal
        )
        if deal.is_open
        else None
    )
    context = {
        "deal": deal,
        "can_edit": can_edit,
        "verdict": verdict,
        "reporting_currency": settings.DEBRIEF_REPORTING_CURRENCY,
        "sections": sections.collect("DEBRIEF_DEAL_SECTIONS", request=request, opportunity=deal),
    }
    return render(request, "opportunities/opportunity_detail.html", context)


def _form_response(request, form: OpportunityForm, deal: Opportunity | None):
    codes = {e.code for e in form.non_field_errors().as_data()}
    context = {
        "form": form,
        "deal": deal,
        "blocked": bool(codes & {"suppressed", "do_not_contact"}),
        "do_not_contact": "do_not_contact" in codes,
    }
    template = "opportunities/opportunity_form.html"
    if _wants_fragment(request):
        template += "#deal-form"
    return render(request, template, context)


def _saved(request, deal: Opportunity, text: str):
    messages.success(request, text)
    url = reverse("opportunities:detail", args=[deal.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_create(request):
    user = request.user
    if request.method != "POST":
        initial = OpportunityForm.initial_for_company(request.GET.get("company"))
        return _form_response(request, OpportunityForm(user=user, initial=initial), None)
    form = OpportunityForm(request.POST, user=user)
    if form.is_valid():
        kwargs = form.service_kwargs()
        kwargs.setdefault("owner", user)
        try:
            deal = services.opportunity_create(actor=user, **kwargs)
        except PermissionDenied as exc:
            raise Http404("Not found") from exc
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _saved(request, deal, f"“{deal.title}” is in your pipeline.")
    return _form_response(request, form, None)


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_edit(request, opportunity_id: int):
    user = request.user
    deal = selectors.opportunity_for(user, opportunity_id)
    if not access.can_act_for(user, deal.owner):
        raise Http404("Not found")
    if deal.is_closed:
        messages.warning(
            request,
            f"“{deal.title}” is closed ({deal.get_stage_display()}), so it cannot be edited. "
            "Reopen it first if the deal is live again.",
        )
        url = reverse("opportunities:detail", args=[deal.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.method != "POST":
        return _form_response(request, OpportunityForm(user=user, opportunity=deal), deal)
    form = OpportunityForm(request.POST, user=user, opportunity=deal)
    if form.is_valid():
        initial = OpportunityForm.initial_for(deal)
        changes = {
            name: value
            for name, value in form.service_kwargs().items()
            if getattr(value, "pk", value) != initial.get(name)
        }
        try:
            deal = services.opportunity_update(actor=user, opportunity=deal, **changes)
        except PermissionDenied as exc:
            raise Http404("Not found") from exc
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _saved(request, deal, f"Saved your changes to “{deal.title}”.")
    return _form_response(request, form, deal)


@login_required
@require_GET
def company_autocomplete(request):
    # The deal form's visible input is named company_name; `q` is the documented parameter.
    query = request.GET.get("q", request.GET.get("company_name", ""))[:100]
    companies = customer_selectors.companies_matching(query, limit=AUTOCOMPLETE_LIMIT)
    return render(
        request,
        "opportunities/autocomplete_companies.html",
        {"companies": companies, "query": query.strip()},
    )


@login_required
@require_GET
def contact_options(request):
    try:
        company_id = int(request.GET.get("company", ""))
    except ValueError:
        company_id = None
    contacts = (
        customer_selectors.contacts_of(company_id)[:CONTACT_OPTIONS_LIMIT] if company_id else []
    )
    options = [("", "No contact yet")] + [(c.pk, contact_label(c)) for c in contacts]
    return render(request, "opportunities/autocomplete_contact_options.html", {"options": options})
