"""
Importing closed deals and their reasons from another CRM's export (docs/importing-history.md).

The flow: history_import_create (upload, columns from a preset), history_import_set_columns
(generic files), history_import_save_mappings (what each reason and product text means),
history_import_check (the dry run), history_import_start (queues imports.tasks.run, which calls
history_import_run), and afterwards history_import_set_in_reports. The work itself is in
imports.engine; these functions hold the transactions, the statuses and the permissions.
"""

import datetime
import logging
import os
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from accounts.models import User
from customers.models import Region, Segment, SizeBand
from imports import engine, parsing, presets
from imports.models import (
    HistoryImport,
    ImportStatus,
    MappingAction,
    MappingKind,
    Preset,
    ValueMapping,
)
from opportunities.models import Currency, Product
from reflections.models import Origin, Outcome, Reason, Reflection
from reflections.signals import reflections_imported

logger = logging.getLogger(__name__)

EDITABLE = (ImportStatus.UPLOADED, ImportStatus.CHECKED, ImportStatus.INVALID)
# The statuses from which a check may start (a stopped run is checked again before resuming).
CHECKABLE = (*EDITABLE, ImportStatus.FAILED)
# How long a running import may stay silent before another worker may take it over.
STALE_AFTER = timezone.timedelta(minutes=10)


@dataclass(frozen=True)
class Decision:
    """What one distinct text means: kind reason|product, outcome, normalised key, action."""

    kind: str
    outcome: str
    key: str
    action: str
    target_id: int | None = None


def _require_admin(actor: User) -> None:
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only administrators can import history.")


def _mb(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:,.1f} KB"
    return f"{size / (1024 * 1024):,.1f} MB"


def _options(preset: str, options: dict | None) -> dict:
    given = dict(options or {})
    chosen = {
        "date_format": given.get("date_format")
        or ("iso" if preset in ("hubspot", "pipedrive") else "dmy"),
        "segment": given.get("segment") or Segment.SOFTWARE,
        "size_band": given.get("size_band") or SizeBand.SMALL,
        "region": given.get("region") or Region.UK,
    }
    if chosen["date_format"] not in parsing.DATE_FORMATS:
        raise ValidationError(
            {"options": "Choose the date format: yyyy-mm-dd, dd/mm/yyyy or mm/dd/yyyy."}
        )
    for name, choices in (("segment", Segment), ("size_band", SizeBand), ("region", Region)):
        if chosen[name] not in choices.values:
            raise ValidationError(
                {"options": f"“{chosen[name]}” is not a {name.replace('_', ' ')}."}
            )
    return {**given, **chosen}


def _missing_message(preset: str, missing: list[presets.Field], header: list[str]) -> str:
    parts = []
    for f in missing:
        if preset in presets.PRESET_COLUMNS:
            accepted = presets.PRESET_COLUMNS[preset][f.name]
            expected = accepted[0]
            closest = None
            for candidate in accepted:
                closest = presets.closest_header(candidate, header)
                if closest:
                    break
            hint = f" The closest column in the file is “{closest}”." if closest else ""
            parts.append(
                f"The file has no “{expected}” column, which the {Preset(preset).label} needs "
                f"for the {f.label.lower()}.{hint}"
            )
        else:
            parts.append(f"Choose the column that holds the {f.label.lower()}.")
    if preset in presets.PRESET_COLUMNS:
        parts.append(
            "Export the report again with that column, rename the column, or choose “Other CSV” "
            "and map the columns yourself."
        )
    return " ".join(parts)


