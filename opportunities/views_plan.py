"""The stage board and the rep's own plan of next steps."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import retarget

from crm_site import sections
from crm_site.forms import add_service_errors
from crm_site.redirects import safe_next
from opportunities import selectors, services
from opportunities.forms import NextStepForm, StageMoveForm


def _board_context(user) -> dict:
    return {"board": selectors.board_for(user)}


@login_required
def board(request):
    context = _board_context(request.user)
    template = "opportunities/board.html#board" if request.htmx else "opportunities/board.html"
    return render(request, template, context)


@require_POST
@login_required
def move_stage(request, opportunity_id: int):
    opportunity = selectors.opportunity_for(request.user, opportunity_id)
    form = StageMoveForm(request.POST)
    error = None
    if form.is_valid():
        try:
            services.opportunity_move_stage(
                actor=request.user, opportunity=opportunity, to_stage=form.cleaned_data["to"]
            )
        except PermissionDenied as exc:
            raise Http404 from exc
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = "Pick one of the open stages to move the deal to."
    if request.htmx:
        context = _board_context(request.user)
        context["board_error"] = error
        response = render(request, "opportunities/board.html#board", context)
        if error:
            response.status_code = 422
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Moved “{opportunity.title}”.")
    return redirect("opportunities:board")


def _plan_context(user) -> dict:
    return {"plan": selectors.plan_for(user)}


@login_required
def plan(request):
    context = _plan_context(request.user)
    if request.htmx:
        return render(request, "opportunities/plan.html#plan", context)
    # Later apps add theirs on top (a manager's requests waiting for a decision).
    context["sections"] = sections.collect("DEBRIEF_HOME_SECTIONS", request=request)
    return render(request, "opportunities/plan.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def next_step_edit(request, opportunity_id: int):
    """Inline edit of one deal's next step; on save the whole plan is re-rendered."""
    opportunity = selectors.opportunity_for(request.user, opportunity_id)
    if not opportunity.is_open:
        raise Http404("Closed deals have no next step.")
    if request.method == "POST":
        form = NextStepForm(request.POST)
        if form.is_valid():
            try:
                services.opportunity_set_next_step(
                    actor=request.user,
                    opportunity=opportunity,
                    next_step=form.cleaned_data["next_step"],
                    next_step_due=form.cleaned_data["next_step_due"],
                )
            except PermissionDenied as exc:
                raise Http404 from exc
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                if request.htmx:
                    context = _plan_context(request.user)
                    return render(request, "opportunities/plan.html#plan", context)
                messages.success(request, f"Next step saved for “{opportunity.title}”.")
                return redirect(safe_next(request) or reverse("opportunities:plan"))
        status = 422
    else:
        form = NextStepForm(
            initial={
                "next_step": opportunity.next_step,
                "next_step_due": opportunity.next_step_due,
            }
        )
        status = 200
    context = {"opportunity": opportunity, "form": form}
    if request.htmx:
        response = render(request, "opportunities/plan_next_step_form.html", context, status=status)
        return retarget(response, f"#deal-{opportunity.pk}") if status == 422 else response
    return render(request, "opportunities/plan_next_step_page.html", context, status=status)
