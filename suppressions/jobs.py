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
4. call_list_job_retry queues the failed chunks again (and any gone silent), nothing else,
   or, when every chunk is done and only the assembly failed, assembles again;
   call_list_job_cancel stops the job (running chunks stop after their batch) and deletes its
   files; call_list_jobs_sweep (periodic; in the embedded default, sweep_if_due from the pages)
   deletes expired files, fails chunks whose worker went silent (so that the page offers a
   retry), finishes a job whose assembly was interrupted and deletes folders no job keeps.
   Every read of a job goes through expire_if_due, so no file is served past `expires_at`, and
   a deleted job's row takes its files with it (job_deleted, a post_delete receiver).

Claims and heartbeats filter on the chunk's own columns only (see _claim), so that PostgreSQL
re-checks them after waiting for a concurrent writer's lock.
"""

import collections
import contextlib
import datetime
import errno
import hashlib
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
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
# The statuses of a job whose files are kept until it expires.
KEEPS_FILES = (*UNDER_WAY, CallListJobStatus.DONE, CallListJobStatus.FAILED)
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
    except BaseException:
        # Only what happens before the commit is undone here: once the job is committed its
        # files are its own, whatever becomes of the dispatch (an orphan left by a process
        # that died in between is removed by the sweep after ORPHAN_AFTER).
        shutil.rmtree(folder, ignore_errors=True)
        raise
    # Registered outside the inner atomic block, so that in autocommit it runs after the `try`
    # above; robust, so that a dispatch that fails after all (its own errors are caught) is
    # logged rather than turned into an error page for a list that was accepted.
    transaction.on_commit(lambda: _dispatch(ids), robust=True)
    return job


def _dispatch(chunk_ids: list[int]) -> None:
    """
    Hand committed chunks to the workers (a Celery group), or to this process's thread when
    eager. When neither takes them, the chunks are failed with a retry offered: the job and its
    files stay as they are.
    """
    from suppressions import tasks

    try:
        if tasks.calllist_in_process():
            start_in_process(chunk_ids)
        else:
            tasks.calllist_chunks_send(chunk_ids)
    except Exception:
        logger.exception("Could not hand call-list chunks %s to a worker", chunk_ids[:5])
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
    if tasks.calllist_in_process():
        sweep_if_due()


class _Stopped(Exception):
    """The chunk is no longer this worker's: its job was cancelled, or it was taken over."""


# Lookups kept by a worker process between chunks of the same job on the same day: the
# people, domains and suppressions one chunk read need not be read again by the next.
# Bounded by Lookups.MAX_HELD.
_worker_lookups: dict[str, object] = {"job": None, "lookups": None}
# Less than what one request's check may hold: on the extra-large set, 1,000,000 rows through two
# workers (make bench-calllist) took 17.2 s at 200,000 entries with workers 270 MB over idle;
# 20.9 s at 100,000 (+157-186 MB); 18.9 s at 125,000 (+171-190 MB), within the 20 s and the
# 200 MB a worker may take. What a worker forgets is read again by the next batch.
WORKER_HELD = 125_000


def _lookups_for(job: CallListJob) -> decisions.Lookups:
    # SQLite may give a deleted job's id to the next one; and Lookups is not thread-safe, so
    # two threads of one process (a threads pool, the tests) never share one.
    key = (threading.get_ident(), job.pk, job.created_at)
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
    claimed = _claim(chunk_id)
    chunk = CallListChunk.objects.select_related("job").filter(pk=chunk_id).first()
    if not claimed or chunk is None:
        return chunk
    job = chunk.job
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


def call_list_chunk_waits(chunk: CallListChunk) -> bool:
    """
    Whether a chunk a task could not claim is running elsewhere under a job still under way:
    the task should come back later rather than drop it.
    """
    return chunk.status == CallListChunkStatus.RUNNING and _job_status(chunk.job_id) in UNDER_WAY


