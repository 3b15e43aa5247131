"""
The admin pages of a history import. Each is a function view taking the ModelAdmin that
routes to it (imports/admin.py, get_urls, wrapped in admin_view): parse, call a selector or
service, render a template that extends the admin's base_site.html.
"""

from itertools import groupby

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling

from imports import engine, parsing, presets, selectors, services
from imports.forms import ColumnsForm, InReportsForm, MappingForm, UploadForm
from imports.models import HistoryImport, ImportStatus, MappingAction, MappingKind, Preset
from opportunities.models import Product
from reflections.models import Outcome, Reason

# Texts per page of the mapping screen: a big file can have thousands of distinct texts.
VALUES_PER_PAGE = 200
# The dry run's problems shown on the page (the service stores at most this many anyway).
ERRORS_SHOWN = 200

# Enough of the file's start to hold its header row.
HEADER_BYTES = 1024 * 1024

EDITABLE = {ImportStatus.UPLOADED, ImportStatus.CHECKED, ImportStatus.INVALID}
UNDER_WAY = {ImportStatus.QUEUED, ImportStatus.RUNNING}
# Imports whose deals may be counted in reports or left out (once they stopped, whatever way).
SWITCHABLE = {ImportStatus.DONE, ImportStatus.CANCELLED, ImportStatus.FAILED}

COLUMNS_FIRST = "Choose the file's columns first: some required ones have none yet."
TEMPLATES = "admin/imports/historyimport/"


def _require(model_admin, request, *, add: bool = False) -> None:
    allowed = (
        model_admin.has_add_permission(request)
        if add
        else model_admin.has_change_permission(request)
    )
    if not allowed:
        raise PermissionDenied


def _import_for(model_admin, request, import_id: int) -> HistoryImport:
    """The import, if this admin may change it; 404 for any id out of reach."""
    _require(model_admin, request)
    return get_object_or_404(
        selectors.history_imports_visible_to(request.user).select_related(
            "created_by", "default_owner"
        ),
        pk=import_id,
    )


def _url(name: str, history_import: HistoryImport | None = None) -> str:
    args = [history_import.pk] if history_import is not None else []
    return reverse(f"admin:imports_historyimport_{name}", args=args)


def _context(model_admin, request, title: str, history_import=None, step: str = "", **extra):
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "history_import": history_import,
        "step": step,
        **extra,
    }
    if history_import is not None:
        context["steps"] = _steps(history_import, step)
    return context


def _steps(history_import: HistoryImport, current: str) -> list[dict]:
    """The step links at the top of every page of an import."""
    editable = history_import.status in EDITABLE
    checking = history_import.status == ImportStatus.CHECKING
    steps = [
        ("columns", "1. Columns", editable),
        ("values", "2. Values", editable),
        ("check", "3. Check", editable or checking),
        ("change", "4. Import", not editable and not checking),
    ]
    return [
        {
            "name": name,
            "label": label,
            "url": _url(name, history_import),
            "current": name == current,
            "open": is_open,
        }
        for name, label, is_open in steps
    ]


