"""
The API for large call lists: the call-list page's jobs (suppressions.jobs) for machine clients,
with the same bearer tokens as the single check (suppressions.api).

- POST /api/suppressions/lists: a CSV body (text/csv) as the page takes it, up to
  DEBRIEF_CALLLIST_MAX_BYTES; validated before anything is stored (400 with the page's message),
  then 202 with the job's id and the address to poll. Always a job, however short the list.
- GET /api/suppressions/lists/{id}: its status, progress and, once checked, its counts and the
  address of the result.
- GET /api/suppressions/lists/{id}/result: the checked CSV (409 while it is being checked, 410
  once it expired or was cancelled).
- DELETE /api/suppressions/lists/{id}: cancel it.
- POST /api/suppressions/lists/{id}/retry: check a stopped list's failed parts again (202).

A token sees only its own lists: any other id answers 404, as a missing one does.
"""

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db.models import Sum
from django.http import FileResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from accounts.tokens import authenticate
from crm_site.middleware import takes_large_bodies
from suppressions import calllist, jobs, selectors
from suppressions.api_common import ERROR_SCHEMA, error, unauthorised
from suppressions.models import CallListChunkStatus, CallListJob, CallListJobStatus

READ_BLOCK = 1024 * 1024
MAX_ID = 2**63 - 1
CSV_TYPES = ("text/csv", "application/csv")


def _job_json(request, job: CallListJob) -> dict:
    done = (
        job.chunks.filter(status=CallListChunkStatus.DONE).aggregate(rows=Sum("rows"))["rows"]
        if job.status in jobs.UNDER_WAY
        else (job.rows if job.status == CallListJobStatus.DONE else 0)
    ) or 0
    url = request.build_absolute_uri(reverse("api_call_list", args=[job.pk]))
    result = None
    if job.status == CallListJobStatus.DONE:
        result = request.build_absolute_uri(reverse("api_call_list_result", args=[job.pk]))
    counts = None
    if job.counts:
        tally = calllist.Tally.merge([job.counts])
        counts = {
            "rows": tally.rows,
            "suppressed": sum(tally.kinds.values()),
            "by_reason": dict(tally.kinds),
            "problems": tally.problems,
        }
    return {
        "id": job.pk,
        "status": job.status,
        "rows": job.rows,
        "rows_done": done,
        "progress": round(100 * done / job.rows) if job.rows else 100,
        "counts": counts,
        "error": job.error or None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "expires_at": job.expires_at.isoformat(),
        "url": url,
        "result_url": result,
    }


def _refusal(request, token, length: int) -> JsonResponse | None:
    """Why a submission cannot be read, checked in this order; None when it can."""
    if request.method != "POST":
        return error(405, "Use POST.", Allow="POST")
    if token is None:
        return unauthorised()
    if not length:
        return error(400, "The file is empty.")
    if request.content_type not in CSV_TYPES:
        return error(415, "Send the call list as CSV: 'Content-Type: text/csv'.")
    limit = calllist.max_bytes()
    if length > limit:
        return error(413, f"The body is {length:,} bytes; send at most {limit:,} (split the list).")
    return None


def _body_limit(request) -> int | None:
    """
    A call list's size, for a POST of CSV with a valid token only (see takes_large_bodies):
    anyone else's large body is refused before it is read, as the API's other calls are.
    """
    if request.method != "POST" or request.content_type not in CSV_TYPES:
        return None
    if authenticate(request.headers.get("Authorization")) is None:
        return None
    return calllist.max_bytes()


def _too_large(request, length: int) -> JsonResponse:
    """A body over the limit, answered without reading it: what the view would have said."""
    token = authenticate(request.headers.get("Authorization"))
    return _refusal(request, token, length) or error(
        413, f"The body is {length:,} bytes; send at most {calllist.max_bytes():,}."
    )