@transaction.atomic
def history_import_create(
    *,
    actor: User,
    uploaded_file,
    system: str,
    preset: str,
    default_owner: User | None = None,
    default_currency: str = "GBP",
    options: dict | None = None,
) -> HistoryImport:
    """
    Store an uploaded export and read its header: the size, text encoding, header row and, for
    a preset, its required columns are checked before anything is saved, each refusal saying
    what to fix. The columns come from the preset (or a guess for "generic").
    """
    _require_admin(actor)
    system = (system or "").strip()
    if not system:
        raise ValidationError({"system": "Say which CRM the file comes from (e.g. Salesforce)."})
    if len(system) > 60:
        raise ValidationError({"system": "Keep the CRM's name under 60 characters."})
    if preset not in Preset.values:
        raise ValidationError({"preset": "Choose the kind of export (or “Other CSV”)."})
    if default_currency not in Currency.values:
        raise ValidationError({"default_currency": "Choose GBP, EUR or USD."})
    limit = settings.DEBRIEF_IMPORT_MAX_BYTES
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > limit:
        raise ValidationError(
            f"The file is {_mb(size)}; at most {_mb(limit)} can be imported at once. Split it "
            "into smaller files (by close date, for instance) and import them one by one."
        )
    data = uploaded_file.read()
    if len(data) > limit:
        raise ValidationError(
            f"The file is {_mb(len(data))}; at most {_mb(limit)} can be imported at once. Split "
            "it into smaller files and import them one by one."
        )
    try:
        text = parsing.decode(data)
        header = parsing.read_header(text, max_columns=settings.DEBRIEF_IMPORT_MAX_COLUMNS)
        rows_total = parsing.count_rows(text)
    except parsing.FileProblem as exc:
        raise ValidationError(str(exc)) from None
    if rows_total == 0:
        raise ValidationError(
            "The file has a header row but no deals under it. Export the report with its rows."
        )
    columns = presets.columns_for(preset, header)
    if preset != Preset.GENERIC:
        missing = presets.missing_fields(columns)
        if missing:
            raise ValidationError(_missing_message(preset, missing, header))
    name = os.path.basename(getattr(uploaded_file, "name", "") or "history.csv")[:255]
    file_sha256, texts = engine.summarise(data, text, columns)
    history_import = HistoryImport(
        system=system,
        preset=preset,
        file_name=name,
        columns=columns,
        options=_options(preset, options),
        default_owner=default_owner,
        default_currency=default_currency,
        rows_total=rows_total,
        file_sha256=file_sha256,
        texts=texts,
        created_by=actor,
    )
    history_import.file.save(name, ContentFile(data), save=False)
    history_import.save()
    return history_import


CHECKING_MESSAGE = (
    "The file is being checked right now, so its columns and the meanings of its texts cannot "
    "change until the check ends. Wait for the check to finish (its page shows the progress), "
    "then make the change and check again."
)


def _refuse_while_checking(history_import: HistoryImport) -> None:
    if history_import.status == ImportStatus.CHECKING and not _stale(history_import):
        raise ValidationError(CHECKING_MESSAGE, code="checking")


def _stale(history_import: HistoryImport) -> bool:
    """A job (check or run) silent for STALE_AFTER: its worker is presumed lost."""
    beat = history_import.heartbeat_at
    return beat is None or beat < timezone.now() - STALE_AFTER


def history_import_run_stalled(history_import: HistoryImport) -> bool:
    """
    Whether a running import went silent (STALE_AFTER): its worker is presumed lost, and
    starting it again resumes after its committed rows.
    """
    return history_import.status == ImportStatus.RUNNING and _stale(history_import)


def history_import_check_stalled(history_import: HistoryImport) -> bool:
    """Whether the import's check job went silent (STALE_AFTER): it may be checked again."""
    return history_import.status == ImportStatus.CHECKING and _stale(history_import)


def _editable(history_import: HistoryImport) -> HistoryImport:
    locked = HistoryImport.objects.select_for_update().get(pk=history_import.pk)
    _refuse_while_checking(locked)
    if locked.status not in EDITABLE and locked.status != ImportStatus.CHECKING:
        raise ValidationError(
            f"This import is {locked.get_status_display().lower()}: its file can no longer be "
            "changed. Upload the file again to start over."
        )
    return locked


