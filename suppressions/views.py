"""Suppression pages: the call-list check, override requests and decisions, lifting, DNC."""

import unicodedata
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseStopPolling,
    reswap,
    retarget,
)
from django_htmx.middleware import HtmxDetails

from accounts import access
from crm_site.forms import add_service_errors
from crm_site.middleware import takes_large_bodies
from crm_site.redirects import safe_next
from customers.models import Company, Contact
from opportunities.models import Opportunity, Product
from suppressions import calllist, decisions, jobs, selectors, services
from suppressions.forms import (
    CallListForm,
    DoNotContactForm,
    LiftForm,
    OverrideDecisionForm,
    OverrideRequestForm,
)
from suppressions.models import (
    CallListChunkStatus,
    CallListJob,
    CallListJobStatus,
    OverrideStatus,
    Suppression,
)

# Room for the form around the file in a call list's upload.
FORM_MARGIN = 64 * 1024


def _call_list_body_limit(request) -> int | None:
    """The largest upload the call-list page takes from this request (see takes_large_bodies)."""
    user = getattr(request, "user", None)
    if request.method == "POST" and user is not None and user.is_authenticated:
        return calllist.max_bytes() + FORM_MARGIN
    return None


def _call_list_too_large(request, length: int = 0):
    """The page, with its error in place, for an upload over the limit; none of it was read."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None  # the plain refusal; the page is for signed-in people
    if not hasattr(request, "htmx"):  # refused before django-htmx's middleware ran
        request.htmx = HtmxDetails(request)
    context = {
        **_call_list_context(CallListForm()),
        "error": f"The file is larger than {calllist.size_text(calllist.max_bytes())}. "
        "Split it and check each part.",
    }
    return _call_list_page(request, context, status=413)


def _call_list_context(form) -> dict:
    return {
        "form": form,
        "max_rows": calllist.max_rows(),
        "inline_rows": calllist.inline_rows(),
        "keep_hours": settings.DEBRIEF_CALLLIST_KEEP_HOURS,
    }


@takes_large_bodies(_call_list_body_limit, _call_list_too_large)
@require_http_methods(["GET", "POST"])
@login_required
def call_list_check(request):
    """
    Upload a call list. "Check" (?summary=1) shows what the check finds on the page; "Check and
    download" answers the file itself, streamed, with suppressed / reason / until / problem
    added. A list of more than DEBRIEF_CALLLIST_INLINE_ROWS rows becomes a job instead (either
    button): the answer is its page, which shows the progress and then offers the file.
    """
    wants_summary = request.GET.get("summary") == "1"
    jobs.sweep_if_due()  # the embedded default has no beat to delete expired files
    context = _call_list_context(CallListForm())
    if request.method == "POST":
        # A larger body was refused before anything read it (takes_large_bodies); this one is
        # within the size every page takes, but still over the call list's.
        if int(request.META.get("CONTENT_LENGTH") or 0) > _call_list_body_limit(request):
            return _call_list_too_large(request)
        form = context["form"] = CallListForm(request.POST, request.FILES)
        if not form.is_valid():
            return _call_list_page(request, context, status=400)
        upload = form.cleaned_data["file"]
        try:
            layout = calllist.validate(upload)
            job = (
                jobs.call_list_job_create(upload=upload, layout=layout, owner=request.user)
                if layout.rows > calllist.inline_rows()
                else None
            )
        except calllist.CallListError as exc:
            form.add_error("file", str(exc))
            return _call_list_page(request, context, status=400)
        if job is not None:
            url = reverse("suppressions:call_list_job", args=[job.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        if wants_summary:
            context["summary"] = calllist.summarise(upload, layout)
            context["file_name"] = upload.name
            context["form"] = CallListForm()  # a page cannot hand the file back to the browser
            return _call_list_page(request, context, status=200)
        response = StreamingHttpResponse(
            calllist.annotate(upload, layout), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = _attachment(upload.name)
        response["X-Rows-Checked"] = str(layout.rows)
        return response
    return _call_list_page(request, context, status=200)


def _attachment(uploaded_name: str) -> str:
    """
    The checked file's Content-Disposition: the uploaded name, plain, with "-checked"; a name
    beyond ASCII goes in filename* (RFC 6266), after an ASCII one for older clients.
    """
    name = uploaded_name.rsplit(".", 1)[0][:80]
    safe = "".join(ch for ch in name if ch.isalnum() or ch in "-_ ").strip() or "call-list"
    plain = unicodedata.normalize("NFKD", safe).encode("ascii", "ignore").decode().strip()
    header = f'attachment; filename="{plain or "call-list"}-checked.csv"'
    if plain != safe:
        header += f"; filename*=utf-8''{quote(f'{safe}-checked.csv')}"
    return header


def _call_list_page(request, context: dict, *, status: int):
    """
    The page, or for htmx its summary (the file stays chosen in the browser, ready to download)
    or, when the file was refused, the form with its error in place of form and summary.
    """
    template = "suppressions/call_list_check.html"
    if not request.htmx:
        context["recent_jobs"] = list(
            selectors.call_list_jobs_visible_to(request.user).filter(owner=request.user)[
                :RECENT_JOBS
            ]
        )
        return render(request, template, context, status=status)
    if status == 200:
        return render(request, f"{template}#result", context)
    response = render(request, f"{template}#check", context, status=422)
    return reswap(retarget(response, "#call-list-check"), "outerHTML")


# --- call-list jobs ----------------------------------------------------------------------------
RECENT_JOBS = 10
JOB_TEMPLATE = "suppressions/call_list_job.html"


def _job_for(request, job_id: int) -> CallListJob:
    """The job if it is the user's (an administrator's: anyone's); 404 for any other id."""
    return access.get_or_404(selectors.call_list_jobs_visible_to(request.user), pk=job_id)