@takes_large_bodies(_body_limit, _too_large)
@csrf_exempt  # token-authenticated, never cookie-authenticated
def lists(request):
    """Submit a call list to check in the background."""
    token = None
    if request.method == "POST":
        token = authenticate(request.headers.get("Authorization"))
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return error(400, "The Content-Length header is not a number.")
    refusal = _refusal(request, token, length)
    if refusal is not None:
        return refusal
    limit = calllist.max_bytes()
    upload = TemporaryUploadedFile("call-list.csv", "text/csv", 0, None)
    try:
        size = 0
        for block in iter(lambda: request.read(READ_BLOCK), b""):
            size += len(block)
            if size > limit:
                return error(413, f"The body is larger than {limit:,} bytes; split the list.")
            upload.write(block)
        upload.size = size
        upload.flush()
        try:
            layout = calllist.validate(upload)
            job = jobs.call_list_job_create(upload=upload, layout=layout, api_token=token)
        except calllist.CallListError as exc:
            return error(400, str(exc))
    finally:
        upload.close()
    response = JsonResponse(_job_json(request, job), status=202)
    response["Location"] = reverse("api_call_list", args=[job.pk])
    return response


def _job_of(token, job_id: int) -> CallListJob | None:
    if job_id > MAX_ID:
        return None
    return selectors.call_list_jobs_of_token(token).filter(pk=job_id).first()


def _job_for(request, job_id: int, *methods: str) -> CallListJob | JsonResponse:
    """The calling token's list `job_id`, or the answer that refuses the request."""
    if request.method not in methods:
        return error(405, f"Use {' or '.join(methods)}.", Allow=", ".join(methods))
    token = authenticate(request.headers.get("Authorization"))
    if token is None:
        return unauthorised()
    job = _job_of(token, job_id)
    if job is None:
        return error(404, "No call list of this token has that id.")
    return job


@csrf_exempt
def list_detail(request, job_id: int):
    """A submitted list's status (GET), or cancel it (DELETE)."""
    job = _job_for(request, job_id, "GET", "DELETE")
    if isinstance(job, JsonResponse):
        return job
    job = jobs.expire_if_due(job)
    jobs.sweep_if_due()
    if request.method == "DELETE":
        try:
            job = jobs.call_list_job_cancel(job=job)
        except ValidationError as exc:
            return error(409, " ".join(exc.messages))
    return JsonResponse(_job_json(request, job))


@csrf_exempt
def list_result(request, job_id: int):
    """The checked CSV of a submitted list."""
    job = _job_for(request, job_id, "GET")
    if isinstance(job, JsonResponse):
        return job
    job = jobs.expire_if_due(job)
    jobs.sweep_if_due()
    if job.status in (CallListJobStatus.EXPIRED, CallListJobStatus.CANCELLED):
        return error(
            410,
            "This list's checked file is gone: it "
            + ("expired and was deleted." if job.status == "expired" else "was cancelled.")
            + " Send the list again to check it again.",
        )
    if job.status == CallListJobStatus.FAILED:
        return error(
            409,
            f"This list's check stopped: {job.error or 'some parts failed.'} To check the "
            f"failed parts again, POST to {reverse('api_call_list_retry', args=[job.pk])}.",
        )
    if job.status != CallListJobStatus.DONE:
        return error(
            409,
            f"This list is not checked yet ({job.get_status_display().lower()}): poll its "
            "status until it is done.",
        )
    try:
        handle = open(jobs.result_file(job), "rb")  # noqa: SIM115 (FileResponse closes it)
    except FileNotFoundError:
        return error(410, "This list's checked file is gone. Send the list again.")
    response = FileResponse(handle, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="call-list-{job.pk}-checked.csv"'
    response["Cache-Control"] = "no-store"  # contacts' data: no cache on the way may keep it
    return response


@csrf_exempt
def list_retry(request, job_id: int):
    """Check a stopped list's failed parts again (or put its checked parts together again)."""
    job = _job_for(request, job_id, "POST")
    if isinstance(job, JsonResponse):
        return job
    try:
        job = jobs.call_list_job_retry(job=jobs.expire_if_due(job))
    except ValidationError as exc:
        return error(409, " ".join(exc.messages))
    return JsonResponse(_job_json(request, job), status=202)


# --- the OpenAPI document's paths (merged by suppressions.api._schema) --------------------------
# A list the check takes: a header naming a key column, then at least one row that is not
# blank; text only (no NUL byte, no quote left open: no quotes at all, to keep it simple).
_CSV_BODY = (
    r'^(?:email|phone|company_domain)(?:,[^\u0000"\r\n,]*)*\r?\n'
    r'[^\u0000"]*[^\s\u001c-\u001f\u0085\u0000",][^\u0000"]*$'
)
_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
_JOB = {
    "type": "object",
    "required": [
        "id",
        "status",
        "rows",
        "rows_done",
        "progress",
        "counts",
        "error",
        "created_at",
        "finished_at",
        "expires_at",
        "url",
        "result_url",
    ],
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": list(CallListJobStatus.values)},
        "rows": {"type": "integer", "minimum": 0},
        "rows_done": {"type": "integer", "minimum": 0},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "counts": {
            "type": ["object", "null"],
            "description": "What the check found, once it is done.",
            "properties": {
                "rows": {"type": "integer"},
                "suppressed": {"type": "integer"},
                "by_reason": {"type": "object", "additionalProperties": {"type": "integer"}},
                "problems": {"type": "integer"},
            },
        },
        "error": {"type": ["string", "null"]},
        "created_at": _DATE_TIME,
        "finished_at": _NULLABLE_DATE_TIME,
        "expires_at": {
            **_DATE_TIME,
            "description": "When the list's files are deleted.",
        },
        "url": {"type": "string"},
        "result_url": {"type": ["string", "null"]},
    },
}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    said = {
        400: "The file cannot be checked; the message says why.",
        401: "No or bad token.",
        404: "No list of this token has that id.",
        405: "Another method is needed here.",
        409: "Not possible in the list's current state; the message says why.",
        410: "The checked file was deleted (expired or cancelled).",
        413: "The body is larger than DEBRIEF_CALLLIST_MAX_BYTES.",
        415: "The body is not sent as text/csv.",
        500: "A fault on the server; nothing was changed.",
    }
    return {str(code): _json(said[code], ERROR_SCHEMA) for code in codes}


