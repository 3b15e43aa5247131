"""
Call lists too long to answer at once become jobs (suppressions.jobs): validated before any row
or file exists, cut into chunks at record boundaries, checked chunk by chunk (here in-process,
as the tests of history imports run their jobs), put together in order, kept for a while and
then deleted. Small settings make small files long: lists of more than 5 rows are jobs, of
chunks of 3 rows.
"""

import csv
import datetime
import io
import threading
from pathlib import Path

import pytest
import time_machine
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from suppressions import calllist, decisions, jobs, tasks
from suppressions.models import (
    CallListChunk,
    CallListChunkStatus,
    CallListJob,
)
from tests.suppressions.test_call_list import upload

pytestmark = pytest.mark.django_db
URL = reverse("suppressions:call_list_check")


@pytest.fixture(autouse=True)
def _small_jobs(settings, monkeypatch):
    settings.DEBRIEF_CALLLIST_INLINE_ROWS = 5
    settings.DEBRIEF_CALLLIST_CHUNK_ROWS = 3
    # A worker keeps what it read for the next chunk of the same job: not across tests.
    monkeypatch.setattr(jobs, "_worker_lookups", {"job": None, "lookups": None})
    # The embedded default's opportunistic sweep (tested on its own below) would otherwise run
    # whenever a test opens a job's page with eager tasks, and not with a broker.
    monkeypatch.setattr(jobs, "sweep_if_due", lambda: False)


_real_sweep_if_due = jobs.sweep_if_due


def listing(rows: int, *, suppressed_every: int = 0) -> str:
    lines = ["name,email,phone"]
    for i in range(rows):
        email = (
            "dana@brightwater.example"
            if suppressed_every and i % suppressed_every == 0
            else f"p{i}@x.example"
        )
        lines.append(f"Person {i},{email},")
    return "\r\n".join(lines) + "\r\n"


def submit(client, text, capture, *, name="list.csv", **extra):
    """Upload; the chunks queued after the commit are not run (run_all does that)."""
    with capture(execute=False) as callbacks:
        response = client.post(URL, {"file": upload(text, name)}, **extra)
    return response, callbacks


def run_all(job: CallListJob) -> CallListJob:
    for pk in job.chunks.order_by("index").values_list("pk", flat=True):
        jobs.run_until_settled(pk)
    job.refresh_from_db()
    return job


def files_under(root) -> list[Path]:
    return [p for p in Path(root).rglob("*") if p.is_file()]


def download(client, job) -> bytes:
    response = client.get(reverse("suppressions:call_list_job_download", args=[job.pk]))
    assert response.status_code == 200, response.status_code
    name = job.file_name.rsplit(".", 1)[0]
    assert response["Content-Disposition"] == f'attachment; filename="{name}-checked.csv"'
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return b"".join(response.streaming_content)


