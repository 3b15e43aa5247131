"""
The limits that keep a call list from filling memory or disk: a row's length and width (refused
with its number before it is built, in the request and in the worker), the chunks' byte bound
(blank lines included), and the body sizes the request-size middleware lets through to the page
and the API (the page's own message, with and without htmx; only a valid token's CSV is large).
"""

import codecs
import tracemalloc
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import multipartparser
from django.urls import reverse

from accounts.tokens import api_token_create
from suppressions import calllist, jobs
from suppressions.models import CallListJob
from tests.suppressions.test_call_list import upload
from tests.suppressions.test_call_list_jobs import files_under, listing, run_all, submit

pytestmark = pytest.mark.django_db
URL = reverse("suppressions:call_list_check")
LISTS = "/api/suppressions/lists"
MB = 1024 * 1024


@pytest.fixture
def token(db):
    return api_token_create(name="Dialler")[1]


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def refused(data: bytes) -> str:
    with pytest.raises(calllist.CallListError) as refusal:
        calllist.validate(SimpleUploadedFile("list.csv", data))
    return str(refusal.value)


# --- 1. a row is refused by its length or width before it is built --------------------------
def test_a_9_mb_row_is_refused_by_number_without_building_it():
    data = b"email,name\n" + b"ab," * (3 * MB) + b"ab\n"
    tracemalloc.start()
    try:
        message = refused(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.startswith("Row 2 is longer than 64.0 KB")
    assert "every quote in it is closed" in message
    # Building that row took 213 MB; reading it a piece at a time holds a few pieces.
    assert peak < 2 * MB, peak


def test_a_quote_never_closed_ends_at_the_record_limit_with_its_row():
    data = b"email,name\n" + b"a@x.example,Ann\n" * 3 + b'b@x.example,"Bob\n' + b"c,d\n" * 30_000
    assert refused(data).startswith("Row 5 is longer than 64.0 KB")


@pytest.mark.parametrize(
    "encode",
    [lambda text: text.encode(), lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")],
    ids=["utf8", "utf16"],
)
def test_a_row_of_more_values_than_any_header_takes_is_refused(settings, encode):
    settings.DEBRIEF_CALLLIST_MAX_COLUMNS = 50
    text = "email,name\na@x.example,Ann\n" + "v," * 50 + "v\n"
    assert refused(encode(text)) == (
        "Row 3 has 51 values; at most 50 are read. Check that it is a contact's row (a value "
        "with commas in it needs quotes) and upload the file again."
    )


def test_a_few_extra_values_are_still_a_rows_problem_not_a_refusal(settings):
    settings.DEBRIEF_CALLLIST_MAX_COLUMNS = 50
    layout = calllist.validate(upload("email,name\n" + "a@x.example," + "v," * 48 + "v\n"))
    assert layout.rows == 1


def test_a_wide_header_without_a_key_column_is_told_its_width_first():
    header = ",".join(f"c{i}" for i in range(10_000))
    assert refused(f"{header}\nx\n".encode()).startswith(
        "The header has 10,000 columns; at most 1,000 are read."
    )


def test_the_page_names_the_long_row(rep_client):
    text = "email,name\na@x.example,Ann\nb@x.example," + "x" * (100 * 1024) + "\n"
    response = rep_client.post(URL, {"file": upload(text)})
    assert response.status_code == 400
    assert "Row 3 is longer than 64.0 KB" in response.content.decode()


def test_a_worker_reads_a_chunk_under_the_same_limits(settings):
    settings.DEBRIEF_CALLLIST_MAX_COLUMNS = 10
    layout = calllist.validate(upload("email\na@x.example\n"))
    wide = b"a," * 10 + b"a\r\n"
    with pytest.raises(calllist.CallListError, match="Row 7 has 11 values"):
        list(calllist.chunk_records(b"b@x.example\r\n" + wide, layout, first_row=6))
    long = b"x" * (70 * 1024) + b"\r\n"
    with pytest.raises(calllist.CallListError, match="Row 2 is longer than 64.0 KB"):
        list(calllist.chunk_records(long, layout))


# --- 10. blank lines count towards a chunk's bytes -------------------------------------------
def test_blank_lines_count_towards_a_chunks_bytes(monkeypatch, settings):
    monkeypatch.setattr(calllist, "CHUNK_BYTES", 4096)
    blanks = "\r\n" * 10_000  # 20 KB: five chunks' worth
    text = "email\r\n" + blanks + "a@x.example\r\n" + blanks + "b@x.example\r\n" + blanks
    layout = calllist.validate(upload(text), chunk_rows=1000)
    # Blank lines before a chunk's first row are left out of it; after it, they end it at the
    # bound (within one line).
    assert [(c.first_row, c.rows) for c in layout.chunks] == [(10_002, 1), (20_003, 1)]
    assert all(c.end - c.start <= 4096 + 2 for c in layout.chunks)
    data = text.encode()
    assert [data[c.start : c.end].strip() for c in layout.chunks] == [
        b"a@x.example",
        b"b@x.example",
    ]


def test_a_job_of_blank_separated_rows_numbers_them_as_the_file_does(
    rep_client, blocked, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.DEBRIEF_CALLLIST_INLINE_ROWS = 1
    settings.DEBRIEF_CALLLIST_CHUNK_ROWS = 1000
    monkeypatch.setattr(jobs, "_worker_lookups", {"job": None, "lookups": None})
    monkeypatch.setattr(calllist, "CHUNK_BYTES", 1024)
    blanks = "\n" * 2000
    text = f"email,name\n{blanks}dana@brightwater.example,Dana{blanks}\nb@x.example,Bo,extra\n"
    submit(rep_client, text, django_capture_on_commit_callbacks)
    job = run_all(CallListJob.objects.get())
    assert job.status == "done" and job.rows == 2
    assert job.chunks.count() == 2
    assert "Row 4,003 has 3 values" in job.counts["listed"][0]


# --- 2. an upload over the limit gets the page's message, before anything reads it ------------
@pytest.fixture
def unread():
    """Fails the test if anything parses a multipart body or reads a request's body."""
    with (
        mock.patch.object(multipartparser.MultiPartParser, "parse") as parse,
        mock.patch("django.http.request.HttpRequest.read") as read,
    ):
        yield parse, read
    parse.assert_not_called()
    read.assert_not_called()


def over_the_page_limit() -> bytes:
    # Over the size every page takes (DEBRIEF_MAX_REQUEST_BYTES), so the middleware answers.
    return b"email\n" + b"a@x.example\n" * (4 * MB // 12)


def test_a_file_over_the_limit_gets_the_page_with_its_message(rep_client, settings, unread):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 2048
    response = rep_client.post(URL, {"file": upload(over_the_page_limit())})
    assert response.status_code == 413
    page = response.content.decode()
    assert "The file is larger than 2.0 KB. Split it and check each part." in page
    assert 'id="call-list-form"' in page and "<h1>Check a call list</h1>" in page
    assert not CallListJob.objects.exists() and files_under(settings.MEDIA_ROOT) == []


def test_htmx_swaps_the_form_with_the_message_in(rep_client, settings, unread):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 2048
    response = rep_client.post(
        URL + "?summary=1", {"file": upload(over_the_page_limit())}, HTTP_HX_REQUEST="true"
    )
    # 422 is the status the page's htmx swaps (base.html's responseHandling).
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#call-list-check"
    fragment = response.content.decode()
    assert "The file is larger than 2.0 KB" in fragment and "<h1>" not in fragment


def test_a_file_over_the_call_lists_own_limit_is_refused_at_the_edge(rep_client, settings):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 4 * MB
    with mock.patch.object(multipartparser.MultiPartParser, "parse") as parse:
        response = rep_client.post(
            URL,
            data=b"",
            content_type="multipart/form-data; boundary=x",
            CONTENT_LENGTH=str(200 * MB),
        )
    assert response.status_code == 413 and "The file is larger than 4.0 MB" in (
        response.content.decode()
    )
    parse.assert_not_called()


def test_a_large_upload_without_a_session_is_refused_unread(client, unread):
    response = client.post(URL, {"file": upload(over_the_page_limit())})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


# --- 11. only a valid token's CSV gets the large limit on the API -----------------------------
def test_a_large_body_without_a_token_is_refused_unread(client, unread):
    body = {"file": SimpleUploadedFile("a.csv", b"x" * (6 * MB))}
    response = client.post(LISTS, body)
    assert response.status_code == 401 and "valid API token" in response.json()["error"]
    csv = client.generic("POST", LISTS, b"email\n" + b"x" * (6 * MB), content_type="text/csv")
    assert csv.status_code == 401


def test_a_token_may_send_a_large_list_only_as_csv(client, token, unread, settings):
    body = {"file": SimpleUploadedFile("a.csv", b"x" * (6 * MB))}
    assert client.post(LISTS, body, **auth(token)).status_code == 415
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 5 * MB
    response = client.generic(
        "POST", LISTS, b"email\n" + b"x" * (6 * MB), content_type="text/csv", **auth(token)
    )
    assert response.status_code == 413 and "send at most 5,242,880" in response.json()["error"]


def test_the_lists_other_addresses_take_only_the_apis_size(client, token, unread):
    response = client.generic(
        "DELETE", f"{LISTS}/1", b"x" * (6 * MB), content_type="text/csv", **auth(token)
    )
    assert response.status_code == 413 and "at most 3 MB" in response.json()["error"]


def test_a_tokens_large_list_is_taken(client, token, django_capture_on_commit_callbacks):
    text = listing(200_000)
    assert len(text) > 4 * MB
    with django_capture_on_commit_callbacks(execute=False):
        response = client.generic("POST", LISTS, text, content_type="text/csv", **auth(token))
    assert response.status_code == 202 and response.json()["rows"] == 200_000


# --- minor: the checked file's name and the API result's caching -----------------------------
@pytest.mark.parametrize(
    "name, header",
    [
        ("list.csv", 'attachment; filename="list-checked.csv"'),
        (
            "Zoë's list.csv",
            'attachment; filename="Zoes list-checked.csv"; '
            "filename*=utf-8''Zo%C3%ABs%20list-checked.csv",
        ),
        (
            "Список.csv",
            'attachment; filename="call-list-checked.csv"; '
            "filename*=utf-8''%D0%A1%D0%BF%D0%B8%D1%81%D0%BE%D0%BA-checked.csv",
        ),
    ],
    ids=["ascii", "latin", "cyrillic"],
)
def test_the_checked_files_name_survives_in_every_client(rep_client, blocked, name, header):
    response = rep_client.post(URL, {"file": upload("email\na@x.example\n", name)})
    assert response.status_code == 200
    assert response["Content-Disposition"] == header
    response["Content-Disposition"].encode("latin-1")  # a header value Django sends as is


def test_the_apis_checked_file_is_not_cached(
    client, token, blocked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        submitted = client.generic(
            "POST", LISTS, listing(3), content_type="text/csv", **auth(token)
        )
    job = run_all(CallListJob.objects.get(pk=submitted.json()["id"]))
    response = client.get(f"{LISTS}/{job.pk}/result", **auth(token))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