def schema_paths() -> dict:
    """This module's endpoints in the OpenAPI document."""
    job_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    return {
        "/api/suppressions/lists": {
            "post": {
                "summary": "Submit a call list (CSV) to check in the background",
                "description": "The same CSV as the call-list page takes: a header naming any "
                "of email, phone, company_domain (and optionally product), one contact a row. "
                "Poll the answer's url until its status is done, then fetch result_url.",
                "operationId": "submitCallList",
                "requestBody": {
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string", "pattern": _CSV_BODY}}},
                },
                "responses": {
                    "202": _json("The list is valid and queued.", _JOB),
                    **_errors(400, 401, 413, 415, 500),
                },
            }
        },
        "/api/suppressions/lists/{id}": {
            "parameters": [job_id],
            "get": {
                "summary": "A submitted call list's status and progress",
                "operationId": "getCallList",
                "responses": {
                    "200": _json("Where the check stands.", _JOB),
                    **_errors(401, 404, 500),
                },
            },
            "delete": {
                "summary": "Cancel a submitted call list and delete its files",
                "operationId": "cancelCallList",
                "responses": {
                    "200": _json("Cancelled (or cancelled already).", _JOB),
                    **_errors(401, 404, 409, 500),
                },
            },
        },
        "/api/suppressions/lists/{id}/retry": {
            "parameters": [job_id],
            "post": {
                "summary": "Check a stopped call list's failed parts again",
                "description": "The parts checked already are kept; only the failed ones (or "
                "the putting together, if only that failed) run again. Poll the list's url.",
                "operationId": "retryCallList",
                "responses": {
                    "202": _json("The failed parts are queued again.", _JOB),
                    **_errors(401, 404, 409, 500),
                },
            },
        },
        "/api/suppressions/lists/{id}/result": {
            "parameters": [job_id],
            "get": {
                "summary": "The checked call list",
                "description": "Every row in its order, the cells as sent (a cell a "
                "spreadsheet would run as a formula gets a leading apostrophe), with "
                "suppressed, reason, until and problem added.",
                "operationId": "getCallListResult",
                "responses": {
                    "200": {
                        "description": "The checked CSV.",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 404, 409, 410, 500),
                },
            },
        },
    }
