"""
Asking a buyer from the deal page, and the buyer's own public page.

The public page needs no login: its signed link is the permission (surveys.tokens), and a
link that is tampered with, expired or withdrawn gets a kind page that saves nothing. It is
rate-limited per link and per address, sends no referrer to other sites (the link is the
secret), is never cached and loads nothing but this site's stylesheet.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from accounts import access
from crm_site.forms import add_service_errors
from opportunities import selectors as opportunity_selectors
from surveys import selectors, services
from surveys.forms import BuyerSurveyForm

CLOSED_STATUS = {"invalid": 404, "withdrawn": 410, "expired": 410, "limited": 429}


@login_required
@require_POST
def survey_ask(request, opportunity_id: int):
    """Send the deal's contact the buyer survey of its latest close."""
    opportunity = opportunity_selectors.opportunity_for(request.user, opportunity_id)
    if not access.can_act_for(request.user, opportunity.owner):
        raise Http404("Not yours to ask about")
    try:
        survey = services.survey_request(actor=request.user, opportunity=opportunity)
    except PermissionDenied as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"A survey is on its way to {survey.contact.full_name} ({survey.email}). "
            "Their answers will show here and in the insights.",
        )
    return redirect(reverse("opportunities:detail", args=[opportunity.pk]))


def _link_key(group, request) -> str:
    return request.resolver_match.kwargs.get("token", "")[:200]


def _per_link(group, request) -> str:
    return settings.DEBRIEF_SURVEY_RATE_PER_LINK


def _per_address(group, request) -> str:
    return settings.DEBRIEF_SURVEY_RATE_PER_ADDRESS


def _public(request, template: str, context: dict, status: int = 200):
    response = render(request, template, context, status=status)
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _closed(request, why: str, survey=None):
    return _public(
        request, "surveys/closed.html", {"why": why, "survey": survey}, CLOSED_STATUS[why]
    )


def _limits(view):
    view = ratelimit(key=_link_key, rate=_per_link, group="surveys.link", block=False)(view)
    return ratelimit(key="ip", rate=_per_address, group="surveys.address", block=False)(view)


@require_http_methods(["GET", "POST"])
@_limits
def survey_answer(request, token: str):
    """The buyer's survey: answer, or change the answers until the link expires."""
    if getattr(request, "limited", False):
        return _closed(request, "limited")
    survey = selectors.survey_for_token(token)
    why = services.answer_refusal(survey)
    if why:
        return _closed(request, why, survey)
    form = BuyerSurveyForm(request.POST or None, survey=survey)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.survey_answer(
                    survey=survey,
                    answers=form.answers(),
                    revision=form.cleaned_data["revision"],
                )
            except ValidationError as exc:
                if getattr(exc, "code", None) == "stale":
                    return _public(
                        request, "surveys/stale.html", {"survey": survey, "token": token}, 409
                    )
                if getattr(exc, "code", None) == "closed":
                    return _closed(request, "expired", survey)
                add_service_errors(form, exc)
            else:
                return redirect(reverse("surveys:thanks", args=[token]))
        status = 422
    context = {"survey": survey, "form": form, "token": token}
    return _public(request, "surveys/answer.html", context, status)


@require_http_methods(["GET"])
@_limits
def survey_thanks(request, token: str):
    if getattr(request, "limited", False):
        return _closed(request, "limited")
    survey = selectors.survey_for_token(token)
    if survey is None:
        return _closed(request, "invalid")
    return _public(request, "surveys/thanks.html", {"survey": survey, "token": token})


@require_http_methods(["GET", "POST"])
@_limits
def survey_opt_out(request, token: str):
    """ "Don't ask me again": a confirm button (GET), then the opt-out (POST)."""
    if getattr(request, "limited", False):
        return _closed(request, "limited")
    survey = selectors.survey_for_token(token)
    if survey is None:
        return _closed(request, "invalid")
    done = False
    if request.method == "POST":
        services.survey_opt_out(survey=survey)
        done = True
    context = {"survey": survey, "token": token, "done": done}
    return _public(request, "surveys/opt_out.html", context)