def _add_service_errors(form, exc: ValidationError, *, default: str | None) -> None:
    """A service's refusal shown at the field it names (else at `default`), as a form error."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            field = name if name in form.fields else default
            for error in errors:
                form.add_error(field, error.messages)
        return
    for message in exc.messages:
        form.add_error(default, message)


def _messages_of(exc: ValidationError) -> list[str]:
    return list(exc.messages)


def _editable_or_redirect(request, history_import: HistoryImport, *, checking: bool = False):
    """
    None when the page may show; else a redirect with a message: to the check while a check
    job runs (unless `checking`: the check page shows its progress), to the import's page once
    it started. A check gone silent counts as over: its pages open again.
    """
    if history_import.status in EDITABLE:
        return None
    if history_import.status == ImportStatus.CHECKING:
        if checking or services.history_import_check_stalled(history_import):
            return None
        messages.info(request, services.CHECKING_MESSAGE)
        return redirect(_url("check", history_import))
    messages.info(
        request,
        "This import has started, so its columns, values and check can no longer change. "
        "Its page below shows where it stands.",
    )
    return redirect(_url("change", history_import))


def _next_step_after_upload(history_import: HistoryImport) -> str:
    if history_import.preset == Preset.GENERIC or presets.missing_fields(history_import.columns):
        return _url("columns", history_import)
    return _url("values", history_import)


# --- Upload ------------------------------------------------------------------------------------
def upload(request, model_admin):
    """The first step: a file, where it comes from and the defaults for what rows leave out."""
    _require(model_admin, request, add=True)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            history_import = services.history_import_create(
                actor=request.user,
                uploaded_file=data["file"],
                system=data["system"],
                preset=data["preset"],
                default_owner=data["default_owner"],
                default_currency=data["default_currency"],
                options=form.options(),
            )
        except ValidationError as exc:
            _add_service_errors(form, exc, default="file")
        else:
            messages.success(
                request,
                f"“{history_import.file_name}” is uploaded: {history_import.rows_total} rows. "
                "Now say what its columns and texts mean.",
            )
            return redirect(_next_step_after_upload(history_import))
    context = _context(
        model_admin,
        request,
        "Import closed deals from another CRM",
        form=form,
        presets_help=_presets_help(),
    )
    return TemplateResponse(request, TEMPLATES + "upload.html", context)


def _presets_help() -> list[dict]:
    """What each preset expects, for the upload page: its documented header per field."""
    fields = {field.name: field for field in presets.FIELDS}
    found = []
    for preset, label in Preset.choices:
        columns = presets.PRESET_COLUMNS.get(preset)
        if not columns:
            continue
        found.append(
            {
                "label": label,
                "required": [
                    (fields[name].label, headers[0])
                    for name, headers in columns.items()
                    if name in fields and fields[name].required and headers
                ],
                "optional": [
                    (fields[name].label, headers[0])
                    for name, headers in columns.items()
                    if name in fields and not fields[name].required and headers
                ],
            }
        )
    return found


# --- Columns -----------------------------------------------------------------------------------
def columns(request, model_admin, import_id: int):
    """Which column of the file holds each Debrief field (prefilled by name)."""
    history_import = _import_for(model_admin, request, import_id)
    if (response := _editable_or_redirect(request, history_import)) is not None:
        return response
    header = _file_header(history_import)
    initial = history_import.columns or presets.suggest_columns(header)
    form = ColumnsForm(
        request.POST or None, fields=presets.FIELDS, header=header, initial_columns=initial
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.history_import_set_columns(
                history_import=history_import, columns=form.columns()
            )
        except ValidationError as exc:
            for message in _messages_of(exc):
                form.add_error(None, message)
        else:
            messages.success(request, "Columns saved. Now say what the file's texts mean.")
            return redirect(_url("values", history_import))
    context = _context(
        model_admin,
        request,
        f"Columns of “{history_import.file_name}”",
        history_import,
        "columns",
        form=form,
        header=header,
    )
    return TemplateResponse(request, TEMPLATES + "columns.html", context)


def _file_header(history_import: HistoryImport) -> list[str]:
    """The file's header row, read with the import's own parser (its first line only)."""
    with history_import.file.open("rb") as handle:
        head = handle.read(HEADER_BYTES)
    if len(head) == HEADER_BYTES and b"\n" in head:
        head = head[: head.rindex(b"\n")]
    try:
        return parsing.read_header(parsing.decode(head), max_columns=10_000)
    except parsing.FileProblem:
        return []


# --- Values ------------------------------------------------------------------------------------
def values(request, model_admin, import_id: int):
    """
    The mapping screen: each distinct reason text (per outcome) and product text of the file,
    most frequent first, with a select of what it means here. 200 texts a page.
    """
    history_import = _import_for(model_admin, request, import_id)
    if (response := _editable_or_redirect(request, history_import)) is not None:
        return response
    if presets.missing_fields(history_import.columns):
        messages.warning(
            request, "Choose the file's columns first: some required ones are missing."
        )
        return redirect(_url("columns", history_import))
    rows = selectors.value_rows(history_import)
    paginator = Paginator(rows, VALUES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    form = MappingForm(
        request.POST or None,
        rows=list(page.object_list),
        reasons_by_outcome=_reasons_by_outcome(),
        products=_product_choices(),
    )
    if request.method == "POST" and form.is_valid():
        decisions = [
            services.Decision(
                kind=row.kind, outcome=row.outcome, key=row.key, action=action, target_id=target
            )
            for row, action, target in form.decisions()
        ]
        try:
            saved = services.history_import_save_mappings(
                actor=request.user, history_import=history_import, decisions=decisions
            )
        except ValidationError as exc:
            for message in _messages_of(exc):
                form.add_error(None, message)
        else:
            if "_check" in request.POST:
                return _check_now(request, history_import)
            messages.success(
                request,
                f"Saved what {saved} text{'s' if saved != 1 else ''} mean. They will be offered "
                "again for the next file.",
            )
            if page.has_next():
                return redirect(f"{_url('values', history_import)}?page={page.next_page_number()}")
            return redirect(f"{_url('values', history_import)}?page={page.number}")
    context = _context(
        model_admin,
        request,
        f"What the texts of “{history_import.file_name}” mean",
        history_import,
        "values",
        form=form,
        sections=_sections(form, history_import),
        page=page,
        paginator=paginator,
        undecided=sum(1 for row in rows if row.saved is None),
        text_count=len(rows),
        absent_fields=[f for f in presets.FIELDS if f.name not in history_import.columns],
    )
    status = 422 if form.is_bound else 200
    return TemplateResponse(request, TEMPLATES + "values.html", context, status=status)


def _reasons_by_outcome() -> dict[str, list[Reason]]:
    reasons = Reason.objects.filter(active=True, merged_into__isnull=True).order_by(
        "outcome", "order", "label"
    )
    return {outcome: list(group) for outcome, group in groupby(reasons, key=lambda r: r.outcome)}


def _product_choices() -> list[Product]:
    return list(Product.objects.filter(active=True).select_related("line"))


def _sections(form: MappingForm, history_import: HistoryImport) -> list[dict]:
    """The page's texts grouped as the screen shows them: reasons per outcome, then products."""
    outcome_labels = dict(Outcome.choices)
    sections = []
    for (kind, outcome), group in groupby(
        form.row_fields, key=lambda pair: (pair[0].kind, pair[0].outcome)
    ):
        if kind == MappingKind.REASON:
            title = f"Reasons given for {outcome_labels.get(outcome, outcome).lower()} deals"
        else:
            title = "Products"
        sections.append(
            {
                "kind": kind,
                "outcome": outcome,
                "title": title,
                "rows": [_value_item(form, row, name, history_import) for row, name in group],
            }
        )
    return sections