@transaction.atomic
def history_import_set_columns(
    *, history_import: HistoryImport, columns: dict[str, str]
) -> HistoryImport:
    """
    Which column holds each field (the generic mapping, or a preset corrected by hand). The
    file is read once more, here, to store its texts under the new columns.
    """
    locked = _editable(history_import)
    data, text = engine.read_text(locked)
    header = parsing.read_header(text, max_columns=settings.DEBRIEF_IMPORT_MAX_COLUMNS)
    chosen = {name: h for name, h in columns.items() if h}
    unknown = [name for name in chosen if name not in presets.FIELDS_BY_NAME]
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    absent = [h for h in chosen.values() if h not in header]
    if absent:
        raise ValidationError(
            f"The file has no column “{absent[0]}”. Choose one of the file's columns."
        )
    missing = presets.missing_fields(chosen)
    if missing:
        raise ValidationError(
            "Choose the column that holds: " + ", ".join(f.label.lower() for f in missing) + "."
        )
    locked.columns = chosen
    locked.file_sha256, locked.texts = engine.summarise(data, text, chosen)
    locked.status = ImportStatus.UPLOADED
    locked.checked_fingerprint = ""
    locked.save(update_fields=["columns", "file_sha256", "texts", "status", "checked_fingerprint"])
    return locked


@transaction.atomic
def history_import_save_mappings(
    *, actor: User, history_import: HistoryImport, decisions: list[Decision]
) -> int:
    """
    Save what each text means (upserted per kind, outcome and normalised text), for this file
    and the next ones. A reason maps to an active reason of the same outcome, "unknown" or
    "skip"; a product to a product or "skip". Returns how many were saved. Refused while the
    import's file is being checked.
    """
    _require_admin(actor)
    current = HistoryImport.objects.filter(pk=history_import.pk).only("status", "heartbeat_at")
    for found in current:
        _refuse_while_checking(found)
    reasons = {
        r.pk: r
        for r in Reason.objects.filter(pk__in=[d.target_id for d in decisions if d.target_id])
    }
    products = set(
        Product.objects.filter(pk__in=[d.target_id for d in decisions if d.target_id]).values_list(
            "pk", flat=True
        )
    )
    saved = 0
    now = timezone.now()
    for d in decisions:
        key = parsing.normalise_text(d.key)
        if d.kind == MappingKind.REASON:
            if d.outcome not in Outcome.values:
                raise ValidationError("A reason text belongs to won, lost or no decision deals.")
            if d.action not in MappingAction.values:
                raise ValidationError("Choose a reason, “Unknown” or “Skip” for each text.")
            reason = reasons.get(d.target_id) if d.action == MappingAction.MAP else None
            if d.action == MappingAction.MAP and (
                reason is None or reason.outcome != d.outcome or not reason.active
            ):
                raise ValidationError(
                    f"“{key or engine.NO_REASON}”: choose an active reason for "
                    f"{Outcome(d.outcome).label.lower()} deals."
                )
            values = {"action": d.action, "reason": reason, "product": None}
            outcome = d.outcome
        elif d.kind == MappingKind.PRODUCT:
            if d.action not in (MappingAction.MAP, MappingAction.SKIP):
                raise ValidationError(
                    f"“{key or engine.NO_PRODUCT}”: choose a product, or skip its deals "
                    "(“Unknown” is only for reasons)."
                )
            if d.action == MappingAction.MAP and d.target_id not in products:
                raise ValidationError(f"“{key or engine.NO_PRODUCT}”: choose a product.")
            values = {
                "action": d.action,
                "reason": None,
                "product_id": d.target_id if d.action == MappingAction.MAP else None,
            }
            outcome = ""
        else:
            raise ValidationError("Only reason and product texts are mapped.")
        _upsert_mapping(
            kind=d.kind,
            outcome=outcome,
            text=key,
            defaults={**values, "updated_by": actor, "updated_at": now},
        )
        saved += 1
    return saved


