"""
The API for large call lists: submit a CSV (202), poll it, fetch the checked file, cancel it.
Jobs run in-process here (tests.suppressions.test_call_list_jobs.run_all).
"""

import csv
import datetime
import io
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from accounts.tokens import api_token_create
from suppressions import jobs
from suppressions.models import CallListJob
from tests.suppressions.test_call_list_jobs import listing, run_all

pytestmark = pytest.mark.django_db
LISTS = "/api/suppressions/lists"


@pytest.fixture
def token(db):
    return api_token_create(name="Dialler")[1]


@pytest.fixture
def other_token(db):
    return api_token_create(name="Someone else")[1]


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def send(client, body, token, capture, content_type="text/csv"):
    data = body.encode() if isinstance(body, str) else body
    with capture(execute=False):
        return client.generic("POST", LISTS, data, content_type=content_type, **auth(token))


def test_submit_poll_and_fetch(client, token, blocked, django_capture_on_commit_callbacks):
    response = send(
        client, listing(7, suppressed_every=3), token, django_capture_on_commit_callbacks
    )
    assert response.status_code == 202
    body = response.json()
    job = CallListJob.objects.get()
    assert body["id"] == job.pk and body["status"] == "queued" and body["rows"] == 7
    assert response["Location"] == f"{LISTS}/{job.pk}"
    assert body["url"].endswith(f"{LISTS}/{job.pk}") and body["result_url"] is None
    assert job.api_token is not None and job.owner is None

    early = client.get(f"{LISTS}/{job.pk}/result", **auth(token))
    assert early.status_code == 409 and "not checked yet" in early.json()["error"]

    run_all(job)
    status = client.get(f"{LISTS}/{job.pk}", **auth(token)).json()
    assert (status["status"], status["rows_done"], status["progress"]) == ("done", 7, 100)
    assert status["counts"] == {
        "rows": 7,
        "suppressed": 3,
        "by_reason": {"do_not_contact": 3},
        "problems": 0,
    }
    result = client.get(status["result_url"], **auth(token))
    assert result.status_code == 200 and result["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(result.streaming_content).decode())))
    assert [r[0] for r in rows[1:]] == [f"Person {i}" for i in range(7)]
    assert [r[3] for r in rows[1:]] == ["yes" if i % 3 == 0 else "no" for i in range(7)]


def test_even_a_short_list_is_a_job(client, token, django_capture_on_commit_callbacks):
    response = send(client, "email\nx@y.example\n", token, django_capture_on_commit_callbacks)
    assert response.status_code == 202 and response.json()["rows"] == 1


def test_another_tokens_list_answers_404(
    client, token, other_token, django_capture_on_commit_callbacks
):
    send(client, listing(6), token, django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    for method, path in (
        ("GET", f"{LISTS}/{job.pk}"),
        ("GET", f"{LISTS}/{job.pk}/result"),
        ("DELETE", f"{LISTS}/{job.pk}"),
        ("GET", f"{LISTS}/{job.pk + 1}"),
        ("GET", f"{LISTS}/{2**64}"),
    ):
        response = client.generic(method, path, **auth(other_token))
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "No call list of this token has that id."}
    job.refresh_from_db()
    assert job.status == "done"


def test_no_token_is_401(client, django_capture_on_commit_callbacks):
    response = send(client, listing(6), "dbf_nope_nope", django_capture_on_commit_callbacks)
    assert response.status_code == 401 and response["WWW-Authenticate"]
    assert not CallListJob.objects.exists()


def test_cancel_then_the_result_is_gone(
    client, token, settings, django_capture_on_commit_callbacks
):
    send(client, listing(9), token, django_capture_on_commit_callbacks)
    job = CallListJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{LISTS}/{job.pk}", **auth(token))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.csv"))
    gone = client.get(f"{LISTS}/{job.pk}/result", **auth(token))
    assert gone.status_code == 410 and "cancelled" in gone.json()["error"]
    again = client.delete(f"{LISTS}/{job.pk}", **auth(token))
    assert again.status_code == 200


def test_a_checked_list_cannot_be_cancelled(client, token, django_capture_on_commit_callbacks):
    send(client, listing(6), token, django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    response = client.delete(f"{LISTS}/{job.pk}", **auth(token))
    assert response.status_code == 409 and "checked already" in response.json()["error"]


def test_an_expired_result_answers_410(client, token, django_capture_on_commit_callbacks):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        send(client, listing(6), token, django_capture_on_commit_callbacks)
        job = run_all(CallListJob.objects.get())
        clock.shift(datetime.timedelta(hours=24, seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            jobs.call_list_jobs_sweep()
    response = client.get(f"{LISTS}/{job.pk}/result", **auth(token))
    assert response.status_code == 410 and "expired" in response.json()["error"]
    assert client.get(f"{LISTS}/{job.pk}", **auth(token)).json()["status"] == "expired"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "The file is empty."),
        (b"name,city\nDana,Leeds\n", "No usable column"),
        (b"\x00\x01\x02binary" * 100, "binary data"),
        (b"email\n\x81\x8d\x8f\n", "neither UTF-8, UTF-16 nor Windows-1252"),
        (
            ("email," + ",".join(f"c{i}" for i in range(9_999)) + "\nx@y.example\n").encode(),
            "The header has 10,000 columns",
        ),
        (b"email\n", "no rows under it"),
    ],
    ids=["empty", "no-usable-column", "binary", "not-text", "10000-columns", "header-only"],
)
def test_bad_lists_answer_400_and_leave_nothing(
    client, token, settings, django_capture_on_commit_callbacks, body, message
):
    response = send(client, body, token, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not CallListJob.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_a_list_over_the_limit_answers_413_and_leaves_nothing(
    client, token, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 1024
    response = send(client, listing(100), token, django_capture_on_commit_callbacks)
    assert response.status_code == 413 and "send at most 1,024" in response.json()["error"]
    assert not CallListJob.objects.exists()


def test_only_csv_is_taken(client, token, django_capture_on_commit_callbacks):
    response = send(
        client, '{"contacts": []}', token, django_capture_on_commit_callbacks, "application/json"
    )
    assert response.status_code == 415 and "text/csv" in response.json()["error"]


def test_wrong_methods_answer_405_in_json(client, token):
    assert client.get(LISTS, **auth(token)).status_code == 405
    response = client.post(f"{LISTS}/1/result", **auth(token))
    assert response.status_code == 405 and response["Allow"] == "GET"
