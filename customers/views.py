from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from accounts import access
from crm_site import sections
from customers import selectors, services
from customers.forms import CompanyForm, CompanySearchForm, ContactForm
from customers.models import Company
from customers.selectors import contacts_of

COMPANIES_PER_PAGE = 25


@login_required
def company_list(request):
    form = CompanySearchForm(request.GET)
    form.is_valid()
    filters = form.filters()
    page = Paginator(selectors.companies_filtered(**filters), COMPANIES_PER_PAGE).get_page(
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


def _brief_context(request, company: Company, contact_form: ContactForm) -> dict:
    """
    The pre-call brief: the company's own facts and contacts, plus the sections later apps add
    (what not to pitch, deals, past reflections, debriefs, the objection playbook).
    """
    # The contacts prefetched by selectors.company_for_brief, or read here.
    contacts = list(company.contacts.all())
    return {
        "company": company,
        "contacts": contacts,
        "contact_form": contact_form,
        "can_edit": access.can_edit_company(
            request.user, company, owns_deal=getattr(company, "user_owns_deal", None)
        ),
        "sections": sections.collect("DEBRIEF_BRIEF_SECTIONS", request=request, company=company),
    }


@login_required
def company_detail(request, company_id: int):
    company = selectors.company_for_brief(request.user, company_id)
    context = _brief_context(request, company, ContactForm(company=company))
    return render(request, "customers/company_detail.html", context)


@login_required
def company_create(request):
    form = CompanyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            company = services.company_create(**form.cleaned_data, created_by=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{company.name} was added.")
            return redirect("customers:company_detail", company_id=company.pk)
    return render(request, "customers/company_form.html", {"form": form, "company": None})


@login_required
def company_edit(request, company_id: int):
    company = get_object_or_404(Company, pk=company_id)
    if not access.can_edit_company(request.user, company):
        raise Http404("Not yours to edit")
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
    context = _brief_context(request, company, form)
    return render(request, "customers/company_detail.html", context)