def _value_item(form: MappingForm, row, name: str, history_import: HistoryImport) -> dict:
    note = _note(row, history_import)
    if note:
        form.fields[name].widget.attrs["aria-describedby"] = f"id_{name}_note"
    return {"row": row, "field": form[name], "note": note}


def _note(row, history_import: HistoryImport) -> str:
    """Why the select starts where it does."""
    if row.saved is not None:
        if row.saved.updated_at >= history_import.created_at:
            return "saved"
        return "saved from an earlier import"
    if row.suggestion_action == MappingAction.MAP and row.suggestion_id is not None:
        if row.score >= 100:
            return "suggested: exact match"
        return f"suggested: {row.score}% similar"
    if row.suggestion_action == MappingAction.UNKNOWN:
        if not row.key:
            return "suggested: unknown, as the file gives no reason"
        return "no reason here is close: suggested “Unknown”, or choose one"
    return ""


# --- Check ---------------------------------------------------------------------------------------
def check(request, model_admin, import_id: int):
    """
    The dry run's results; POST runs it (again). A large file's check runs as a job: the page
    then shows its progress, polled by htmx, and reloads when it ends.
    """
    history_import = _import_for(model_admin, request, import_id)
    if request.method == "POST" and history_import.status == ImportStatus.FAILED:
        return _check_now(request, history_import)  # a stopped import is checked again
    if (response := _editable_or_redirect(request, history_import, checking=True)) is not None:
        return response
    if request.method == "POST":
        if presets.missing_fields(history_import.columns):
            messages.warning(
                request, "Choose the file's columns first: some required ones are missing."
            )
            return redirect(_url("columns", history_import))
        return _check_now(request, history_import)
    checking = history_import.status == ImportStatus.CHECKING
    stalled = checking and services.history_import_check_stalled(history_import)
    if request.htmx and not (checking and not stalled):
        return HttpResponseClientRefresh()  # the check ended: show its results
    current = history_import.status == ImportStatus.CHECKED and (
        services.history_import_check_is_current(history_import)
    )
    context = _context(
        model_admin,
        request,
        f"Check of “{history_import.file_name}”",
        history_import,
        "check",
        errors=history_import.errors[:ERRORS_SHOWN],
        # A file this size is imported in one transaction; a larger one batch by batch.
        whole=history_import.rows_total <= engine.single_transaction_rows(),
        batch_rows=engine.batch_rows(),
        current=current,
        ready=history_import.status == ImportStatus.CHECKED
        and current
        and history_import.deals_created > 0,
        checking=checking and not stalled,
        stalled=stalled,
        under_way=checking and not stalled,
        percent=_percent(history_import.checked_rows, history_import.rows_total),
        progress_url=_url("check", history_import),
    )
    if request.htmx:
        return TemplateResponse(request, TEMPLATES + "import.html#progress", context)
    return TemplateResponse(request, TEMPLATES + "check.html", context)