def _upsert_mapping(*, kind: str, outcome: str, text: str, defaults: dict) -> None:
    """
    update_or_create, once more when another admin created the same text's mapping between
    its read and its insert (the unique constraint refuses the second insert; the retry
    finds the row and updates it: the last decision saved wins).
    """
    try:
        with transaction.atomic():
            ValueMapping.objects.update_or_create(
                kind=kind, outcome=outcome, text=text, defaults=defaults
            )
    except IntegrityError:
        ValueMapping.objects.update_or_create(
            kind=kind, outcome=outcome, text=text, defaults=defaults
        )


def _counters(counts: engine.Counts) -> dict:
    return {name: getattr(counts, name) for name in vars(counts)}


def history_import_check(*, history_import: HistoryImport) -> HistoryImport:
    """
    The dry run: read every row exactly as the import will, and record what it would create
    (deals_created, companies_created, ... as "would create") and every problem (all counted,
    the first 200 kept with row and column). Writes nothing but the import's own row. The
    status becomes CHECKED, with a fingerprint of what was checked, or INVALID. Runs in the
    caller's process whatever the file's size (history_import_check_queue hands large files
    to a job).
    """
    hi = HistoryImport.objects.get(pk=history_import.pk)
    if hi.status not in CHECKABLE and not (hi.status == ImportStatus.CHECKING and _stale(hi)):
        raise ValidationError(
            CHECKING_MESSAGE
            if hi.status == ImportStatus.CHECKING
            else f"This import is {hi.get_status_display().lower()}; it cannot be checked again."
        )
    found = _dry_run(hi)
    assert found is not None  # only a progress callback stops it early
    for name, value in found.items():
        setattr(hi, name, value)
    hi.save(update_fields=list(found))
    return hi


def _dry_run(hi: HistoryImport, *, progress=None) -> dict | None:
    """
    The dry run's findings as the import's fields to save. `progress(rows)` is called after
    each batch of DEBRIEF_IMPORT_BATCH_ROWS rows with the rows read so far; it returns False
    to stop early (the check was cancelled or taken over), and the findings are then None.
    """
    ctx = engine.Context(hi)
    total = engine.Counts()
    errors: list[engine.RowError] = []
    error_count = 0
    elsewhere: Counter = Counter()  # earlier import id -> this file's ids it brought in
    missing = presets.missing_fields(hi.columns or {})
    if missing:
        error_count = len(missing)
        errors = [
            engine.RowError(1, "", f"No column is chosen for the {f.label.lower()}.")
            for f in missing
        ]
    else:
        _, text = engine.read_text(hi)
        batch: list = []
        size = engine.batch_rows()
        read = 0

        def flush() -> bool:
            nonlocal error_count, read
            deals, skipped, found = engine.check_rows(ctx, batch)
            elsewhere.update(engine.ids_under_other_systems(ctx, deals))
            error_count += len(found)
            if len(errors) < engine.MAX_STORED_ERRORS:
                errors.extend(found[: engine.MAX_STORED_ERRORS - len(errors)])
            counts = engine.count_batch(ctx, deals) if deals else engine.Counts()
            counts.rows_skipped += skipped
            total.add(counts)
            read += len(batch)
            batch.clear()
            return progress is None or progress(read) is not False

        for item in engine.records(text, ctx.columns):
            batch.append(item)
            if len(batch) >= size and not flush():
                return None
        if batch and not flush():
            return None
    # After a stop, the counters keep what was imported; the check then only clears the way.
    counted = _counters(total) if hi.rows_done == 0 else {}
    passed = not error_count
    return {
        "errors": [e.as_dict() for e in errors],
        "error_count": error_count,
        "check_warnings": _imported_before(hi, ctx, elsewhere),
        **counted,
        "checked_at": timezone.now(),
        "status": ImportStatus.CHECKED if passed else ImportStatus.INVALID,
        "checked_fingerprint": _current_fingerprint(hi, ctx) if passed else "",
    }