def _job_context(job: CallListJob) -> dict:
    chunks = list(job.chunks.values_list("status", "rows_done", "rows"))
    done = sum(rows if status == "done" else rows_done for status, rows_done, rows in chunks)
    stalled = jobs.stalled(job)
    return {
        "job": job,
        "rows_done": min(done, job.rows),
        "percent": min(100, round(100 * done / job.rows)) if job.rows else 0,
        "parts": len(chunks),
        "parts_done": sum(1 for status, _, _ in chunks if status == "done"),
        "parts_failed": sum(1 for status, _, _ in chunks if status == "failed"),
        "under_way": job.status in jobs.UNDER_WAY and not stalled,
        "stalled": stalled,
        "summary": calllist.Tally.merge([job.counts]).summary() if job.counts else None,
    }


@require_GET
@login_required
def call_list_job(request, job_id: int):
    """
    A call-list job's page: its progress while it runs (polled by htmx every second, which
    stops once it ends), then what the check found and the checked file to download, until it
    expires. Also lists the person's recent jobs.
    """
    job = jobs.expire_if_due(_job_for(request, job_id))
    context = _job_context(job)
    if request.htmx:
        response = render(request, f"{JOB_TEMPLATE}#progress", context)
        # Finished: the fragment's last version, and htmx stops asking (286).
        return response if context["under_way"] else HttpResponseStopPolling(response.content)
    jobs.sweep_if_due()  # the embedded default's only sweep: it has no beat
    # The others: this one's status is in the part that htmx keeps up to date.
    context["recent_jobs"] = list(
        selectors.call_list_jobs_visible_to(request.user)
        .filter(owner=request.user)
        .exclude(pk=job.pk)[:RECENT_JOBS]
    )
    return render(request, JOB_TEMPLATE, context)


