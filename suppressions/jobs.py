"""
Call-list jobs: a call list too large to answer within a request (more than
DEBRIEF_CALLLIST_INLINE_ROWS rows, or any list sent to the API's list endpoint), checked in the
background. Every write of a job is here; reads scoped to a person are in selectors.py.

1. call_list_job_create: the request has validated the whole file already (calllist.validate:
   encoding, header, rows, and the chunks' byte offsets at record boundaries). The upload is
   copied under MEDIA_ROOT/calllists/ (its sha256 taken on the way), then the job and its chunks
   are created in one transaction; if anything fails, no row and no file is left. After the
   commit each chunk goes to a worker (suppressions.tasks.calllist_chunk, a Celery group), or,
   in the embedded default without a broker, to one background thread of this process.
2. call_list_chunk_run: a worker claims its chunk (a conditional UPDATE: queued, or running but
   silent for DEBRIEF_CALLLIST_STALE_SECONDS), reads only the chunk's bytes, checks them in the
   call list's batches (calllist.annotated) and writes its part file. After each batch it
   stamps a heartbeat, and stops when the job was cancelled. An error puts the chunk back in
   the queue until it has had MAX_ATTEMPTS attempts; then it is failed.
3. The chunk that ends last (decided under a lock on the job's row) assembles the result: the
   header once, then the parts in chunk order, whose rows must add up to the rows validated.
   The upload and the parts are then deleted; the result is kept DEBRIEF_CALLLIST_KEEP_HOURS.
4. call_list_job_retry queues the failed chunks again (and any gone silent), nothing else;
   call_list_job_cancel stops the job (running chunks stop after their batch) and deletes its
   files; call_list_jobs_sweep (periodic) deletes expired files, fails chunks whose worker went
   silent (so that the page offers a retry) and finishes a job whose assembly was interrupted.
"""

import collections
import contextlib
import datetime
import hashlib
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from suppressions import calllist, decisions
from suppressions.models import (
    CallListChunk,
    CallListChunkStatus,
    CallListJob,
    CallListJobStatus,
)

logger = logging.getLogger(__name__)

FOLDER = "calllists"
UPLOAD_NAME = "upload.csv"
RESULT_NAME = "checked.csv"
# Attempts a chunk gets before it is failed (each after an error; a Celery task waits between).
MAX_ATTEMPTS = 3
# A chunk queued this long never reached a worker (a lost message): it is failed, to retry.
QUEUE_LOST_AFTER = datetime.timedelta(hours=1)
UNDER_WAY = (CallListJobStatus.QUEUED, CallListJobStatus.RUNNING)
OPEN_CHUNK = (CallListChunkStatus.QUEUED, CallListChunkStatus.RUNNING)
COPY_BLOCK = 1024 * 1024


def _path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def _keep() -> datetime.timedelta:
    return datetime.timedelta(hours=settings.DEBRIEF_CALLLIST_KEEP_HOURS)