def _imported_before(hi: HistoryImport, ctx: engine.Context, elsewhere: Counter) -> list[str]:
    """
    A warning when the file looks imported before under another system's name: the same
    bytes brought deals in, or more than half of its deal ids did. Ids are unique only within
    a system, so importing it under this name would add its deals a second time.
    """
    earlier = None
    same_file = (
        HistoryImport.objects.filter(file_sha256=hi.file_sha256, deals__isnull=False)
        .exclude(pk=hi.pk)
        .exclude(file_sha256="")
        .distinct()
        .order_by("created_at", "pk")
    )
    for other in same_file:
        if engine.system_key(other.system) != ctx.system_key:
            earlier = other
            break
    if earlier is None and elsewhere:
        pk, shared = elsewhere.most_common(1)[0]
        if shared * 2 > len(ctx.seen_ids):
            earlier = HistoryImport.objects.filter(pk=pk).first()
    if earlier is None:
        return []
    when = timezone.localdate(earlier.finished_at or earlier.started_at or earlier.created_at)
    return [
        f"This file looks like one imported before as “{earlier.system}” on "
        f"{when.day} {when:%b %Y}: importing it as “{hi.system}” would add its deals again. "
        f"If it comes from the same CRM, upload it again under the name “{earlier.system}”."
    ]


@transaction.atomic
def history_import_check_queue(*, actor: User, history_import: HistoryImport) -> HistoryImport:
    """
    "Save and check": a file of at most DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS rows is checked
    here and now (history_import_check); a larger one is marked CHECKING and checked by a job
    (imports.tasks.check, queued after the commit), which records its progress in checked_rows
    and heartbeat_at. A check whose job went silent for STALE_AFTER may be queued again.
    """
    _require_admin(actor)
    locked = HistoryImport.objects.select_for_update().get(pk=history_import.pk)
    if locked.status == ImportStatus.CHECKING and not _stale(locked):
        raise ValidationError(
            "The file is being checked already; its page shows the progress.", code="checking"
        )
    if locked.status not in CHECKABLE and locked.status != ImportStatus.CHECKING:
        raise ValidationError(
            f"This import is {locked.get_status_display().lower()}; it cannot be checked again."
        )
    if locked.rows_total <= engine.single_transaction_rows():
        return history_import_check(history_import=locked)
    locked.status = ImportStatus.CHECKING
    locked.checked_rows = 0
    locked.checked_fingerprint = ""
    # The queue time counts as the first sign of life: a job never delivered goes stale too.
    locked.heartbeat_at = timezone.now()
    locked.save(update_fields=["status", "checked_rows", "checked_fingerprint", "heartbeat_at"])
    pk = locked.pk

    def enqueue() -> None:
        from imports import tasks

        tasks.check.delay(pk)

    transaction.on_commit(enqueue)
    return locked


def history_import_check_run(*, import_id: int) -> HistoryImport | None:
    """
    The check job: the dry run of a file marked CHECKING, recording checked_rows and
    heartbeat_at after each batch. It only writes while the import is still CHECKING, so a
    check cancelled (or its columns changed after it went stale) ends without a result. A
    redelivered task checks the file again from its first row; the result is the same.
    """
    now = timezone.now()
    claimed = HistoryImport.objects.filter(pk=import_id, status=ImportStatus.CHECKING).update(
        checked_rows=0, heartbeat_at=now
    )
    hi = HistoryImport.objects.filter(pk=import_id).first()
    if not claimed or hi is None:
        return hi
    checking = HistoryImport.objects.filter(pk=import_id, status=ImportStatus.CHECKING)

    def progress(rows: int) -> bool:
        return bool(checking.update(checked_rows=rows, heartbeat_at=timezone.now()))

    try:
        found = _dry_run(hi, progress=progress)
    except _TRANSIENT:
        raise  # the task's retry checks the file again; it stays CHECKING meanwhile
    except Exception as exc:
        logger.exception("Check of history import %s stopped", import_id)
        message = (
            f"The check stopped at an unexpected error ({type(exc).__name__}). Nothing was "
            "imported; check the file again, or ask for help if it stops again."
        )
        checking.update(
            status=ImportStatus.INVALID,
            errors=[{"row": None, "column": "", "message": message}],
            error_count=1,
            checked_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )
        found = None
    if found is not None:
        checking.update(**found, heartbeat_at=timezone.now())
    hi.refresh_from_db()
    return hi