def _check_now(request, history_import: HistoryImport):
    """Check the file (a job for a large one) and show the check page."""
    try:
        services.history_import_check_queue(actor=request.user, history_import=history_import)
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
    return redirect(_url("check", history_import))


@require_POST
def start(request, model_admin, import_id: int):
    history_import = _import_for(model_admin, request, import_id)
    try:
        services.history_import_start(actor=request.user, history_import=history_import)
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
        history_import.refresh_from_db(fields=["status"])
        if history_import.status in EDITABLE or history_import.status == ImportStatus.CHECKING:
            return redirect(_url("check", history_import))
    return redirect(_url("change", history_import))


@require_POST
def cancel(request, model_admin, import_id: int):
    history_import = _import_for(model_admin, request, import_id)
    try:
        services.history_import_cancel(actor=request.user, history_import=history_import)
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
    else:
        messages.success(request, "The import is cancelled.")
    return redirect(_url("change", history_import))


@require_POST
def in_reports(request, model_admin, import_id: int):
    history_import = _import_for(model_admin, request, import_id)
    form = InReportsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose whether reports count this import.")
        return redirect(_url("change", history_import))
    try:
        services.history_import_set_in_reports(
            actor=request.user,
            history_import=history_import,
            in_reports=form.cleaned_data["in_reports"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
    else:
        if form.cleaned_data["in_reports"]:
            messages.success(request, "Reports count this import's deals again.")
        else:
            messages.success(request, "Reports now leave this import's deals out.")
    return redirect(_url("change", history_import))


# --- The import's own page ---------------------------------------------------------------------
def page(request, model_admin, import_id: int):
    """
    The import's page (the admin's change view). Before it starts: the step it is at. Once
    started: its progress, polled by htmx every second, then its summary.
    """
    history_import = _import_for(model_admin, request, import_id)
    if history_import.status == ImportStatus.UPLOADED:
        return redirect(_next_step_after_upload(history_import))
    if history_import.status in EDITABLE or history_import.status == ImportStatus.CHECKING:
        return redirect(_url("check", history_import))
    stalled = services.history_import_run_stalled(history_import)
    under_way = history_import.status in UNDER_WAY and not stalled
    context = _context(
        model_admin,
        request,
        f"Import of “{history_import.file_name}”",
        history_import,
        "change",
        under_way=under_way,
        stalled=stalled,
        switchable=history_import.status in SWITCHABLE and history_import.deals_created > 0,
        checkable=history_import.status == ImportStatus.FAILED
        and not history_import.checked_fingerprint
        and bool(history_import.file),
        percent=_percent(history_import.rows_done, history_import.rows_total),
        progress_url=_url("change", history_import),
        deals_url=f"{reverse('admin:imports_importeddeal_changelist')}"
        f"?history_import__id__exact={history_import.pk}",
        insights_url=reverse("insights:dashboard"),
    )
    if request.htmx:
        response = TemplateResponse(request, TEMPLATES + "import.html#progress", context)
        if under_way:
            return response
        # Finished: the fragment's last version, and htmx stops asking (286).
        return HttpResponseStopPolling(response.render().content)
    return TemplateResponse(request, TEMPLATES + "import.html", context)


def _percent(done: int, total: int) -> int:
    return min(100, round(100 * done / total)) if total else 0