def _stale_before(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(seconds=settings.DEBRIEF_CALLLIST_STALE_SECONDS)


def _lost(now: datetime.datetime) -> Q:
    """Chunks whose worker went silent, or that never reached one (a lost message, a restart)."""
    return Q(status=CallListChunkStatus.RUNNING, heartbeat_at__lt=_stale_before(now)) | Q(
        status=CallListChunkStatus.QUEUED, heartbeat_at__lt=now - QUEUE_LOST_AFTER
    )


def result_file(job: CallListJob) -> Path:
    """Where a checked job's file is (the download views stream it from there)."""
    return _path(job.result_path)


def folder_of(job: CallListJob) -> Path:
    return _path(job.path).parent


def layout_of(job: CallListJob) -> calllist.Layout:
    """The layout the request validated, as the chunks read it."""
    stored = job.layout
    return calllist.Layout(
        header=stored["header"],
        columns=stored["columns"],
        rows=job.rows,
        encoding=stored["encoding"],
        chunk_encoding=job.encoding,
    )


def _store(upload, target: Path) -> tuple[str, int]:
    """Copy the upload to `target` block by block; its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    with open(target, "xb") as out:
        for block in iter(lambda: upload.read(COPY_BLOCK), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
    upload.seek(0)
    return digest.hexdigest(), size


def call_list_job_create(
    *, upload, layout: calllist.Layout, owner=None, api_token=None
) -> CallListJob:
    """
    A job for a validated call list (calllist.validate's layout, with its chunks), owned by a
    person or an API token: the file stored, the job and its chunks created in one transaction,
    the chunks queued after the commit. Nothing stays behind when any step fails.
    """
    if (owner is None) == (api_token is None):
        raise ValueError("A call-list job belongs to a person or to an API token.")
    if not layout.chunks:
        raise calllist.CallListError("The file has a header but no rows under it.")
    now = timezone.now()
    relative = f"{FOLDER}/{now:%Y/%m}/{secrets.token_hex(16)}"
    folder = _path(relative)
    folder.mkdir(parents=True)
    try:
        sha256, size = _store(upload, folder / UPLOAD_NAME)
        with transaction.atomic():
            job = CallListJob.objects.create(
                owner=owner,
                api_token=api_token,
                file_name=os.path.basename(getattr(upload, "name", "") or "call-list.csv")[:255],
                path=f"{relative}/{UPLOAD_NAME}",
                sha256=sha256,
                size=size,
                encoding=layout.chunk_encoding,
                layout={
                    "header": layout.header,
                    "columns": layout.columns,
                    "encoding": layout.encoding,
                },
                rows=layout.rows,
                created_at=now,
                expires_at=now + _keep(),
            )
            chunks = CallListChunk.objects.bulk_create(
                CallListChunk(
                    job=job,
                    index=index,
                    start=chunk.start,
                    end=chunk.end,
                    first_row=chunk.first_row,
                    rows=chunk.rows,
                    # The queue time is the first sign of life: a chunk never delivered is
                    # found by the sweep too.
                    heartbeat_at=now,
                )
                for index, chunk in enumerate(layout.chunks)
            )
            ids = [chunk.pk for chunk in chunks]
            if any(pk is None for pk in ids):  # a backend that does not return ids
                ids = list(job.chunks.order_by("index").values_list("pk", flat=True))
            transaction.on_commit(lambda: _dispatch(ids))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return job


def _dispatch(chunk_ids: list[int]) -> None:
    """Hand chunks to the workers (a Celery group), or to this process's thread when eager."""
    from suppressions import tasks

    if tasks.calllist_in_process():
        start_in_process(chunk_ids)
        return
    try:
        tasks.calllist_chunks_send(chunk_ids)
    except Exception as exc:
        logger.exception("Could not queue call-list chunks (%s)", type(exc).__name__)
        now = timezone.now()
        CallListChunk.objects.filter(pk__in=chunk_ids, status=CallListChunkStatus.QUEUED).update(
            status=CallListChunkStatus.FAILED,
            error="The background workers could not be reached.",
            finished_at=now,
        )
        for job_id in set(
            CallListChunk.objects.filter(pk__in=chunk_ids).values_list("job_id", flat=True)
        ):
            _settle(job_id)


class _Stopped(Exception):
    """The chunk is no longer this worker's: its job was cancelled, or it was taken over."""


# Lookups kept by a worker process between chunks of the same job on the same day: the
# people, domains and suppressions one chunk read need not be read again by the next.
# Bounded by Lookups.MAX_HELD.
_worker_lookups: dict[str, object] = {"job": None, "lookups": None}
# Half of what one request's check may hold: on the extra-large set a worker holding 200,000
# entries grew 270 MB over idle, at 100,000 about 170 MB (bench/calllist_job.py), under the
# 200 MB a worker may take; what it forgets is read again by the next batch.
WORKER_HELD = 100_000


def _lookups_for(job: CallListJob) -> decisions.Lookups:
    key = (job.pk, job.created_at)  # SQLite may give a deleted job's id to the next one
    if _worker_lookups["job"] != key:
        lookups = decisions.Lookups()
        lookups.MAX_HELD = WORKER_HELD
        _worker_lookups.update(job=key, lookups=lookups)
    return _worker_lookups["lookups"]


def call_list_chunk_run(*, chunk_id: int) -> CallListChunk | None:
    """
    Check one chunk, if it can be claimed: queued, or running but silent for
    DEBRIEF_CALLLIST_STALE_SECONDS (its worker died), of a job under way. Returns the chunk as
    it ends: done, failed, or queued again after an error (for another attempt); None if
    there is no such chunk. A rerun writes the same part file again, so it is harmless.
    """
    now = timezone.now()
    claimable = Q(status=CallListChunkStatus.QUEUED) | Q(
        status=CallListChunkStatus.RUNNING, heartbeat_at__lt=_stale_before(now)
    )
    claimed = CallListChunk.objects.filter(
        claimable, pk=chunk_id, job__status__in=UNDER_WAY
    ).update(
        status=CallListChunkStatus.RUNNING,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        rows_done=0,
        error="",
    )
    chunk = CallListChunk.objects.select_related("job").filter(pk=chunk_id).first()
    if not claimed or chunk is None:
        return chunk
    job = chunk.job
    CallListJob.objects.filter(pk=job.pk, status=CallListJobStatus.QUEUED).update(
        status=CallListJobStatus.RUNNING
    )
    part = f"{Path(job.path).parent}/part-{chunk.index:05d}.csv"
    try:
        counts = _check_chunk(chunk, job, _path(part))
    except _Stopped:
        return _reread(chunk)
    except Exception as exc:
        if _job_status(job.pk) not in UNDER_WAY:
            return _reread(chunk)  # cancelled or expired meanwhile: its files went with it
        logger.exception("Call-list chunk %s of job %s stopped", chunk.pk, job.pk)
        _chunk_error(chunk, exc)
        return _reread(chunk)
    _chunk_done(chunk, part, counts)
    return _reread(chunk)


def _reread(chunk: CallListChunk) -> CallListChunk:
    chunk.refresh_from_db()
    return chunk


def _job_status(job_id: int) -> str | None:
    return CallListJob.objects.filter(pk=job_id).values_list("status", flat=True).first()


def _check_chunk(chunk: CallListChunk, job: CallListJob, part: Path) -> dict:
    """Write the chunk's checked rows to `part` (through a temporary file); its tally."""
    layout = layout_of(job)
    with open(_path(job.path), "rb") as source:
        source.seek(chunk.start)
        data = source.read(chunk.end - chunk.start)
    tally = calllist.Tally()
    mine = CallListChunk.objects.filter(
        pk=chunk.pk, status=CallListChunkStatus.RUNNING, job__status=CallListJobStatus.RUNNING
    )
    temporary = part.with_name(f"{part.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            lines = calllist.annotated(
                calllist.chunk_records(data, layout),
                layout,
                first_row=chunk.first_row,
                tally=tally,
                lookups=_lookups_for(job),
            )
            del data
            for piece in lines:
                out.write(piece)
                if not mine.update(heartbeat_at=timezone.now(), rows_done=tally.rows):
                    raise _Stopped
        os.replace(temporary, part)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return tally.as_dict()


def _chunk_error(chunk: CallListChunk, exc: Exception) -> None:
    """Queue the chunk for another attempt, or fail it after MAX_ATTEMPTS."""
    now = timezone.now()
    last = chunk.attempts >= MAX_ATTEMPTS  # the claim counted this attempt
    message = (
        f"Part {chunk.index + 1} (rows {chunk.first_row:,} on) stopped at an unexpected error "
        f"({type(exc).__name__})."
    )
    CallListChunk.objects.filter(pk=chunk.pk, status=CallListChunkStatus.RUNNING).update(
        status=CallListChunkStatus.FAILED if last else CallListChunkStatus.QUEUED,
        error=message,
        heartbeat_at=now,
        finished_at=now if last else None,
    )
    if last:
        _settle(chunk.job_id)


def _chunk_done(chunk: CallListChunk, part: str, counts: dict) -> None:
    now = timezone.now()
    with transaction.atomic():
        # The job's row is the lock that orders the chunks' endings: exactly one sees the last.
        job = CallListJob.objects.select_for_update().get(pk=chunk.job_id)
        ended = CallListChunk.objects.filter(
            pk=chunk.pk, status=CallListChunkStatus.RUNNING
        ).update(
            status=CallListChunkStatus.DONE,
            part_path=part,
            counts=counts,
            rows_done=counts["rows"],
            heartbeat_at=now,
            finished_at=now,
        )
        # A worker that was taken over (silent too long) and ended after all leaves it there.
        last = bool(ended) and _conclude(job)
    if last:
        _assemble(job.pk)


def _settle(job_id: int) -> None:
    """After a chunk failed: the job fails once none of its chunks is queued or running."""
    with transaction.atomic():
        job = CallListJob.objects.select_for_update().filter(pk=job_id).first()
        if job is not None:
            # Every chunk done here means one that ended is assembling it, or the sweep will.
            _conclude(job)


def _conclude(job: CallListJob) -> bool:
    """
    Under the lock on the job's row, after a chunk ended: True when every chunk is done (the
    caller puts the file together); the job fails when some failed and none is left to run.
    """
    if job.status not in UNDER_WAY:
        return False
    statuses = list(CallListChunk.objects.filter(job_id=job.pk).values_list("status", flat=True))
    if all(status == CallListChunkStatus.DONE for status in statuses):
        return job.status == CallListJobStatus.RUNNING
    if any(status in OPEN_CHUNK for status in statuses):
        return False
    failed = statuses.count(CallListChunkStatus.FAILED)
    job.status = CallListJobStatus.FAILED
    job.error = (
        f"{failed:,} of {len(statuses):,} parts could not be checked. Retry them: the parts "
        "already checked are kept."
    )
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    return False


def _assemble(job_id: int) -> None:
    """
    The checked file: the header once, then every part in chunk order. Its rows must add up
    to the rows validated, or the job fails rather than hand out a file missing rows.
    """
    job = CallListJob.objects.get(pk=job_id)
    if job.status != CallListJobStatus.RUNNING:
        return
    parts = list(job.chunks.order_by("index").values_list("part_path", "rows_done", "counts"))
    layout = layout_of(job)
    folder = folder_of(job)
    result = folder / RESULT_NAME
    temporary = folder / f"{RESULT_NAME}.{secrets.token_hex(4)}.tmp"
    rows = sum(done for _, done, _ in parts)
    try:
        if rows != job.rows:
            raise ValueError(f"the parts hold {rows:,} rows, the file {job.rows:,}")
        with open(temporary, "wb") as out:
            out.write(calllist.header_line(layout).encode("utf-8"))
            for part, _, _ in parts:
                with open(_path(part), "rb") as piece:
                    shutil.copyfileobj(piece, out, COPY_BLOCK)
        os.replace(temporary, result)
    except Exception as exc:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        if _job_status(job_id) not in UNDER_WAY:
            return
        logger.exception("Call-list job %s could not be assembled", job_id)
        CallListJob.objects.filter(pk=job_id, status=CallListJobStatus.RUNNING).update(
            status=CallListJobStatus.FAILED,
            error=f"The checked parts could not be put together ({type(exc).__name__}). "
            "Upload the file again.",
            finished_at=timezone.now(),
        )
        return
    now = timezone.now()
    tally = calllist.Tally.merge(counts for _, _, counts in parts)
    finished = CallListJob.objects.filter(pk=job_id, status=CallListJobStatus.RUNNING).update(
        status=CallListJobStatus.DONE,
        result_path=str(result.relative_to(Path(settings.MEDIA_ROOT))),
        result_size=result.stat().st_size,
        counts=tally.as_dict(),
        error="",
        finished_at=now,
        expires_at=now + _keep(),
    )
    if not finished:  # cancelled while it was put together
        with contextlib.suppress(FileNotFoundError):
            result.unlink()
        return
    # Only the checked file is kept: the upload and the parts are not needed any more.
    with contextlib.suppress(FileNotFoundError):
        _path(job.path).unlink()
    for part, _, _ in parts:
        with contextlib.suppress(FileNotFoundError):
            _path(part).unlink()


@transaction.atomic
def call_list_job_cancel(*, job: CallListJob) -> CallListJob:
    """
    Stop a job that is not finished: chunks not started never start, running ones stop after
    their batch, and its files are deleted. Cancelling twice is harmless.
    """
    locked = CallListJob.objects.select_for_update().get(pk=job.pk)
    if locked.status == CallListJobStatus.CANCELLED:
        return locked
    if locked.status in (CallListJobStatus.DONE, CallListJobStatus.EXPIRED):
        raise ValidationError(
            "This list is checked already, so there is nothing to cancel. Its checked file "
            "is deleted by itself when it expires."
        )
    locked.status = CallListJobStatus.CANCELLED
    locked.finished_at = timezone.now()
    locked.error = ""
    locked.save(update_fields=["status", "finished_at", "error"])
    transaction.on_commit(lambda: _delete_files(locked))
    return locked


@transaction.atomic
def call_list_job_retry(*, job: CallListJob) -> CallListJob:
    """
    Check again only the chunks that failed (or were lost with their worker); the chunks checked
    already keep their parts. The job is under way again, and kept for another
    DEBRIEF_CALLLIST_KEEP_HOURS.
    """
    locked = CallListJob.objects.select_for_update().get(pk=job.pk)
    if locked.status not in (CallListJobStatus.FAILED, *UNDER_WAY):
        raise ValidationError(
            f"This list is {locked.get_status_display().lower()}: there is nothing to retry."
        )
    now = timezone.now()
    again = CallListChunk.objects.filter(job=locked).filter(
        Q(status=CallListChunkStatus.FAILED) | _lost(now)
    )
    ids = list(again.values_list("pk", flat=True))
    if not ids:
        raise ValidationError("No part of this list has failed: it is still being checked.")
    CallListChunk.objects.filter(pk__in=ids).update(
        status=CallListChunkStatus.QUEUED, attempts=0, error="", heartbeat_at=now
    )
    locked.status = CallListJobStatus.RUNNING
    locked.error = ""
    locked.finished_at = None
    locked.expires_at = now + _keep()
    locked.save(update_fields=["status", "error", "finished_at", "expires_at"])
    transaction.on_commit(lambda: _dispatch(ids))
    return locked


def stalled(job: CallListJob, *, now: datetime.datetime | None = None) -> bool:
    """
    Whether a job under way has a chunk whose worker went silent, or that never reached one
    (QUEUE_LOST_AFTER; in the embedded default, a server restarted with chunks waiting).
    """
    if job.status not in UNDER_WAY:
        return False
    return job.chunks.filter(_lost(now or timezone.now())).exists()


def _delete_files(job: CallListJob) -> None:
    if job.path:
        shutil.rmtree(folder_of(job), ignore_errors=True)


def call_list_jobs_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """
    The periodic clean-up (suppressions.calllist_sweep): jobs past `expires_at` are marked
    expired and their files deleted; chunks whose worker went silent (or that never reached
    one) are failed, so that their job offers a retry; a job whose chunks are all done but
    whose assembly was interrupted is assembled. Returns how many of each.
    """
    now = now or timezone.now()
    expired = 0
    keep_going = (
        CallListJobStatus.QUEUED,
        CallListJobStatus.RUNNING,
        CallListJobStatus.DONE,
        CallListJobStatus.FAILED,
    )
    for pk in CallListJob.objects.filter(status__in=keep_going, expires_at__lt=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            locked = (
                CallListJob.objects.select_for_update()
                .filter(pk=pk, status__in=keep_going, expires_at__lt=now)
                .first()
            )
            if locked is None:
                continue
            locked.status = CallListJobStatus.EXPIRED
            locked.finished_at = locked.finished_at or now
            locked.save(update_fields=["status", "finished_at"])
            transaction.on_commit(lambda job=locked: _delete_files(job))
            expired += 1
    lost = CallListChunk.objects.filter(_lost(now), job__status__in=UNDER_WAY)
    lost_jobs = set(lost.values_list("job_id", flat=True))
    failed = lost.update(
        status=CallListChunkStatus.FAILED,
        error="Its worker stopped answering (it was probably restarted).",
        finished_at=now,
    )
    for job_id in lost_jobs:
        _settle(job_id)
    assembled = 0
    waiting = (
        CallListJob.objects.filter(status=CallListJobStatus.RUNNING)
        .exclude(chunks__status__in=[*OPEN_CHUNK, CallListChunkStatus.FAILED])
        .annotate(last=Max("chunks__finished_at"))
        .filter(last__lt=_stale_before(now))
    )
    for job_id in waiting.values_list("pk", flat=True):
        _assemble(job_id)
        assembled += 1
    return {"expired": expired, "failed_chunks": failed, "assembled": assembled}


# --- the embedded default's worker -------------------------------------------------------------
# Without a broker (CELERY_TASK_ALWAYS_EAGER), one daemon thread of this process checks the
# chunks handed to it, in order, so that the upload's request answers at once. The thread has
# its own database connection (SQLite in WAL mode lets requests read meanwhile) and closes it
# when it has nothing left to do. A process that stops mid-chunk leaves it silent: the job page
# then offers to retry it.
_local_lock = threading.Lock()
_local_chunks: collections.deque[int] = collections.deque()
_local_thread: threading.Thread | None = None


def start_in_process(chunk_ids: list[int]) -> threading.Thread:
    """Hand committed chunks to this process's background thread, started if idle."""
    global _local_thread
    with _local_lock:
        _local_chunks.extend(pk for pk in chunk_ids if pk not in _local_chunks)
        if _local_thread is None or not _local_thread.is_alive():
            _local_thread = threading.Thread(target=_local_work, name="call-lists", daemon=True)
            _local_thread.start()
        return _local_thread


def _local_work() -> None:
    global _local_thread
    try:
        while True:
            with _local_lock:
                if not _local_chunks:
                    _local_thread = None
                    return
                chunk_id = _local_chunks.popleft()
            try:
                run_until_settled(chunk_id)
            except Exception:
                logger.exception("Call-list chunk %s stopped the local worker's turn", chunk_id)
    finally:
        connection.close()


def run_until_settled(chunk_id: int) -> CallListChunk | None:
    """Run a chunk, again after each error, until it is done or failed (the local worker's
    and the tests' way; a Celery task waits between attempts instead)."""
    chunk = call_list_chunk_run(chunk_id=chunk_id)
    while chunk is not None and chunk.status == CallListChunkStatus.QUEUED and chunk.error:
        chunk = call_list_chunk_run(chunk_id=chunk_id)
    return chunk
