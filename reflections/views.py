"""Closing a deal with its reflection, reopening it, and reading or amending a reflection."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts import access
from crm_site.forms import add_service_errors
from crm_site.redirects import safe_next
from customers.models import Company
from opportunities import selectors as opportunity_selectors
from reflections import brief, selectors, services
from reflections.forms import CallDebriefForm, ReflectionForm
from reflections.models import Origin, Outcome


def _redirect(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_http_methods(["GET", "POST"])
@login_required
def close_opportunity(request, opportunity_id: int, outcome: str):
    """The matching prompt set, inline (htmx into the page's modal slot) or as a page."""
    if outcome not in Outcome.values:
        raise Http404("Unknown outcome")
    opportunity = opportunity_selectors.opportunity_for(request.user, opportunity_id)
    if not access.can_act_for(request.user, opportunity.owner):
        raise Http404("Not yours to close")
    detail_url = reverse("opportunities:detail", args=[opportunity.pk])
    # Closed from the board (or another list): go back there afterwards, not to the deal.
    next_url = safe_next(request)
    if not opportunity.is_open:
        messages.info(request, "This deal is already closed. Its reflection is on its page.")
        return _redirect(request, detail_url)
    prompt_set = selectors.prompt_set_for(outcome, opportunity.product.line_id)
    if prompt_set is None:
        messages.error(
            request,
            f"No questions are set up for closing as {Outcome(outcome).label.lower()}. "
            "Ask an administrator to add a prompt set.",
        )
        return _redirect(request, detail_url)
    form = ReflectionForm(request.POST or None, prompt_set=prompt_set, outcome=outcome)
    status = 200
    if request.method == "POST":
        posted_set = request.POST.get("prompt_set")
        if posted_set and posted_set != str(prompt_set.pk):
            form.is_valid()
            form.add_error(
                None,
                "The questions for this outcome changed while you were answering. "
                "Your answers were not saved; please answer the current questions.",
            )
        elif form.is_valid():
            try:
                reflection = services.opportunity_close(
                    actor=request.user,
                    opportunity=opportunity,
                    outcome=outcome,
                    prompt_set=prompt_set,
                    answers=form.answers(),
                )
            except PermissionDenied as exc:
                raise Http404 from exc
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"“{opportunity.title}” is closed as {Outcome(outcome).label.lower()}. "
                    "Thank you for the reflection: it feeds everyone's insights.",
                )
                for note in getattr(reflection, "after_commit_notes", []):
                    messages.info(request, note)
                return _redirect(request, next_url or detail_url)
        status = 422
    context = {
        "opportunity": opportunity,
        "outcome": outcome,
        "outcome_label": Outcome(outcome).label,
        "prompt_set": prompt_set,
        "form": form,
        "next": next_url,
    }
    template = "reflections/close.html#close_dialog" if request.htmx else "reflections/close.html"
    return render(request, template, context, status=status)


@require_POST
@login_required
def reopen_opportunity(request, opportunity_id: int):
    opportunity = opportunity_selectors.opportunity_for(request.user, opportunity_id)
    try:
        services.opportunity_reopen(actor=request.user, opportunity=opportunity)
    except PermissionDenied as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"“{opportunity.title}” is open again. Its reflection stays in its history.",
        )
    return _redirect(request, reverse("opportunities:detail", args=[opportunity.pk]))


def _can_see_history(user, reflection) -> bool:
    """The author and the deal's managers (and admins) read earlier versions."""
    return reflection.author_id == user.pk or access.manages(user, reflection.opportunity.owner)


@login_required
def reflection_detail(request, reflection_id: int):
    reflection = selectors.reflection_for(request.user, reflection_id)
    context = {
        "reflection": reflection,
        "can_amend": services.can_amend(request.user, reflection),
        "editable_until": services.reflection_editable_until(reflection),
        "show_history": _can_see_history(request.user, reflection),
    }
    return render(request, "reflections/reflection_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def reflection_amend(request, reflection_id: int):
    reflection = selectors.reflection_for(request.user, reflection_id)
    if reflection.author_id != request.user.pk:
        raise Http404("Only the author amends a reflection")
    detail_url = reverse("reflections:detail", args=[reflection.pk])
    if reflection.origin == Origin.IMPORTED:
        messages.error(request, services.IMPORTED_NOT_AMENDABLE)
        return redirect(detail_url)
    if not services.can_amend(request.user, reflection):
        messages.error(request, "This reflection can no longer be amended.")
        return redirect(detail_url)
    form = ReflectionForm(
        request.POST or None, prompt_set=reflection.prompt_set, outcome=reflection.outcome
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.reflection_amend(
                    actor=request.user, reflection=reflection, answers=form.answers()
                )
            except PermissionDenied as exc:
                raise Http404 from exc
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Reflection amended. The earlier version is kept.")
                return redirect(detail_url)
        status = 422
    else:
        form.initial_from(reflection)
    context = {"reflection": reflection, "form": form}
    return render(request, "reflections/amend.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def debrief_create(request, company_id: int):
    """The quick after-call form on the company page; htmx swaps the debrief section."""
    company = get_object_or_404(Company, pk=company_id)
    form = CallDebriefForm(request.POST or None, company=company, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                debrief = services.call_debrief_create(
                    author=request.user, company=company, **form.cleaned_data
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                if not request.htmx:
                    messages.success(request, "Debrief saved.")
                    return redirect("customers:company_detail", company_id=company.pk)
                context = brief.debrief_context(request, company)
                context["saved"] = debrief
                context["pinned"] = selectors.high_card_debriefs(company.pk)
                context["refresh_pinned"] = debrief.high_card
                return render(request, "reflections/brief/debriefs.html", context)
        status = 422
    context = brief.debrief_context(request, company, form)
    template = (
        "reflections/brief/debriefs.html" if request.htmx else "reflections/debrief_page.html"
    )
    return render(request, template, context, status=status)