@require_POST
@login_required
def call_list_job_cancel(request, job_id: int):
    job = _job_for(request, job_id)
    try:
        jobs.call_list_job_cancel(job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Cancelled. The uploaded file was deleted.")
    return redirect("suppressions:call_list_job", job_id=job.pk)


@require_POST
@login_required
def call_list_job_retry(request, job_id: int):
    job = _job_for(request, job_id)
    try:
        job = jobs.call_list_job_retry(job=jobs.expire_if_due(job))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if job.chunks.exclude(status=CallListChunkStatus.DONE).exists():
            messages.success(request, "Checking the failed parts again; the others are kept.")
        else:
            messages.success(request, "Putting the checked parts together again.")
    return redirect("suppressions:call_list_job", job_id=job.pk)


@require_GET
@login_required
def call_list_job_download(request, job_id: int):
    """The checked file, streamed from disk; once expired, a page saying so (410)."""
    job = jobs.expire_if_due(_job_for(request, job_id))
    jobs.sweep_if_due()
    if job.status != CallListJobStatus.DONE or not job.result_path:
        context = {**_job_context(job), "not_ready": True}
        status = 410 if job.status == CallListJobStatus.EXPIRED else 409
        return render(request, JOB_TEMPLATE, context, status=status)
    try:
        handle = open(jobs.result_file(job), "rb")  # noqa: SIM115 (FileResponse closes it)
    except FileNotFoundError:
        raise Http404("The checked file is gone") from None
    response = FileResponse(handle, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = _attachment(job.file_name)
    response["X-Rows-Checked"] = str(job.rows)
    return response


def _int_param(request, name: str) -> int | None:
    """A positive id from the query string, or None for anything else."""
    value = request.GET.get(name, "")
    # ASCII digits only: "²" is a digit to str.isdigit() but not a number to int().
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None


@require_GET
@login_required
def pitch_status(request):
    """
    The live suppression status while a deal's company, contact and product are picked
    (an htmx fragment of the deal form). Empty until company and product are known.
    """
    company_id, contact_id, product_id, opportunity_id = (
        _int_param(request, name) for name in ("company", "contact", "product", "opportunity")
    )
    product = Product.objects.filter(pk=product_id).only("id", "line_id").first()
    verdict = None
    if company_id and product is not None:
        verdict = decisions.check(
            company_id=company_id,
            contact_id=contact_id,
            product_id=product.pk,
            product_line_id=product.line_id,
            opportunity_id=opportunity_id,
            requester_id=request.user.pk,
        )
    # Editing a deal whose company, contact and product are unchanged: it was already open, so
    # a suppression that started since flags it but does not stop the save (the service agrees:
    # only a new pitch is checked).
    already_open = False
    if verdict is not None and verdict.blocked and opportunity_id:
        deal = (
            Opportunity.objects.filter(access.owner_q(request.user), pk=opportunity_id)
            .values_list("company_id", "contact_id", "product_id")
            .first()
        )
        already_open = deal == (company_id, contact_id, product.pk)
    context = {
        "verdict": verdict,
        "already_open": already_open,
        "company_id": company_id,
        "contact_id": contact_id or "",
        "product_id": product_id,
    }
    return render(request, "suppressions/pitch_status.html", context)


@login_required
def override_list(request):
    """Managers see their teams' requests to decide; reps see their own and what happened."""
    overrides = list(selectors.overrides_visible_to(request.user)[:200])
    pending = [o for o in overrides if o.status == OverrideStatus.PENDING]
    decided = [o for o in overrides if o.status != OverrideStatus.PENDING][:50]
    for override in pending:
        override.can_decide = services.can_decide(request.user, override)
    context = {"pending": pending, "decided": decided, "decision_form": OverrideDecisionForm()}
    return render(request, "suppressions/override_list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def override_request(request):
    """Ask a manager for an exception to a suppression, for one pitch."""
    source = request.POST if request.method == "POST" else request.GET
    try:
        company = get_object_or_404(Company, pk=int(source.get("company") or 0))
        product = get_object_or_404(
            Product.objects.select_related("line"), pk=int(source.get("product") or 0)
        )
        contact_id = int(source.get("contact") or 0)
    except ValueError as exc:
        raise Http404("Bad pitch") from exc
    contact = get_object_or_404(Contact, pk=contact_id, company=company) if contact_id else None
    verdict = decisions.check(
        company_id=company.pk,
        contact_id=contact.pk if contact else None,
        product_id=product.pk,
        product_line_id=product.line_id,
    )
    form = OverrideRequestForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.override_request(
                    actor=request.user,
                    company=company,
                    contact=contact,
                    product=product,
                    justification=form.cleaned_data["justification"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    "Your request is with your manager. Once approved, create the deal again "
                    "and it will go through.",
                )
                return redirect("suppressions:override_list")
        status = 422
    context = {
        "form": form,
        "company": company,
        "contact": contact,
        "product": product,
        "verdict": verdict,
    }
    return render(request, "suppressions/override_request.html", context, status=status)


@require_POST
@login_required
def override_decide(request, override_id: int):
    override = access.get_or_404(selectors.overrides_visible_to(request.user), pk=override_id)
    if not services.can_decide(request.user, override):
        raise Http404("Not yours to decide")
    # Decided from the manager's home (or the list): back to where the decision was taken.
    back = safe_next(request) or reverse("suppressions:override_list")
    form = OverrideDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or decline.")
        return redirect(back)
    try:
        services.override_decide(
            actor=request.user,
            override=override,
            approve=form.cleaned_data["decision"] == "approve",
            note=form.cleaned_data["note"],
        )
    except PermissionDenied as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        verb = "Approved" if form.cleaned_data["decision"] == "approve" else "Declined"
        messages.success(request, f"{verb} {override.requested_by.full_name}'s request.")
    return redirect(back)


@require_http_methods(["GET", "POST"])
@login_required
def suppression_lift(request, suppression_id: int):
    if not services.can_lift(request.user):
        raise Http404("Only managers and administrators lift suppressions")
    target = get_object_or_404(
        Suppression.objects.select_related(
            "company", "contact", "product", "product_line", "rule", "source_opportunity__owner"
        ),
        pk=suppression_id,
    )
    form = LiftForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.suppression_lift(
                    actor=request.user, suppression=target, reason=form.cleaned_data["reason"]
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Suppression lifted. It stays in the history.")
                return redirect("customers:company_detail", company_id=target.company_id)
        status = 422
    context = {"form": form, "suppression": target, "description": decisions.describe(target)}
    return render(request, "suppressions/suppression_lift.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def do_not_contact(request, company_id: int):
    company = get_object_or_404(Company, pk=company_id)
    form = DoNotContactForm(request.POST or None, company=company)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.do_not_contact_add(
                    actor=request.user,
                    company=company,
                    contact=form.cleaned_data["contact"],
                    note=form.cleaned_data["note"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                who = form.cleaned_data["contact"] or company
                messages.success(
                    request,
                    f"{who} is on the do-not-contact list from {timezone.localdate():%-d %b %Y}.",
                )
                return redirect(reverse("customers:company_detail", args=[company.pk]))
        status = 422
    context = {"form": form, "company": company}
    return render(request, "suppressions/do_not_contact.html", context, status=status)