def history_import_check_is_current(history_import: HistoryImport) -> bool:
    """
    Whether the last check still says what an import would do: the fingerprint the run will
    compare (the file's bytes, columns, options, the decisions on the file's texts) is
    unchanged. Reads the file's stored sha256 and texts, never the file.
    """
    if not history_import.checked_fingerprint:
        return False
    return _current_fingerprint(history_import) == history_import.checked_fingerprint


def _current_fingerprint(hi: HistoryImport, ctx: engine.Context | None = None) -> str:
    ctx = ctx or engine.Context(hi)
    return engine.fingerprint(ctx, hi.file_sha256, engine.stored_keys(hi))


@transaction.atomic
def history_import_start(
    *, actor: User, history_import: HistoryImport, queue: bool = True
) -> HistoryImport:
    """
    Queue the import of a checked file (imports.tasks.run, after the commit). Refused unless
    the dry run passed and nothing it checked has changed since (file, columns, options,
    mappings). A stopped import starts again after the rows it committed. `queue=False`
    leaves the running to the caller (the management command runs it in its own process).
    """
    _require_admin(actor)
    locked = HistoryImport.objects.select_for_update().get(pk=history_import.pk)
    if locked.status == ImportStatus.CHECKING:
        raise ValidationError(
            "The file is still being checked, so it cannot be imported yet. Wait for the check "
            "to finish: the import button appears when it finds no problems.",
            code="checking",
        )
    resumable = (
        locked.status == ImportStatus.FAILED or history_import_run_stalled(locked)
    ) and locked.checked_fingerprint
    if locked.status != ImportStatus.CHECKED and not resumable:
        raise ValidationError(
            "Run the check first: only a file whose check found no problems can be imported."
            if locked.status in EDITABLE
            else f"This import is {locked.get_status_display().lower()}; it cannot start."
        )
    if _current_fingerprint(locked) != locked.checked_fingerprint:
        raise _Changed()
    locked.options = {**(locked.options or {}), "started_by": actor.pk}
    locked.status = ImportStatus.QUEUED
    locked.started_at = locked.started_at or timezone.now()
    locked.save(update_fields=["options", "status", "started_at"])
    if queue:
        _enqueue(locked.pk)
    return locked


class _Changed(ValidationError):
    MESSAGE = (
        "Something changed since the check (the file's columns, options or a mapping of its "
        "texts). Check the file again, then import it."
    )

    def __init__(self):
        super().__init__(self.MESSAGE, code="changed")


def _enqueue(pk: int) -> None:
    from imports import tasks

    transaction.on_commit(lambda: tasks.run.delay(pk))


_TRANSIENT = (OperationalError, InterfaceError)