# --- the whole journey ----------------------------------------------------------------------------
def test_a_long_list_becomes_a_job_whose_file_equals_the_immediate_answer(
    rep_client, blocked, django_capture_on_commit_callbacks, settings
):
    # Blank lines, a quoted line break, rows of too few and too many values, formulas: row
    # numbers and order must come out across chunk boundaries exactly as the one-piece answer.
    text = (
        "name,email,note\r\n"
        "A,a@x.example,one\r\n"
        "\r\n"
        'B,dana@brightwater.example,"two\r\nlines"\r\n'
        "C only\r\n"
        "D,d@x.example,=cmd,extra\r\n"
        "\r\n"
        "E,DANA@brightwater.example,\r\n"
        "F,f@x.example,+44 20 7946 0018\r\n"
        "G,g@x.example,@SUM(A1)\r\n"
        "H,h@x.example,last\r\n"
    )
    response, callbacks = submit(rep_client, text, django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("suppressions:call_list_job", args=[job.pk])
    assert len(callbacks) == 1  # the chunks go to the workers after the commit
    assert (job.status, job.rows, job.file_name) == ("queued", 8, "list.csv")
    chunks = list(job.chunks.order_by("index"))
    assert [c.rows for c in chunks] == [3, 3, 2]
    assert [c.first_row for c in chunks] == [2, 6, 10]  # records, as a spreadsheet numbers rows
    raw = text.encode()
    assert raw[chunks[1].start : chunks[1].end].startswith(b"D,d@x.example")

    job = run_all(job)
    assert job.status == "done" and job.counts["rows"] == 8
    checked = download(rep_client, job)

    settings.DEBRIEF_CALLLIST_INLINE_ROWS = 100
    at_once = rep_client.post(URL, {"file": upload(text)})
    assert checked == b"".join(at_once.streaming_content)
    # Only the checked file is kept.
    assert [p.name for p in files_under(settings.MEDIA_ROOT)] == [jobs.RESULT_NAME]


def test_many_small_chunks_keep_every_row_in_order(
    rep_client, blocked, django_capture_on_commit_callbacks, settings
):
    settings.DEBRIEF_CALLLIST_CHUNK_ROWS = 2
    _, _ = submit(rep_client, listing(41, suppressed_every=7), django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    assert job.chunks.count() == 21
    rows = list(csv.reader(io.StringIO(download(rep_client, job).decode())))
    assert rows[0] == ["name", "email", "phone", *calllist.ADDED_COLUMNS]
    assert [r[0] for r in rows[1:]] == [f"Person {i}" for i in range(41)]
    assert [r[3] for r in rows[1:]] == ["yes" if i % 7 == 0 else "no" for i in range(41)]
    assert job.counts["kinds"] == {"do_not_contact": 6}


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-16"),
        lambda text: "\ufeff".encode() + text.encode(),
        lambda text: text.encode("cp1252"),
    ],
    ids=["utf16-bom", "utf8-bom", "windows-1252"],
)
def test_chunks_of_other_encodings_are_cut_at_their_own_bytes(
    rep_client, blocked, django_capture_on_commit_callbacks, encode
):
    text = "email,name\r\n" + "".join(
        f"{'dana@brightwater.example' if i == 4 else f'p{i}@x.example'},Zoë {i}\r\n"
        for i in range(8)
    )
    submit(rep_client, encode(text), django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    rows = list(csv.reader(io.StringIO(download(rep_client, job).decode("utf-8"))))
    assert [r[1] for r in rows[1:]] == [f"Zoë {i}" for i in range(8)]
    assert [r[2] for r in rows[1:]] == ["yes" if i == 4 else "no" for i in range(8)]


def test_htmx_upload_is_sent_to_the_job_page(rep_client, django_capture_on_commit_callbacks):
    response, _ = submit(
        rep_client,
        listing(6),
        django_capture_on_commit_callbacks,
        HTTP_HX_REQUEST="true",
    )
    job = CallListJob.objects.get()
    assert response["HX-Redirect"] == reverse("suppressions:call_list_job", args=[job.pk])


def test_a_short_list_is_still_answered_at_once(rep_client, blocked):
    response = rep_client.post(URL, {"file": upload(listing(5))})
    assert response.status_code == 200 and response["X-Rows-Checked"] == "5"
    assert not CallListJob.objects.exists()


# --- the page -------------------------------------------------------------------------------------
def test_job_page_polls_while_under_way_and_stops_when_done(
    rep_client, blocked, django_capture_on_commit_callbacks, django_assert_num_queries
):
    submit(rep_client, listing(7, suppressed_every=3), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    url = reverse("suppressions:call_list_job", args=[job.pk])
    page = rep_client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in page and "Waiting for a worker" in page
    assert "Cancel" in page and "Your other recent lists" not in page  # only this one
    jobs.run_until_settled(job.chunks.get(index=0).pk)
    # Session and user, the job, its chunks, whether a chunk went silent.
    with django_assert_num_queries(5):
        partial = rep_client.get(url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert "Checked 3 of 7 rows" in partial.content.decode()
    run_all(job)
    with django_assert_num_queries(4):  # no silent chunk to look for once it ended
        final = rep_client.get(url, HTTP_HX_REQUEST="true")
    assert final.status_code == 286  # htmx stops polling
    body = final.content.decode()
    assert "every 1s" not in body and "Download the checked file" in body
    assert '<dt>Must not be called</dt><dd class="stat">3</dd>' in body


def test_upload_page_lists_the_users_recent_jobs_only(
    rep_client, teammate, client, django_capture_on_commit_callbacks
):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks, name="spring.csv")
    assert "spring.csv" in rep_client.get(URL).content.decode()
    client.force_login(teammate)
    assert "spring.csv" not in client.get(URL).content.decode()


# --- who may see a job ----------------------------------------------------------------------------
def test_another_users_job_and_file_answer_404_and_an_admin_may_download(
    rep_client, rep, teammate, manager, admin_user, client, django_capture_on_commit_callbacks
):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    names = ["call_list_job", "call_list_job_download"]
    for person in (teammate, manager):
        client.force_login(person)
        for name in names:
            assert client.get(reverse(f"suppressions:{name}", args=[job.pk])).status_code == 404
        for name in ("call_list_job_cancel", "call_list_job_retry"):
            assert client.post(reverse(f"suppressions:{name}", args=[job.pk])).status_code == 404
    # A forged id looks the same as another person's.
    assert (
        rep_client.get(reverse("suppressions:call_list_job", args=[job.pk + 99])).status_code == 404
    )
    client.force_login(admin_user)
    assert download(client, job).startswith(b"name,email,phone,suppressed")
    job.refresh_from_db()
    assert job.status == "done"


def test_anonymous_is_sent_to_login(client, rep, django_capture_on_commit_callbacks):
    client.force_login(rep)
    submit(client, listing(6), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    client.logout()
    response = client.get(reverse("suppressions:call_list_job_download", args=[job.pk]))
    assert response.status_code == 302 and "/login" in response["Location"]


# --- bad input: a clear message, no job, no file --------------------------------------------------
@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "The submitted file is empty"),
        (b"\r\n  \r\n", "The file is empty."),
        ("name,city\n" + "Dana,Leeds\n" * 10, "No usable column"),
        (b"PK\x03\x04\x00\x00" + bytes(range(256)) * 50, "not a CSV file (it contains binary"),
        (b"email\n" + b"\x81\x8d\x8f\x90" * 40, "neither UTF-8, UTF-16 nor Windows-1252"),
        (
            "email," + ",".join(f"c{i}" for i in range(9_999)) + "\n" + "x@y.example\n" * 10,
            "The header has 10,000 columns; at most 1,000 are read.",
        ),
        ('email\n"x@y.example\n' + "a@b.example\n" * 10, "not a readable CSV"),
    ],
    ids=["empty", "blank", "no-usable-column", "binary", "not-text", "10000-columns", "quotes"],
)
def test_bad_files_get_a_clear_message_and_leave_nothing(
    rep_client, settings, django_capture_on_commit_callbacks, content, message
):
    response, callbacks = submit(rep_client, content, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert message in response.content.decode(), response.content.decode()[-2000:]
    assert not CallListJob.objects.exists() and not CallListChunk.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == [] and callbacks == []


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    rep_client, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 2048
    response, _ = submit(rep_client, listing(5_000), django_capture_on_commit_callbacks)
    assert response.status_code == 413
    assert "The file is larger than 2.0 KB. Split it and check each part." in (
        response.content.decode()
    )
    assert not CallListJob.objects.exists() and files_under(settings.MEDIA_ROOT) == []


def test_a_file_just_over_the_size_limit_is_refused_by_validation(
    rep_client, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 4096
    text = listing(200)  # over the limit, within the margin left for the form around it
    assert 4096 < len(text) < 4096 + 64 * 1024
    response, _ = submit(rep_client, text, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "the limit is 4.0 KB" in response.content.decode()
    assert not CallListJob.objects.exists() and files_under(settings.MEDIA_ROOT) == []


def test_a_failure_while_creating_the_job_leaves_no_row_and_no_file(
    rep_client, settings, django_capture_on_commit_callbacks, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(CallListChunk.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        submit(rep_client, listing(9), django_capture_on_commit_callbacks)
    assert not CallListJob.objects.exists() and files_under(settings.MEDIA_ROOT) == []


# --- a failed chunk, retried alone ----------------------------------------------------------------
def test_a_failed_chunk_is_retried_alone(
    rep_client, blocked, django_capture_on_commit_callbacks, monkeypatch, settings
):
    submit(rep_client, listing(9, suppressed_every=4), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    middle = job.chunks.get(index=1)
    real = jobs._check_chunk
    calls: list[int] = []

    def flaky(chunk, job, part):
        calls.append(chunk.index)
        if chunk.index == 1:
            raise OSError("disk hiccup")
        return real(chunk, job, part)

    monkeypatch.setattr(jobs, "_check_chunk", flaky)
    job = run_all(job)
    middle.refresh_from_db()
    assert (middle.status, middle.attempts) == ("failed", jobs.MAX_ATTEMPTS)
    assert middle.error == (
        "Part 2 (rows 5 on) stopped: the server could not read or write one of its files."
    )
    assert job.status == "failed" and "1 of 3 parts could not be checked" in job.error
    page = rep_client.get(reverse("suppressions:call_list_job", args=[job.pk])).content.decode()
    assert "Retry failed parts" in page
    parts = {
        c.index: Path(settings.MEDIA_ROOT) / c.part_path for c in job.chunks.all() if c.part_path
    }
    kept = {index: (p.read_bytes(), p.stat().st_mtime_ns) for index, p in parts.items()}
    assert sorted(kept) == [0, 2]

    monkeypatch.setattr(jobs, "_check_chunk", real)
    checked_rows: list[int] = []
    real_check = decisions.check_keys

    def spy(keys, **kwargs):
        checked_rows.append(len(keys))
        # The other parts are untouched while this one is checked again.
        for index, path in parts.items():
            assert (path.read_bytes(), path.stat().st_mtime_ns) == kept[index]
        return real_check(keys, **kwargs)

    monkeypatch.setattr(decisions, "check_keys", spy)
    calls.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = rep_client.post(reverse("suppressions:call_list_job_retry", args=[job.pk]))
    assert response.status_code == 302 and len(callbacks) == 1
    job.refresh_from_db()
    assert job.status == "running"
    assert list(job.chunks.values_list("status", flat=True).order_by("index")) == [
        "done",
        "queued",
        "done",
    ]
    job = run_all(job)
    assert checked_rows == [3]  # only the failed part's rows were checked again
    assert job.status == "done"
    rows = list(csv.reader(io.StringIO(download(rep_client, job).decode())))
    assert [r[0] for r in rows[1:]] == [f"Person {i}" for i in range(9)]
    assert [r[3] for r in rows[1:]] == ["yes" if i % 4 == 0 else "no" for i in range(9)]


def test_a_chunk_that_fails_once_succeeds_on_its_next_attempt(
    rep_client, django_capture_on_commit_callbacks, monkeypatch
):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    real = jobs._check_chunk
    failed = []

    def once(chunk, job, part):
        if not failed:
            failed.append(chunk.index)
            raise OSError("once")
        return real(chunk, job, part)

    monkeypatch.setattr(jobs, "_check_chunk", once)
    first = jobs.call_list_chunk_run(chunk_id=job.chunks.get(index=0).pk)
    assert (first.status, first.attempts) == ("queued", 1) and "read or write" in first.error
    assert run_all(job).status == "done"


def test_retry_is_refused_when_nothing_failed(rep_client, django_capture_on_commit_callbacks):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    response = rep_client.post(reverse("suppressions:call_list_job_retry", args=[job.pk]))
    assert response.status_code == 302
    page = rep_client.get(response["Location"]).content.decode()
    assert "No part of this list has failed: it is still being checked." in page


# --- cancellation ---------------------------------------------------------------------------------
def test_cancel_deletes_the_files_and_no_chunk_runs_afterwards(
    rep_client, django_capture_on_commit_callbacks, settings
):
    submit(rep_client, listing(9), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    jobs.run_until_settled(job.chunks.get(index=0).pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(reverse("suppressions:call_list_job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job = run_all(job)
    assert job.status == "cancelled"
    assert files_under(settings.MEDIA_ROOT) == []
    assert list(job.chunks.values_list("status", flat=True).order_by("index")) == [
        "done",
        "queued",
        "queued",
    ]
    page = rep_client.get(reverse("suppressions:call_list_job", args=[job.pk])).content.decode()
    assert "The check was cancelled" in page
    download = rep_client.get(reverse("suppressions:call_list_job_download", args=[job.pk]))
    assert download.status_code == 409


def test_a_running_chunk_stops_at_its_next_batch_when_cancelled(
    rep_client, django_capture_on_commit_callbacks, monkeypatch, settings
):
    monkeypatch.setattr(calllist, "BATCH_ROWS", 1)
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    batches = []
    real = decisions.check_keys

    def cancel_during_first_batch(keys, **kwargs):
        batches.append(len(keys))
        if len(batches) == 1:
            with django_capture_on_commit_callbacks(execute=True):
                jobs.call_list_job_cancel(job=job)
        return real(keys, **kwargs)

    monkeypatch.setattr(decisions, "check_keys", cancel_during_first_batch)
    chunk = jobs.call_list_chunk_run(chunk_id=job.chunks.get(index=0).pk)
    assert batches == [1]  # stopped after the batch in progress, not at the end of the chunk
    assert chunk.status == "running" and chunk.part_path == ""
    assert files_under(settings.MEDIA_ROOT) == []
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_a_checked_list_cannot_be_cancelled(rep_client, django_capture_on_commit_callbacks):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    response = rep_client.post(
        reverse("suppressions:call_list_job_cancel", args=[job.pk]), follow=True
    )
    assert "checked already" in response.content.decode()
    job.refresh_from_db()
    assert job.status == "done"


# --- expiry and workers that died -----------------------------------------------------------------
def test_expired_results_are_deleted_and_the_download_says_so(
    rep_client, django_capture_on_commit_callbacks, settings
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = run_all(CallListJob.objects.get())
        assert job.expires_at == timezone.now() + datetime.timedelta(hours=24)
        clock.shift(datetime.timedelta(hours=23))
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.calllist_sweep()["expired"] == 0
        assert download(rep_client, job)
        clock.shift(datetime.timedelta(hours=1, seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.calllist_sweep()["expired"] == 1
    job.refresh_from_db()
    assert job.status == "expired" and files_under(settings.MEDIA_ROOT) == []
    response = rep_client.get(reverse("suppressions:call_list_job_download", args=[job.pk]))
    assert response.status_code == 410
    assert "The checked file has expired" in response.content.decode()


def test_a_chunk_whose_worker_went_silent_is_failed_by_the_sweep_and_offered_again(
    rep_client, django_capture_on_commit_callbacks
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = CallListJob.objects.get()
        jobs.run_until_settled(job.chunks.get(index=0).pk)
        # A worker took the second chunk and died.
        CallListChunk.objects.filter(job=job, index=1).update(
            status=CallListChunkStatus.RUNNING, heartbeat_at=timezone.now()
        )
        clock.shift(datetime.timedelta(seconds=121))
        job.refresh_from_db()
        assert jobs.stalled(job)
        page = rep_client.get(reverse("suppressions:call_list_job", args=[job.pk]))
        assert "Stopped answering" in page.content.decode()
        assert "Retry failed parts" in page.content.decode()
        assert tasks.calllist_sweep()["failed_chunks"] == 1
    job.refresh_from_db()
    assert job.status == "failed"
    with django_capture_on_commit_callbacks(execute=False):
        jobs.call_list_job_retry(job=job)
    assert run_all(job).status == "done"


def test_chunks_that_never_reached_a_worker_are_offered_again_after_an_hour(
    rep_client, django_capture_on_commit_callbacks
):
    """E.g. the embedded default's server restarted with chunks waiting for its thread."""
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = CallListJob.objects.get()
        url = reverse("suppressions:call_list_job", args=[job.pk])
        clock.shift(jobs.QUEUE_LOST_AFTER - datetime.timedelta(seconds=1))
        assert "Waiting for a worker" in rep_client.get(url).content.decode()
        clock.shift(datetime.timedelta(seconds=2))
        assert "Retry failed parts" in rep_client.get(url).content.decode()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            rep_client.post(reverse("suppressions:call_list_job_retry", args=[job.pk]))
        assert len(callbacks) == 1
    assert run_all(job).status == "done"


def test_a_redelivered_task_takes_over_a_silent_chunk(
    rep_client, django_capture_on_commit_callbacks
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = CallListJob.objects.get()
        jobs.run_until_settled(job.chunks.get(index=0).pk)
        chunk = job.chunks.get(index=1)
        CallListChunk.objects.filter(pk=chunk.pk).update(status="running")
        assert jobs.call_list_chunk_run(chunk_id=chunk.pk).attempts == 0  # still fresh: not ours
        clock.shift(datetime.timedelta(seconds=121))
        assert jobs.call_list_chunk_run(chunk_id=chunk.pk).status == "done"
    job.refresh_from_db()
    assert job.status == "done"


# --- handing chunks to workers --------------------------------------------------------------------
def test_chunks_go_to_a_celery_group_or_to_the_local_thread(
    rep_client, django_capture_on_commit_callbacks, monkeypatch, settings
):
    sent, local = [], []
    monkeypatch.setattr(tasks, "calllist_chunks_send", sent.append)
    monkeypatch.setattr(jobs, "start_in_process", local.append)
    monkeypatch.setattr(tasks, "calllist_in_process", lambda: False)
    with django_capture_on_commit_callbacks(execute=True):
        rep_client.post(URL, {"file": upload(listing(7))})
    job = CallListJob.objects.get()
    ids = list(job.chunks.order_by("index").values_list("pk", flat=True))
    assert sent == [ids] and local == []
    monkeypatch.setattr(tasks, "calllist_in_process", lambda: True)
    with django_capture_on_commit_callbacks(execute=True):
        rep_client.post(URL, {"file": upload(listing(7))})
    assert len(sent) == 1 and len(local) == 1


def test_a_broker_that_refuses_fails_the_chunks_with_a_retry_offered(
    rep_client, django_capture_on_commit_callbacks, monkeypatch
):
    def refuse(ids):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks, "calllist_chunks_send", refuse)
    monkeypatch.setattr(tasks, "calllist_in_process", lambda: False)
    with django_capture_on_commit_callbacks(execute=True):
        rep_client.post(URL, {"file": upload(listing(7))})
    job = CallListJob.objects.get()
    assert job.status == "failed"
    assert set(job.chunks.values_list("error", flat=True)) == {
        "The background workers could not be reached."
    }


def test_the_celery_task_runs_a_chunk_and_waits_before_another_attempt(
    rep_client, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.DEBRIEF_CALLLIST_CHUNK_ROWS = 10
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    chunk = CallListJob.objects.get().chunks.get()
    asked = []

    class Again(Exception):
        pass

    def retry(**kwargs):
        asked.append(kwargs)
        return Again()

    monkeypatch.setattr(tasks.calllist_chunk, "retry", retry)
    real = jobs._check_chunk
    monkeypatch.setattr(jobs, "_check_chunk", lambda *args: 1 / 0)
    with pytest.raises(Again):
        tasks.calllist_chunk.run(chunk.pk)
    assert asked == [{"countdown": 5}]
    monkeypatch.setattr(jobs, "_check_chunk", real)
    assert tasks.calllist_chunk.run(chunk.pk) == "done"
    assert tasks.calllist_chunk.run(chunk.pk + 100) == "missing"


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_chunks_ending_together_put_the_file_together_once(rep, blocked, monkeypatch, settings):
    """The lock on the job's row lets exactly one of two chunks ending at once see the last."""
    settings.DEBRIEF_CALLLIST_CHUNK_ROWS = 4
    # The commit would hand the chunks to the embedded thread too, which raced these threads.
    monkeypatch.setattr(jobs, "_dispatch", lambda ids: None)
    text = listing(8, suppressed_every=3).encode()
    layout = calllist.validate(upload(text), chunk_rows=4)
    job = jobs.call_list_job_create(upload=upload(text), layout=layout, owner=rep)
    barrier = threading.Barrier(2)
    real_check, real_assemble = jobs._check_chunk, jobs._assemble
    assembled = []

    def together(chunk, job, part):
        counts = real_check(chunk, job, part)
        barrier.wait(timeout=10)
        return counts

    def counted(job_id):
        assembled.append(job_id)
        real_assemble(job_id)

    monkeypatch.setattr(jobs, "_check_chunk", together)
    monkeypatch.setattr(jobs, "_assemble", counted)

    def run(pk):
        try:
            jobs.call_list_chunk_run(chunk_id=pk)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(pk,)) for pk in job.chunks.values_list("pk", flat=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job.refresh_from_db()
    assert assembled == [job.pk] and job.status == "done"
    rows = list(csv.reader(io.StringIO(jobs.result_file(job).read_text())))
    assert [r[0] for r in rows[1:]] == [f"Person {i}" for i in range(8)]


# --- a failed assembly, dispatch, claims and redelivery -------------------------------------------
def test_a_failed_assembly_is_retried_by_putting_the_parts_together_again(
    rep_client, blocked, django_capture_on_commit_callbacks, monkeypatch, settings
):
    submit(rep_client, listing(6, suppressed_every=4), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    real = jobs.shutil.copyfileobj

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobs.shutil, "copyfileobj", disk_full)
    job = run_all(job)
    assert job.status == "failed"
    assert job.error == (
        "The checked parts could not be put together: the server's disk is full. Retry to put "
        "them together again; the parts are kept."
    )
    page = rep_client.get(reverse("suppressions:call_list_job", args=[job.pk])).content.decode()
    assert "Retry failed parts" in page and "retrying puts them together again" in page
    monkeypatch.setattr(jobs.shutil, "copyfileobj", real)

    handed = []
    monkeypatch.setattr(tasks, "calllist_in_process", lambda: True)
    monkeypatch.setattr(
        jobs, "start_in_process", lambda ids, assemble=None: handed.append((ids, assemble))
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(
            reverse("suppressions:call_list_job_retry", args=[job.pk]), follow=True
        )
    assert "Putting the checked parts together again." in response.content.decode()
    assert handed == [([], [job.pk])]
    job.refresh_from_db()
    assert job.status == "running"
    jobs.call_list_job_assemble(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done"
    rows = list(csv.reader(io.StringIO(download(rep_client, job).decode())))
    assert [r[3] for r in rows[1:]] == ["yes" if i % 4 == 0 else "no" for i in range(6)]
    assert [p.name for p in files_under(settings.MEDIA_ROOT)] == [jobs.RESULT_NAME]


def test_a_part_lost_before_assembly_is_checked_again(
    rep_client, django_capture_on_commit_callbacks, monkeypatch, settings
):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    real = jobs._assemble
    monkeypatch.setattr(jobs, "_assemble", lambda job_id: None)
    job = run_all(job)
    first = job.chunks.get(index=0)
    (Path(settings.MEDIA_ROOT) / first.part_path).unlink()
    monkeypatch.setattr(jobs, "_assemble", real)
    jobs.call_list_job_assemble(job_id=job.pk)
    job.refresh_from_db()
    first.refresh_from_db()
    assert job.status == "failed" and "1 of 2 parts could not be checked" in job.error
    assert first.status == "failed" and "was lost" in first.error
    with django_capture_on_commit_callbacks(execute=False):
        jobs.call_list_job_retry(job=job)
    assert list(job.chunks.values_list("status", flat=True).order_by("index")) == [
        "queued",
        "done",
    ]
    assert run_all(job).status == "done"


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_that_fails_after_the_commit_keeps_the_job_and_offers_a_retry(
    rep_client, settings, monkeypatch
):
    def cannot_start(ids, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(jobs, "start_in_process", cannot_start)
    monkeypatch.setattr(tasks, "calllist_in_process", lambda: True)
    response = rep_client.post(URL, {"file": upload(listing(9))})  # committed for real
    job = CallListJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("suppressions:call_list_job", args=[job.pk])
    assert job.status == "failed"
    assert set(job.chunks.values_list("status", "error")) == {
        ("failed", "The background workers could not be reached.")
    }
    assert [p.name for p in files_under(settings.MEDIA_ROOT)] == [jobs.UPLOAD_NAME]
    page = rep_client.get(response["Location"]).content.decode()
    assert "Retry failed parts" in page

    started = []
    monkeypatch.setattr(jobs, "start_in_process", lambda ids, **kwargs: started.append(ids))
    rep_client.post(reverse("suppressions:call_list_job_retry", args=[job.pk]))
    assert started == [list(job.chunks.order_by("index").values_list("pk", flat=True))]
    assert run_all(job).status == "done"


def test_a_worker_taken_over_stops_and_cannot_end_the_chunk(
    rep_client, django_capture_on_commit_callbacks
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = CallListJob.objects.get()
        pk = job.chunks.get(index=0).pk
        assert jobs._claim(pk)
        first = CallListChunk.objects.get(pk=pk)  # the first worker's view: attempt 1
        assert not jobs._claim(pk)  # fresh: nobody else takes it
        clock.shift(datetime.timedelta(seconds=121))
        assert jobs.call_list_chunk_run(chunk_id=pk).status == "done"
        assert jobs._mine(first).update(heartbeat_at=timezone.now()) == 0
    ended = CallListChunk.objects.get(pk=pk)
    assert (ended.status, ended.attempts) == ("done", 2)


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_chunk_at_once_one_wins(rep, monkeypatch):
    """Under READ COMMITTED the second claim waits for the first's lock, then takes nothing."""
    monkeypatch.setattr(jobs, "_dispatch", lambda ids: None)
    text = listing(8).encode()
    job = jobs.call_list_job_create(
        upload=upload(text), layout=calllist.validate(upload(text), chunk_rows=4), owner=rep
    )
    pk = job.chunks.get(index=0).pk
    won: dict[str, bool] = {}
    claimed = threading.Event()

    def first():
        try:
            with transaction.atomic():  # holds the claim's locks until the other one waits
                won["first"] = jobs._claim(pk)
                claimed.set()
                with connection.cursor() as cursor:
                    for _ in range(500):
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                        )
                        if cursor.fetchone()[0]:
                            break
                        threading.Event().wait(0.01)
        finally:
            connection.close()

    def second():
        try:
            claimed.wait(timeout=10)
            won["second"] = jobs._claim(pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == {"first": True, "second": False}
    assert CallListChunk.objects.get(pk=pk).attempts == 1


def test_a_task_delivered_again_while_the_chunk_runs_comes_back_later(
    rep_client, django_capture_on_commit_callbacks, monkeypatch, settings
):
    """acks_late and reject_on_worker_lost deliver a killed worker's message again at once."""

    class Again(Exception):
        pass

    asked = []
    monkeypatch.setattr(
        tasks.calllist_chunk, "retry", lambda **kwargs: asked.append(kwargs) or Again()
    )
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = CallListJob.objects.get()
        pk = job.chunks.get(index=0).pk
        assert jobs._claim(pk)  # the worker that was killed
        with pytest.raises(Again):
            tasks.calllist_chunk.run(pk)
        assert asked == [{"countdown": settings.DEBRIEF_CALLLIST_STALE_SECONDS + 5}]
        clock.shift(datetime.timedelta(seconds=settings.DEBRIEF_CALLLIST_STALE_SECONDS + 5))
        assert tasks.calllist_chunk.run(pk) == "done"
        assert CallListChunk.objects.get(pk=pk).attempts == 2
        # Cancelled meanwhile: nothing to come back for.
        other = job.chunks.get(index=1).pk
        assert jobs._claim(other)
        jobs.call_list_job_cancel(job=job)
        assert tasks.calllist_chunk.run(other) == "running" and len(asked) == 1


def test_an_api_client_retries_the_failed_parts(
    client, django_capture_on_commit_callbacks, monkeypatch
):
    from accounts.tokens import api_token_create

    raw, other = api_token_create(name="Dialler")[1], api_token_create(name="Other")[1]
    with django_capture_on_commit_callbacks(execute=False):
        sent = client.generic(
            "POST",
            "/api/suppressions/lists",
            listing(6).encode(),
            content_type="text/csv",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )
    job = CallListJob.objects.get(pk=sent.json()["id"])
    retry = f"/api/suppressions/lists/{job.pk}/retry"
    early = client.post(retry, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert early.status_code == 409 and "No part of this list has failed" in early.json()["error"]
    monkeypatch.setattr(jobs, "_check_chunk", lambda *args: 1 / 0)
    run_all(job)
    result = client.get(
        f"/api/suppressions/lists/{job.pk}/result", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert result.status_code == 409 and f"POST to {retry}" in result.json()["error"]
    assert client.post(retry, HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert client.post(retry).status_code == 401
    monkeypatch.undo()
    monkeypatch.setattr(jobs, "sweep_if_due", lambda: False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = client.post(retry, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert again.status_code == 202 and again.json()["status"] == "running"
    assert len(callbacks) == 1
    assert run_all(job).status == "done"


# --- expiry on every read, the embedded default's sweep, deleted owners, orphans ---------------
def test_an_expired_file_is_never_served_even_before_the_sweep(
    rep_client, client, django_capture_on_commit_callbacks, settings
):
    from accounts.tokens import api_token_create

    raw = api_token_create(name="Dialler")[1]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks)
        job = run_all(CallListJob.objects.get())
        with django_capture_on_commit_callbacks(execute=False):
            sent = client.generic(
                "POST",
                "/api/suppressions/lists",
                listing(6).encode(),
                content_type="text/csv",
                HTTP_AUTHORIZATION=f"Bearer {raw}",
            )
        api_job = run_all(CallListJob.objects.get(pk=sent.json()["id"]))
        clock.shift(datetime.timedelta(hours=24))  # expires_at itself: no sweep has run
        url = reverse("suppressions:call_list_job_download", args=[job.pk])
        with django_capture_on_commit_callbacks(execute=True):
            response = rep_client.get(url)
        assert response.status_code == 410
        assert "The checked file has expired" in response.content.decode()
        page = rep_client.get(reverse("suppressions:call_list_job", args=[job.pk]))
        assert "Download the checked file" not in page.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            result = client.get(
                f"/api/suppressions/lists/{api_job.pk}/result", HTTP_AUTHORIZATION=f"Bearer {raw}"
            )
        assert result.status_code == 410 and "expired" in result.json()["error"]
        cancel = rep_client.post(
            reverse("suppressions:call_list_job_cancel", args=[job.pk]), follow=True
        )
        assert "This list has expired, so there is nothing to cancel" in (cancel.content.decode())
    assert set(CallListJob.objects.values_list("status", flat=True)) == {"expired"}
    assert files_under(settings.MEDIA_ROOT) == []


def test_the_embedded_default_sweeps_when_call_list_pages_are_opened(
    rep_client, django_capture_on_commit_callbacks, monkeypatch, settings
):
    monkeypatch.setattr(jobs, "sweep_if_due", _real_sweep_if_due)
    monkeypatch.setattr(jobs, "_last_sweep", {})
    monkeypatch.setattr(tasks, "calllist_in_process", lambda: True)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        submit(rep_client, listing(6), django_capture_on_commit_callbacks, name="old.csv")
        old = run_all(CallListJob.objects.get())
        clock.shift(datetime.timedelta(hours=23, minutes=58))
        submit(rep_client, listing(6), django_capture_on_commit_callbacks, name="new.csv")
        new = run_all(CallListJob.objects.get(file_name="new.csv"))
        page = reverse("suppressions:call_list_job", args=[new.pk])
        with django_capture_on_commit_callbacks(execute=True):
            rep_client.get(page)  # sweeps now: nothing expired yet
        clock.shift(datetime.timedelta(minutes=2))  # the old list expires
        with django_capture_on_commit_callbacks(execute=True):
            rep_client.get(page)  # swept a moment ago: not again
        assert old.result_path in [
            p.relative_to(settings.MEDIA_ROOT).as_posix() for p in files_under(settings.MEDIA_ROOT)
        ]
        clock.shift(jobs.SWEEP_EVERY)
        with django_capture_on_commit_callbacks(execute=True):
            rep_client.get(page)  # nobody opened the old list: the sweep deleted it
        old.refresh_from_db()
        new.refresh_from_db()
        assert (old.status, new.status) == ("expired", "done")
        assert [
            p.relative_to(settings.MEDIA_ROOT).as_posix() for p in files_under(settings.MEDIA_ROOT)
        ] == [new.result_path]
        # With workers, beat sweeps: a page does not.
        monkeypatch.setattr(tasks, "calllist_in_process", lambda: False)
        clock.shift(jobs.SWEEP_EVERY)
        assert jobs.sweep_if_due() is False


def test_deleting_a_person_deletes_their_call_lists_files(
    rep_client, rep, django_capture_on_commit_callbacks, settings
):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    run_all(CallListJob.objects.get())
    submit(rep_client, listing(9), django_capture_on_commit_callbacks)  # still queued
    assert len(files_under(settings.MEDIA_ROOT)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        rep.delete()
    assert not CallListJob.objects.exists() and files_under(settings.MEDIA_ROOT) == []


def test_the_sweep_deletes_folders_no_job_keeps_once_a_day_old(
    rep_client, django_capture_on_commit_callbacks, settings
):
    import os

    submit(rep_client, listing(6), django_capture_on_commit_callbacks)
    kept = run_all(CallListJob.objects.get())
    root = Path(settings.MEDIA_ROOT) / jobs.FOLDER
    orphan = root / "2020" / "01" / "died-before-its-commit"
    fresh = root / "2020" / "01" / "being-created"
    for folder in (orphan, fresh):
        folder.mkdir(parents=True)
        (folder / jobs.UPLOAD_NAME).write_text("email\r\nx@y.example\r\n")
    day_old = (timezone.now() - jobs.ORPHAN_AFTER - datetime.timedelta(minutes=1)).timestamp()
    for folder in (orphan, jobs.folder_of(kept)):
        os.utime(folder, (day_old, day_old))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.calllist_sweep()["orphans"] == 1
    assert not orphan.exists() and fresh.exists() and jobs.result_file(kept).exists()


def test_administrators_find_jobs_in_the_admin(
    rep_client, admin_user, client, django_capture_on_commit_callbacks
):
    submit(rep_client, listing(6), django_capture_on_commit_callbacks, name="autumn.csv")
    job = CallListJob.objects.get()
    client.force_login(admin_user)
    listing_page = client.get(reverse("admin:suppressions_calllistjob_changelist"))
    assert listing_page.status_code == 200 and "autumn.csv" in listing_page.content.decode()
    detail = client.get(reverse("admin:suppressions_calllistjob_change", args=[job.pk]))
    assert reverse("suppressions:call_list_job", args=[job.pk]) in detail.content.decode()


def checked_list_for(owner, media_root) -> CallListJob:
    """A checked job with its file on disk, made directly (the permission matrix's)."""
    folder = Path(media_root) / jobs.FOLDER / "matrix"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / jobs.RESULT_NAME).write_text("email,suppressed,reason,until,problem\r\n")
    return CallListJob.objects.create(
        owner=owner,
        file_name="matrix.csv",
        path=f"{jobs.FOLDER}/matrix/{jobs.UPLOAD_NAME}",
        sha256="0" * 64,
        size=1,
        encoding="utf-8",
        layout={"header": ["email"], "columns": {"email": 0}, "encoding": "utf-8-sig"},
        rows=0,
        status="done",
        result_path=f"{jobs.FOLDER}/matrix/{jobs.RESULT_NAME}",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )
