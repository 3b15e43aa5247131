from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from accounts.models import User
from customers import services
from customers.forms import CompanyForm, CompanySearchForm, ContactForm
from customers.models import Company
from customers.normalize import normalize_domain
from customers.selectors import contacts_of
from opportunities.models import CLOSED_STAGES, OPEN_STAGES, Stage
from opportunities.selectors import opportunities_visible_to

COMPANIES_PER_PAGE = 25


def _companies_filtered(*, q: str = "", segment: str = "", region: str = "") -> QuerySet[Company]:
    # Ordered by Lower(name) so the company_name_lower_idx index serves the sort.
    companies = Company.objects.order_by(Lower("name"), "id")
    if q:
        match = Q(name__icontains=q)
        domain = normalize_domain(q)
        if domain:
            match |= Q(domain__icontains=domain)
        companies = companies.filter(match)
    if segment:
        companies = companies.filter(segment=segment)
    if region:
        companies = companies.filter(region=region)
    return companies


@login_required
def company_list(request):
    form = CompanySearchForm(request.GET)
    form.is_valid()
    filters = form.filters()
    page = Paginator(_companies_filtered(**filters), COMPANIES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "form": form,
        "page": page,
        "filters": filters,
        # Pager links keep the filters: "?q=acme&page=2".
        "page_query": f"{urlencode(filters)}&" if filters else "",
    }
    template = "customers/company_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _brief_context(user: User, company: Company, contact_form: ContactForm) -> dict:
    """
    Everything the pre-call brief shows, in a fixed number of queries. Open deals follow the
    pipeline's visibility rules; closed deals are the customer's history and are shown
    org-wide, linked only where the user may open them.
    """
    visible = opportunities_visible_to(user).filter(company=company)
    open_deals = list(
        visible.filter(stage__in=OPEN_STAGES)
        .select_related("owner", "product", "contact")
        .order_by("expected_close_date", "id")
    )
    closed_deals = list(
        company.opportunities.filter(stage__in=CLOSED_STAGES)
        .select_related("owner", "product")
        .annotate(can_open=Exists(visible.filter(pk=OuterRef("pk"))))
        .order_by("-closed_date", "-id")
    )
    outcomes = {stage: 0 for stage in CLOSED_STAGES}
    for deal in closed_deals:
        outcomes[deal.stage] += 1
    return {
        "company": company,
        "contacts": list(contacts_of(company)),
        "contact_form": contact_form,
        "open_deals": open_deals,
        "closed_deals": closed_deals,
        "won_count": outcomes[Stage.WON],
        "lost_count": outcomes[Stage.LOST],
        "no_decision_count": outcomes[Stage.NO_DECISION],
    }


@login_required
def company_detail(request, company_id: int):
    company = get_object_or_404(Company, pk=company_id)
    context = _brief_context(request.user, company, ContactForm(company=company))
    return render(request, "customers/company_detail.html", context)


@login_required
def company_create(request):
    form = CompanyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            company = services.company_create(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{company.name} was added.")
            return redirect("customers:company_detail", company_id=company.pk)
    return render(request, "customers/company_form.html", {"form": form, "company": None})


@login_required
def company_edit(request, company_id: int):
    company = get_object_or_404(Company, pk=company_id)
    # Validation writes the typed values onto the instance; the heading keeps the saved name.
    saved_name = company.name
    form = CompanyForm(request.POST or None, instance=company)
    if request.method == "POST" and form.is_valid():
        try:
            services.company_update(company=company, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Your changes were saved.")
            return redirect("customers:company_detail", company_id=company.pk)
    return render(
        request,
        "customers/company_form.html",
        {"form": form, "company": company, "saved_name": saved_name},
    )


@login_required
@require_POST
def contact_create(request, company_id: int):
    company = get_object_or_404(Company, pk=company_id)
    form = ContactForm(request.POST, company=company)
    if form.is_valid():
        try:
            contact = services.contact_create(company=company, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if request.htmx:
                context = {
                    "company": company,
                    "contacts": list(contacts_of(company)),
                    "contact_form": ContactForm(company=company),
                    "added": contact,
                }
                return render(request, "customers/company_detail.html#contacts", context)
            messages.success(request, f"{contact.full_name} was added to {company.name}.")
            return redirect(reverse("customers:company_detail", args=[company.pk]) + "#contacts")
    if request.htmx:
        response = render(
            request,
            "customers/company_detail.html#contact_form",
            {"company": company, "contact_form": form},
        )
        return reswap(retarget(response, "#contact-form"), "outerHTML")
    context = _brief_context(request.user, company, form)
    return render(request, "customers/company_detail.html", context)