def history_import_run(*, import_id: int) -> HistoryImport | None:
    """
    The job: import a queued file, all of it in one transaction when it has at most
    DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS rows, else in batches of DEBRIEF_IMPORT_BATCH_ROWS
    with one transaction each, recording rows_done and heartbeat_at with every batch. A rerun
    (a retried or redelivered task, or a stopped import started again) resumes after rows_done;
    the external-id key makes a repeated batch create nothing. Stops after the current batch
    when the import is cancelled.
    """
    now = timezone.now()
    claimable = Q(status__in=[ImportStatus.QUEUED, ImportStatus.FAILED]) | Q(
        status=ImportStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER
    )
    claimed = (
        HistoryImport.objects.filter(claimable, pk=import_id)
        .exclude(checked_fingerprint="")
        .update(status=ImportStatus.RUNNING, heartbeat_at=now)
    )
    hi = HistoryImport.objects.filter(pk=import_id).first()
    if not claimed or hi is None:
        return hi
    # The counters held the dry run's "would create"; a resumed run adds to what it committed.
    zero = dict.fromkeys(_counters(engine.Counts()), 0) if hi.rows_done == 0 else {}
    HistoryImport.objects.filter(pk=hi.pk).update(errors=[], error_count=0, **zero)
    hi.refresh_from_db()
    try:
        ctx = engine.Context(hi)
        if _current_fingerprint(hi, ctx) != hi.checked_fingerprint:
            # Mappings are shared: one changed while this import waited (or before a retry).
            HistoryImport.objects.filter(pk=hi.pk, status=ImportStatus.RUNNING).update(
                status=ImportStatus.FAILED,
                errors=[{"row": None, "column": "", "message": _Changed.MESSAGE}],
                error_count=1,
                checked_fingerprint="",
                heartbeat_at=timezone.now(),
            )
            hi.refresh_from_db()
            return hi
        _run(hi, ctx)
    except Exception as exc:
        logger.exception("History import %s stopped", import_id)
        message = (
            "The import stopped: the database could not be reached. It resumes after the rows "
            "already imported when started again."
            if isinstance(exc, _TRANSIENT)
            else f"The import stopped at an unexpected error ({type(exc).__name__}). The rows "
            "imported before it are kept; start it again to resume, or ask for help if it "
            "stops again."
        )
        errors = (
            exc.errors
            if isinstance(exc, _RowsFailed)
            else [{"row": None, "column": "", "message": message}]
        )
        HistoryImport.objects.filter(pk=hi.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED,
            errors=errors[: engine.MAX_STORED_ERRORS],
            error_count=len(errors),
            heartbeat_at=timezone.now(),
        )
        if isinstance(exc, _TRANSIENT):
            raise
    hi.refresh_from_db()
    return hi


class _RowsFailed(Exception):
    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} rows failed")
        self.errors = errors


def _run(hi: HistoryImport, ctx: engine.Context) -> None:
    actor_id = (hi.options or {}).get("started_by") or hi.created_by_id
    _, text = engine.read_text(hi)
    single = hi.rows_total <= engine.single_transaction_rows()
    size = max(hi.rows_total, 1) if single else engine.batch_rows()
    items = engine.records(text, ctx.columns)
    for _ in range(hi.rows_done):  # resume: the committed rows were imported already
        next(items, None)
    while True:
        batch = [item for _, item in zip(range(size), items, strict=False)]
        if not batch:
            break
        status = HistoryImport.objects.filter(pk=hi.pk).values_list("status", flat=True).first()
        if status != ImportStatus.RUNNING:
            return  # cancelled: stop after the batch committed before
        with transaction.atomic():
            deals, skipped, errors = engine.check_rows(ctx, batch)
            if errors:
                raise _RowsFailed([e.as_dict() for e in errors])
            counts, dates = engine.write_batch(ctx, deals, actor_id=actor_id)
            counts.rows_skipped += skipped
            HistoryImport.objects.filter(pk=hi.pk).update(
                rows_done=F("rows_done") + len(batch),
                heartbeat_at=timezone.now(),
                **{name: F(name) + value for name, value in _counters(counts).items()},
            )
            if dates:
                reflections_imported.send(sender=Reflection, dates=dates)
    finished = HistoryImport.objects.filter(pk=hi.pk, status=ImportStatus.RUNNING).update(
        status=ImportStatus.DONE, finished_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if finished:
        _delete_file(hi)


def _delete_file(hi: HistoryImport) -> None:
    """The uploaded file is kept only while the import may still need it."""
    if hi.file:
        hi.file.delete(save=False)
        HistoryImport.objects.filter(pk=hi.pk).update(file="")


@transaction.atomic
def history_import_cancel(*, actor: User, history_import: HistoryImport) -> HistoryImport:
    """
    Cancel an import that is not done: at once when it is not running, else after the batch
    in progress (the rows committed so far stay imported). Its file is deleted.
    """
    _require_admin(actor)
    locked = HistoryImport.objects.select_for_update().get(pk=history_import.pk)
    if locked.status == ImportStatus.DONE:
        raise ValidationError(
            "This import is finished, so it cannot be cancelled. To keep its deals out of the "
            "insights, leave it out of reports instead."
        )
    if locked.status == ImportStatus.CANCELLED:
        return locked
    locked.status = ImportStatus.CANCELLED
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "finished_at"])
    transaction.on_commit(lambda: _delete_file(locked))
    return locked