def _claim(chunk_id: int) -> bool:
    """
    Take the chunk for this worker, in one short transaction: the job's row locked first (as
    cancel, retry and the chunks' endings lock it), then a conditional UPDATE on the chunk's
    own columns only. A filter reaching into the job would make Django write
    `WHERE id IN (SELECT ... JOIN ...)`, which PostgreSQL does not re-check after waiting for a
    concurrent claim's lock, so that both claims won; on the chunk's own columns the waiting
    UPDATE re-reads the status the first one wrote and takes nothing.
    """
    now = timezone.now()
    job_id = CallListChunk.objects.filter(pk=chunk_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return False
    claimable = Q(status=CallListChunkStatus.QUEUED) | Q(
        status=CallListChunkStatus.RUNNING, heartbeat_at__lt=_stale_before(now)
    )
    with transaction.atomic():
        status = (
            CallListJob.objects.select_for_update()
            .filter(pk=job_id)
            .values_list("status", flat=True)
            .first()
        )
        if status not in UNDER_WAY:
            return False
        claimed = CallListChunk.objects.filter(claimable, pk=chunk_id, job_id=job_id).update(
            status=CallListChunkStatus.RUNNING,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            rows_done=0,
            error="",
        )
        if claimed and status == CallListJobStatus.QUEUED:
            CallListJob.objects.filter(pk=job_id).update(status=CallListJobStatus.RUNNING)
    return bool(claimed)


def _mine(chunk: CallListChunk):
    """
    The chunk while it is still this worker's: running, at the attempt this worker claimed (a
    worker that took it over counted another). Its own columns only, for the same reason as
    in _claim.
    """
    return CallListChunk.objects.filter(
        pk=chunk.pk, status=CallListChunkStatus.RUNNING, attempts=chunk.attempts
    )


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
    mine = _mine(chunk)
    temporary = part.with_name(f"{part.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            lines = calllist.annotated(
                calllist.chunk_records(data, layout, first_row=chunk.first_row),
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
                if _job_status(job.pk) != CallListJobStatus.RUNNING:
                    raise _Stopped  # cancelled or expired: its files are going
        os.replace(temporary, part)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return tally.as_dict()


def _in_words(exc: BaseException) -> str:
    """What went wrong, for the job's page: in words, not an exception's class name."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the server's disk is full"
    if isinstance(exc, FileNotFoundError):
        return "one of its files was missing"
    if isinstance(exc, PermissionError):
        return "the server was not allowed to open one of its files"
    if isinstance(exc, OSError):
        return "the server could not read or write one of its files"
    if isinstance(exc, MemoryError):
        return "the server ran out of memory"
    if isinstance(exc, DatabaseError):
        return "the database did not answer"
    return "an unexpected error on the server (its log has the details)"


def _chunk_error(chunk: CallListChunk, exc: Exception) -> None:
    """Queue the chunk for another attempt, or fail it after MAX_ATTEMPTS."""
    now = timezone.now()
    last = chunk.attempts >= MAX_ATTEMPTS  # the claim counted this attempt
    message = f"Part {chunk.index + 1} (rows {chunk.first_row:,} on) stopped: {_in_words(exc)}."
    _mine(chunk).update(
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
        ended = _mine(chunk).update(
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
    job = CallListJob.objects.filter(pk=job_id).first()
    if job is None or job.status != CallListJobStatus.RUNNING:
        return
    chunks = list(
        job.chunks.order_by("index").values_list("pk", "part_path", "rows_done", "counts")
    )
    parts = [(part, done, counts) for _, part, done, counts in chunks]
    layout = layout_of(job)
    folder = folder_of(job)
    result = folder / RESULT_NAME
    temporary = folder / f"{RESULT_NAME}.{secrets.token_hex(4)}.tmp"
    rows = sum(done for _, done, _ in parts)
    if rows != job.rows:
        # A fault of the check itself: checking the parts again would give the same file.
        _assembly_failed(
            job_id,
            f"The checked parts hold {rows:,} rows where the file has {job.rows:,}, so no "
            "file was made. Upload the file again; if this happens again, tell an "
            "administrator.",
        )
        return
    lost = [pk for pk, part, _, _ in chunks if not part or not _path(part).is_file()]
    if lost:
        _parts_lost(job_id, lost)
        return
    try:
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
        # Every part is kept: a retry puts them together again (call_list_job_retry).
        _assembly_failed(
            job_id,
            f"The checked parts could not be put together: {_in_words(exc)}. Retry to put "
            "them together again; the parts are kept.",
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
    if not finished:
        # Cancelled while it was put together, or put together by another (the sweep and a
        # retry's worker): that one's file is this one's, byte for byte.
        if _job_status(job_id) != CallListJobStatus.DONE:
            with contextlib.suppress(FileNotFoundError):
                result.unlink()
        return
    # Only the checked file is kept: the upload and the parts are not needed any more.
    with contextlib.suppress(FileNotFoundError):
        _path(job.path).unlink()
    for part, _, _ in parts:
        with contextlib.suppress(FileNotFoundError):
            _path(part).unlink()


def _assembly_failed(job_id: int, message: str) -> None:
    CallListJob.objects.filter(pk=job_id, status=CallListJobStatus.RUNNING).update(
        status=CallListJobStatus.FAILED, error=message, finished_at=timezone.now()
    )


def _parts_lost(job_id: int, chunk_ids: list[int]) -> None:
    """Chunks marked done whose part file is gone: failed, so that a retry checks them again."""
    now = timezone.now()
    with transaction.atomic():
        job = CallListJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != CallListJobStatus.RUNNING:
            return
        CallListChunk.objects.filter(pk__in=chunk_ids, job_id=job_id).update(
            status=CallListChunkStatus.FAILED,
            error="Its checked part was lost before the file was put together.",
            part_path="",
            finished_at=now,
        )
        _conclude(job)


@transaction.atomic
def call_list_job_cancel(*, job: CallListJob) -> CallListJob:
    """
    Stop a job that is not finished: chunks not started never start, running ones stop after
    their batch, and its files are deleted. Cancelling twice is harmless.
    """
    locked = CallListJob.objects.select_for_update().get(pk=job.pk)
    if locked.status == CallListJobStatus.CANCELLED:
        return locked
    if locked.status == CallListJobStatus.EXPIRED or (
        locked.status in KEEPS_FILES and locked.expires_at <= timezone.now()
    ):
        raise ValidationError(
            "This list has expired, so there is nothing to cancel: its files were deleted."
        )
    if locked.status == CallListJobStatus.DONE:
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
    now = timezone.now()
    if locked.status in KEEPS_FILES and locked.expires_at <= now:
        raise ValidationError(
            "This list has expired and its files were deleted. Upload it again to check it."
        )
    if locked.status not in (CallListJobStatus.FAILED, *UNDER_WAY):
        raise ValidationError(
            f"This list is {locked.get_status_display().lower()}: there is nothing to retry."
        )
    chunks = CallListChunk.objects.filter(job=locked)
    statuses = set(chunks.values_list("status", flat=True))
    if locked.status == CallListJobStatus.FAILED and statuses == {CallListChunkStatus.DONE}:
        # Every part is checked and only putting them together failed: do that again.
        if sum(chunks.values_list("rows_done", flat=True)) != locked.rows:
            raise ValidationError(
                "The checked parts do not add up to the rows of the file, so checking them "
                "again would not help. Upload the file again."
            )
        # Stamped now, so that the sweep leaves the assembly to the worker it goes to.
        chunks.update(finished_at=now)
        _restart(locked, now)
        transaction.on_commit(lambda: _dispatch_assembly(locked.pk), robust=True)
        return locked
    again = CallListChunk.objects.filter(job=locked).filter(
        Q(status=CallListChunkStatus.FAILED) | _lost(now)
    )
    ids = list(again.values_list("pk", flat=True))
    if not ids:
        raise ValidationError("No part of this list has failed: it is still being checked.")
    CallListChunk.objects.filter(pk__in=ids).update(
        status=CallListChunkStatus.QUEUED, attempts=0, error="", heartbeat_at=now
    )
    _restart(locked, now)
    transaction.on_commit(lambda: _dispatch(ids), robust=True)
    return locked


def _restart(job: CallListJob, now) -> None:
    """A stopped job running again, its checked file kept for the full time from now."""
    job.status = CallListJobStatus.RUNNING
    job.error = ""
    job.finished_at = None
    job.expires_at = now + _keep()
    job.save(update_fields=["status", "error", "finished_at", "expires_at"])


def _dispatch_assembly(job_id: int) -> None:
    """
    Put a job's checked parts together again (after a retry): a worker's task, or this
    process's thread when eager. If neither takes it, the sweep does (the job is running with
    every chunk done).
    """
    from suppressions import tasks

    try:
        if tasks.calllist_in_process():
            start_in_process([], assemble=[job_id])
        else:
            tasks.calllist_assemble.delay(job_id)
    except Exception:
        logger.exception("Could not hand call-list job %s's assembly to a worker", job_id)


def call_list_job_assemble(*, job_id: int) -> None:
    """Put together the checked file of a running job whose chunks are all done."""
    _assemble(job_id)


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
    The periodic clean-up (suppressions.calllist_sweep; in the embedded default, without beat,
    sweep_if_due): jobs past `expires_at` are marked expired and their files deleted; chunks
    whose worker went silent (or that never reached one) are failed, so that their job offers a
    retry; a job whose chunks are all done but whose assembly was interrupted is assembled;
    folders under MEDIA_ROOT/calllists/ that no job keeps, older than ORPHAN_AFTER, are
    deleted. Returns how many of each.
    """
    now = now or timezone.now()
    expired = 0
    for pk in CallListJob.objects.filter(status__in=KEEPS_FILES, expires_at__lte=now).values_list(
        "pk", flat=True
    ):
        expired += _expire(pk, now)
    failed = 0
    lost_jobs = set(
        CallListChunk.objects.filter(_lost(now), job__status__in=UNDER_WAY).values_list(
            "job_id", flat=True
        )
    )
    for job_id in lost_jobs:
        with transaction.atomic():
            # Under the job's lock, on the chunks' own columns (see _claim): a chunk taken over
            # meanwhile is fresh again and left alone.
            job = CallListJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None or job.status not in UNDER_WAY:
                continue
            failed += CallListChunk.objects.filter(_lost(now), job_id=job_id).update(
                status=CallListChunkStatus.FAILED,
                error="Its worker stopped answering (it was probably restarted).",
                finished_at=now,
            )
            _conclude(job)
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
    return {
        "expired": expired,
        "failed_chunks": failed,
        "assembled": assembled,
        "orphans": _delete_orphans(now),
    }


def _expire(job_id: int, now: datetime.datetime) -> int:
    """Mark one job past `expires_at` expired; its files go after the commit. 1 if it was."""
    with transaction.atomic():
        locked = (
            CallListJob.objects.select_for_update()
            .filter(pk=job_id, status__in=KEEPS_FILES, expires_at__lte=now)
            .first()
        )
        if locked is None:
            return 0
        locked.status = CallListJobStatus.EXPIRED
        locked.finished_at = locked.finished_at or now
        locked.save(update_fields=["status", "finished_at"])
        transaction.on_commit(lambda: _delete_files(locked))
    return 1


def expire_if_due(job: CallListJob) -> CallListJob:
    """
    A job read for a page or the API, expired first if its time is over: no file is ever
    served past `expires_at`, whether the sweep has run or not.
    """
    if job.status in KEEPS_FILES and job.expires_at <= timezone.now():
        _expire(job.pk, timezone.now())
        job.refresh_from_db()
    return job


# How often the embedded default sweeps, at most (on the call-list pages and uploads).
SWEEP_EVERY = datetime.timedelta(minutes=5)
# A folder under calllists/ that no job keeps is deleted once it is this old: an upload between
# storing its file and committing its job is never that slow.
ORPHAN_AFTER = datetime.timedelta(days=1)


_sweep_lock = threading.Lock()
_last_sweep: dict[str, datetime.datetime] = {}


def sweep_if_due() -> bool:
    """
    The embedded default has no beat: the call-list pages, the API's reads and each upload's
    dispatch call this, and at most every SWEEP_EVERY (in this process: the embedded default
    is one) it runs the sweep here. With workers, beat runs it; this does nothing. Never
    raises: a sweep that fails is logged and tried again later.
    """
    from suppressions import tasks

    if not tasks.calllist_in_process():
        return False
    now = timezone.now()
    with _sweep_lock:
        last = _last_sweep.get("at")
        if last is not None and last <= now < last + SWEEP_EVERY:
            return False
        _last_sweep["at"] = now
    try:
        call_list_jobs_sweep()
    except Exception:
        logger.exception("The call-list sweep failed")
        return False
    return True


def _delete_orphans(now: datetime.datetime) -> int:
    """Folders under calllists/ older than ORPHAN_AFTER that no job keeping files points to."""
    root = _path(FOLDER)
    if not root.is_dir():
        return 0
    cutoff = (now - ORPHAN_AFTER).timestamp()
    old: dict[str, Path] = {}
    for folder in root.glob("*/*/*"):
        with contextlib.suppress(OSError):
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                relative = folder.relative_to(Path(settings.MEDIA_ROOT)).as_posix()
                old[f"{relative}/{UPLOAD_NAME}"] = folder
    deleted = 0
    paths = list(old)
    for start in range(0, len(paths), 500):
        batch = paths[start : start + 500]
        kept = set(
            CallListJob.objects.filter(path__in=batch, status__in=KEEPS_FILES).values_list(
                "path", flat=True
            )
        )
        for path in batch:
            if path not in kept:
                shutil.rmtree(old[path], ignore_errors=True)
                deleted += 1
    # Month and year folders left empty.
    for folder in [*root.glob("*/*"), *root.glob("*")]:
        with contextlib.suppress(OSError):
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                folder.rmdir()  # only when empty
    return deleted


def job_deleted(sender, instance: CallListJob, **kwargs) -> None:
    """
    A job's row deleted (with its owner or API token, or in the admin): its files go too,
    once the deletion is committed. Connected in SuppressionsConfig.ready.
    """
    transaction.on_commit(lambda: _delete_files(instance), using=kwargs.get("using"))


# --- the embedded default's worker -------------------------------------------------------------
# Without a broker (CELERY_TASK_ALWAYS_EAGER), one daemon thread of this process checks the
# chunks handed to it, in order, so that the upload's request answers at once. The thread has
# its own database connection (SQLite in WAL mode lets requests read meanwhile) and closes it
# when it has nothing left to do. A process that stops mid-chunk leaves it silent: the job page
# then offers to retry it.
_local_lock = threading.Lock()
# Chunk ids to check, and ("assemble", job id) for a job whose parts are put together again.
_local_chunks: collections.deque[int | tuple[str, int]] = collections.deque()
_local_thread: threading.Thread | None = None


def start_in_process(
    chunk_ids: list[int], *, assemble: list[int] | None = None
) -> threading.Thread:
    """Hand committed chunks (or assemblies) to this process's background thread."""
    global _local_thread
    with _local_lock:
        _local_chunks.extend(pk for pk in chunk_ids if pk not in _local_chunks)
        _local_chunks.extend(("assemble", pk) for pk in assemble or ())
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
                item = _local_chunks.popleft()
            try:
                if isinstance(item, tuple):
                    call_list_job_assemble(job_id=item[1])
                else:
                    run_until_settled(item)
            except Exception:
                logger.exception("Call-list work %s stopped the local worker's turn", item)
    finally:
        connection.close()


def run_until_settled(chunk_id: int) -> CallListChunk | None:
    """Run a chunk, again after each error, until it is done or failed (the local worker's
    and the tests' way; a Celery task waits between attempts instead)."""
    chunk = call_list_chunk_run(chunk_id=chunk_id)
    while chunk is not None and chunk.status == CallListChunkStatus.QUEUED and chunk.error:
        chunk = call_list_chunk_run(chunk_id=chunk_id)
    return chunk
