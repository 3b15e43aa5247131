"""Insight dashboards, their CSV exports, and "refresh now" with its progress bar."""

import csv
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from accounts import access
from crm_site.csvsafe import safe_cell
from insights import gap, queue, selectors, services
from insights.exports import EXPORTABLE, export_rows
from insights.forms import LessonFilterForm, report_params
from insights.models import PeriodKind, RunStatus, Source
from insights.periods import Period
from opportunities.models import ProductLine

REFRESHED_EVENT = "insightsRefreshed"


def _report(request, *, with_gap: bool = False):
    params = report_params(request.GET)
    options = selectors.scope_options(request.user)
    scope = selectors.scope_for(request.user, params["scope"], options)
    periods = selectors.available_periods(params["kind"])
    period = params["period"] or periods[0]
    report = selectors.report_for(
        request.user,
        kind=params["kind"],
        period=period,
        scope=scope,
        source=params["source"],
        with_gap=with_gap,
    )
    return report, options, periods


def _query(report, **changes) -> str:
    values = {
        "kind": report.kind,
        "period": report.period.start.isoformat(),
        "scope": report.scope.value,
        "source": report.source,
    }
    values.update(changes)
    return urlencode(values)


@require_GET
@login_required
def dashboard(request):
    """Win rate, amounts, cycle time, reasons, competitors, objections and segments."""
    report, options, periods = _report(request, with_gap=True)
    if report.period not in periods:
        periods = sorted([*periods, report.period], reverse=True)
    dashboard_url = reverse("insights:dashboard")
    context = {
        "report": report,
        "scope_groups": options,
        "periods": periods,
        "period_kinds": PeriodKind.choices,
        "sources": Source.choices,
        "report_url": f"{dashboard_url}?{_query(report)}",
        "previous_url": f"{dashboard_url}?"
        + _query(report, period=report.period.previous().start.isoformat()),
        "next_url": f"{dashboard_url}?"
        + _query(report, period=report.period.next().start.isoformat()),
        "export_query": _query(report),
        "currency": settings.DEBRIEF_REPORTING_CURRENCY,
        **selectors.dashboard_runs(request.user),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "insights/dashboard.html#report" if partial else "insights/dashboard.html"
    return render(request, template, context)


@require_GET
@login_required
def export(request, table: str):
    """One report table as CSV, with the same scope rules and hidden slices as the page."""
    if table not in EXPORTABLE:
        raise Http404("No such table")
    report, _, _ = _report(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"insights-{table}-{report.kind}-{report.period.start}-{report.scope.value}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename.replace(":", "-")}"'
    writer = csv.writer(response)
    for row in export_rows(report, table):
        writer.writerow([safe_cell(value) for value in row])
    return response


# --- refresh now -------------------------------------------------------------------------------
@require_POST
@login_required
def refresh(request):
    """Start a full rebuild (or join the one under way) and show its progress."""
    run = queue.insight_run_request_rebuild(requested_by=request.user)
    run.refresh_from_db()  # queued, already started, or (a tiny database) done
    unqueued = run.status == RunStatus.FAILED and run.error == services.QUEUE_FAILED
    if request.htmx:
        # 503 when the job could not even be queued (the queue is down): the page says so.
        status = 503 if unqueued else 202
        context = {"run": run, "oob": True}
        response = render(request, "insights/dashboard.html#progress", context, status=status)
        if run.status == RunStatus.SUCCEEDED:
            trigger_client_event(response, REFRESHED_EVENT)
        return response
    if unqueued:
        messages.error(request, run.error)
    else:
        messages.info(request, "Insights are being recomputed. Reload this page to see progress.")
    return redirect("insights:dashboard")


@require_GET
@login_required
def run_progress(request, run_id: int):
    """The progress fragment htmx polls every second; 286 stops the polling once finished."""
    run = selectors.run_for(request.user, run_id)
    if run.status == RunStatus.RUNNING and queue.insight_runs_reap():
        run.refresh_from_db()  # its worker died: it failed, and a new run took its place
    # A run that succeeded also brings the header's "Figures as of" up to date (out of band).
    context = {"run": run, "oob": True}
    if not run.finished:
        return render(request, "insights/dashboard.html#progress", context)
    response = HttpResponseStopPolling(
        render(request, "insights/dashboard.html#progress", context).content
    )
    if run.status == RunStatus.SUCCEEDED:
        trigger_client_event(response, REFRESHED_EVENT)
    return response


# --- My reflections ----------------------------------------------------------------------------
@require_GET
@login_required
def my_reflections(request):
    """The signed-in user's private mirror: their figures next to the organisation's, their
    lessons, what works against the objections they meet. Nobody else's data, ever."""
    me = access.private_subject(request)
    lines = list(ProductLine.objects.order_by("name").values_list("pk", "name"))
    form = LessonFilterForm(request.GET, lines=lines)
    form.is_valid()  # a malformed value is left out and defaults below
    cleaned = form.cleaned_data
    kind = cleaned.get("kind") or PeriodKind.QUARTER
    day = cleaned.get("period")
    period = Period.containing(kind, day) if day else None
    lessons = selectors.my_lessons(
        me,
        search=cleaned.get("q") or "",
        line=cleaned.get("line"),
        outcome=cleaned.get("outcome") or "",
    )
    page = Paginator(lessons, selectors.LESSONS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "lessons_query": query.urlencode(),
        "filtered": bool(cleaned.get("q") or cleaned.get("line") or cleaned.get("outcome")),
    }
    if request.htmx and request.htmx.target == "lessons":
        return render(request, "insights/my_reflections.html#lessons", context)
    context.update(
        mirror=selectors.my_mirror(me, kind=kind, period=period),
        objections=selectors.my_objections(me),
        calibration=gap.calibration(me, today=timezone.localdate()),
        period_kinds=PeriodKind.choices,
    )
    return render(request, "insights/my_reflections.html", context)