def history_imports_expire(*, now: datetime.datetime | None = None) -> int:
    """
    Cancel the imports left waiting (uploaded, checked, or stopped by an error) with no sign
    of life for DEBRIEF_IMPORT_KEEP_DAYS, and delete their files: an uploaded export holds
    customers' names and e-mails and is kept only while an import may still need it. The
    deals a stopped import committed stay. Returns how many were cancelled. Run daily by beat.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.DEBRIEF_IMPORT_KEEP_DAYS)
    waiting = HistoryImport.objects.filter(status__in=CHECKABLE).annotate(
        last_seen=Greatest(
            "created_at",
            Coalesce("checked_at", "created_at"),
            Coalesce("finished_at", "created_at"),
            Coalesce("heartbeat_at", "created_at"),
        )
    )
    expired = 0
    for pk in waiting.filter(last_seen__lt=cutoff).values_list("pk", flat=True):
        with transaction.atomic():
            # Re-read under the lock: an admin may have started it meanwhile.
            locked = (
                HistoryImport.objects.select_for_update()
                .filter(pk=pk, status__in=CHECKABLE)
                .first()
            )
            if locked is None:
                continue
            locked.status = ImportStatus.CANCELLED
            locked.finished_at = now
            locked.save(update_fields=["status", "finished_at"])
            transaction.on_commit(lambda hi=locked: _delete_file(hi))
            expired += 1
    return expired


@transaction.atomic
def history_import_set_in_reports(
    *, actor: User, history_import: HistoryImport, in_reports: bool
) -> HistoryImport:
    """
    Count an import's reflections in the insights, or leave them out; insights refresh. Only
    the reflections the import wrote switch (not one a rep wrote after reopening the deal).
    Any import that brought deals in may switch (a cancelled or stopped one too), but not while
    it is waiting, running or being checked: its next batches would read the old choice.
    """
    _require_admin(actor)
    locked = HistoryImport.objects.select_for_update().get(pk=history_import.pk)
    if locked.status in (ImportStatus.QUEUED, ImportStatus.RUNNING, ImportStatus.CHECKING):
        raise ValidationError(
            "This import is still under way, so whether reports count it cannot change yet. "
            "Wait until it ends (its page shows the progress), then switch it.",
            code="under_way",
        )
    if not locked.deals.exists():
        raise ValidationError(
            "This import brought no deals in, so there is nothing for reports to count or "
            "leave out.",
            code="no_deals",
        )
    locked.in_reports = in_reports
    locked.save(update_fields=["in_reports"])
    reflections = Reflection.objects.filter(
        opportunity__imported_from__history_import=locked, origin=Origin.IMPORTED
    )
    dates = set(reflections.order_by().values_list("closed_date", flat=True).distinct())
    reflections.update(in_reports=in_reports)
    if dates:
        reflections_imported.send(sender=Reflection, dates=dates)
    return locked
