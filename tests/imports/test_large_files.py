"""
Large files: the file is read once per change (upload, columns), not per page, and a file of
more than DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS rows is checked by a job whose progress the
check page polls. While it runs, nothing the check reads can change and the import cannot start;
a check whose worker went silent can be run again.
"""

import csv
import datetime
import io
from unittest import mock

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.db.models.fields.files import FieldFile
from django.urls import reverse
from django.utils import timezone

from imports import engine, services
from imports.models import HistoryImport, ImportStatus, MappingAction, MappingKind, ValueMapping
from reflections.models import Outcome, Reason

from .conftest import SF_HEADER, create, salesforce_csv, sf_row

SMALL_LIMIT = 5  # rows checked in the request; more go to the job
BATCH = 4


def url(name: str, history_import: HistoryImport) -> str:
    return reverse(f"admin:imports_historyimport_{name}", args=[history_import.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def large(settings):
    """Files of more than 5 rows are large here; jobs check them 4 rows at a time."""
    settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = SMALL_LIMIT
    settings.DEBRIEF_IMPORT_BATCH_ROWS = BATCH


def no_file_reads():
    """Fails the test if anything opens or reads a stored file."""
    return mock.patch.multiple(
        "imports.engine", read_bytes=mock.DEFAULT, read_text=mock.DEFAULT
    ), mock.patch.object(FieldFile, "open", side_effect=AssertionError("opened the file"))


def twelve_rows() -> str:
    """12 closed deals: two texts to map, one bad amount, one duplicate id, one open deal."""
    rows = [sf_row(n) for n in range(1, 13)]
    rows[2]["Win/Loss Reason"] = "Too pricey"
    rows[3]["Stage"] = "Closed Won"
    rows[3]["Win/Loss Reason"] = "Great team"
    rows[5]["Amount"] = "12.5x"  # line 7
    rows[8]["Opportunity ID"] = rows[1]["Opportunity ID"]  # line 10 repeats line 3
    rows[10]["Stage"] = "Prospecting"  # open: left out
    return salesforce_csv(rows)


def twelve_good_rows() -> str:
    rows = [sf_row(n) for n in range(1, 13)]
    rows[2]["Win/Loss Reason"] = "Too pricey"
    rows[10]["Stage"] = "Prospecting"
    return salesforce_csv(rows)


def map_too_pricey(admin, history_import) -> None:
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    services.history_import_save_mappings(
        actor=admin,
        history_import=history_import,
        decisions=[
            services.Decision(
                MappingKind.REASON, Outcome.LOST, "too pricey", MappingAction.MAP, price.pk
            )
        ],
    )


def queue_check(admin, history_import, capture) -> HistoryImport:
    with capture(execute=False) as callbacks:
        queued = services.history_import_check_queue(actor=admin, history_import=history_import)
    assert len(callbacks) == 1  # imports.tasks.check, after the commit
    assert queued.status == ImportStatus.CHECKING
    return queued


RESULT_FIELDS = (
    "status",
    "errors",
    "error_count",
    "deals_created",
    "deals_existing",
    "rows_skipped",
    "companies_created",
    "contacts_created",
    "suppressions_derived",
)


def result(history_import: HistoryImport) -> dict:
    return {name: getattr(history_import, name) for name in RESULT_FIELDS}


# --- Read once per change ------------------------------------------------------------------------
def test_upload_stores_the_files_sha256_and_its_texts_with_counts(world):
    text = twelve_rows()
    history_import = create(world, text)
    assert history_import.file_sha256 == engine.summarise(text.encode(), text, {})[0]
    stored = {
        (t["kind"], t["outcome"], t["key"]): (t["text"], t["count"]) for t in history_import.texts
    }
    counted = {
        (t.kind, t.outcome, t.key): (t.text, t.count) for t in engine.count_texts(history_import)
    }
    assert stored == counted
    assert stored[("reason", Outcome.LOST, "too pricey")] == ("Too pricey", 1)
    assert stored[("reason", Outcome.LOST, "price")] == ("Price", 9)
    assert stored[("product", "", "analytics suite")] == ("Analytics Suite", 11)


def test_changing_the_columns_reads_the_texts_again(world):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*SF_HEADER, "Description"])
    writer.writeheader()
    writer.writerows([sf_row(1, Description="Budget"), sf_row(2, Description="Budget ")])
    history_import = create(world, out.getvalue())
    assert ("reason", Outcome.LOST, "price") in engine.stored_keys(history_import)
    changed = services.history_import_set_columns(
        history_import=history_import, columns={**history_import.columns, "reason": "Description"}
    )
    assert engine.stored_keys(changed) == {
        ("reason", Outcome.LOST, "budget"),
        ("product", "", "analytics suite"),
    }
    changed.refresh_from_db()
    assert {t["key"]: t["count"] for t in changed.texts} == {"budget": 2, "analytics suite": 2}


def test_values_screen_reads_the_file_zero_times_after_upload(
    admin_client_, world, django_assert_num_queries
):
    history_import = _uploaded(world)
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    engine_patch, open_patch = no_file_reads()
    with engine_patch as reads, open_patch as opened:
        with django_assert_num_queries(8):
            response = admin_client_.get(url("values", history_import))
        assert response.status_code == 200
        assert "Too pricey" in response.content.decode()
        form = response.context["form"]
        data = {name: form[name].value() or str(price.pk) for name in form.fields}
        saved = admin_client_.post(url("values", history_import), {**data, "_save": "Save"})
        assert saved.status_code == 302
        admin_client_.get(saved["Location"])
    assert not reads["read_bytes"].called
    assert not reads["read_text"].called
    assert not opened.called


def _uploaded(admin) -> HistoryImport:
    return create(admin, twelve_good_rows())


def test_check_page_reads_the_file_zero_times_and_pins_its_queries(
    admin_client_, world, django_assert_num_queries
):
    history_import = _uploaded(world)
    map_too_pricey(world, history_import)
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == ImportStatus.CHECKED
    engine_patch, open_patch = no_file_reads()
    with engine_patch as reads, open_patch as opened, django_assert_num_queries(8):
        response = admin_client_.get(url("check", checked))
    assert not reads["read_bytes"].called
    assert not reads["read_text"].called
    assert not opened.called
    assert response.status_code == 200
    assert response.context["current"] is True
    assert url("start", checked) in response.content.decode()


def test_the_stored_fingerprint_keeps_its_meaning(world):
    history_import = _uploaded(world)
    map_too_pricey(world, history_import)
    checked = services.history_import_check(history_import=history_import)
    assert services.history_import_check_is_current(checked)
    # A decision on one of the file's texts changes it...
    timing = Reason.objects.get(outcome=Outcome.LOST, label="Timing")
    services.history_import_save_mappings(
        actor=world,
        history_import=checked,
        decisions=[
            services.Decision(
                MappingKind.REASON, Outcome.LOST, "too pricey", MappingAction.MAP, timing.pk
            )
        ],
    )
    checked.refresh_from_db()
    assert not services.history_import_check_is_current(checked)
    map_too_pricey(world, checked)
    assert services.history_import_check_is_current(checked)
    # ... a decision on a text the file does not use does not.
    services.history_import_save_mappings(
        actor=world,
        history_import=checked,
        decisions=[services.Decision(MappingKind.REASON, Outcome.LOST, "aliens", "unknown")],
    )
    assert services.history_import_check_is_current(checked)
    # Another file's bytes, options or columns do.
    for change in ({"file_sha256": "0" * 64}, {"options": {"date_format": "mdy"}}):
        other = HistoryImport.objects.get(pk=checked.pk)
        for name, value in change.items():
            setattr(other, name, value)
        assert not services.history_import_check_is_current(other)
    # And so do the defaults: a start after such a change is refused.
    HistoryImport.objects.filter(pk=checked.pk).update(default_currency="EUR")
    with pytest.raises(ValidationError, match="Something changed"):
        services.history_import_start(actor=world, history_import=checked)


# --- The check job -------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [twelve_rows, twelve_good_rows])
def test_a_large_files_check_runs_as_a_job_with_the_same_result_as_in_the_request(
    world, large, django_capture_on_commit_callbacks, monkeypatch, content
):
    text = content()
    in_request = create(world, text)
    map_too_pricey(world, in_request)
    unknown = services.Decision(MappingKind.REASON, Outcome.WON, "great team", "unknown")
    services.history_import_save_mappings(
        actor=world, history_import=in_request, decisions=[unknown]
    )
    expected = services.history_import_check(history_import=in_request)

    as_job = create(world, text)
    assert as_job.rows_total == 12 > SMALL_LIMIT
    queued = queue_check(world, as_job, django_capture_on_commit_callbacks)
    assert queued.checked_rows == 0

    seen = []
    check_rows = engine.check_rows

    def spy(ctx, batch):
        seen.append(HistoryImport.objects.get(pk=as_job.pk).checked_rows)
        return check_rows(ctx, batch)

    monkeypatch.setattr(engine, "check_rows", spy)
    done = services.history_import_check_run(import_id=as_job.pk)

    assert seen == [0, 4, 8]  # progress recorded after each batch of 4
    assert done.checked_rows == 12
    assert done.heartbeat_at is not None
    assert result(done) == result(expected)
    assert done.status == (ImportStatus.INVALID if content is twelve_rows else ImportStatus.CHECKED)
    if done.status == ImportStatus.CHECKED:
        assert done.checked_fingerprint == expected.checked_fingerprint
        assert services.history_import_check_is_current(done)
    else:
        assert done.checked_fingerprint == ""
        assert {(e["row"], e["column"]) for e in done.errors} == {
            (7, "Amount"),
            (10, "Opportunity ID"),
        }


def test_a_small_file_is_still_checked_in_the_request(
    world, large, django_capture_on_commit_callbacks
):
    history_import = create(world, salesforce_csv([sf_row(n) for n in range(1, 6)]))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        checked = services.history_import_check_queue(actor=world, history_import=history_import)
    assert callbacks == []
    assert checked.status == ImportStatus.CHECKED


def test_save_and_check_of_a_large_file_shows_the_jobs_progress_then_its_result(
    admin_client_, world, large, django_capture_on_commit_callbacks, embedded_default
):
    history_import = create(world, twelve_good_rows())
    page = admin_client_.get(url("values", history_import))
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    data = {
        name: page.context["form"][name].value() or str(price.pk)
        for name in page.context["form"].fields
    }
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client_.post(
            url("values", history_import), {**data, "_check": "Save and check"}
        )
    assert response["Location"] == url("check", history_import)
    assert len(callbacks) == 1
    history_import.refresh_from_db()
    assert history_import.status == ImportStatus.CHECKING

    # While it runs: the progress bar, polled by htmx on the check page.
    HistoryImport.objects.filter(pk=history_import.pk).update(checked_rows=8)
    page = admin_client_.get(url("check", history_import))
    html = page.content.decode()
    assert f'hx-get="{url("check", history_import)}"' in html
    assert 'hx-trigger="every 1s"' in html
    assert '<progress id="import-bar" max="12" value="8">' in html
    assert "Checking: 8 of 12 rows" in html
    assert url("start", history_import) not in html
    fragment = admin_client_.get(url("check", history_import), headers={"HX-Request": "true"})
    assert fragment.content.decode().lstrip().startswith('<div id="import-progress"')
    assert "<html" not in fragment.content.decode()

    # The job (eager in the embedded default) ends it; the next poll reloads the page.
    callbacks[0]()
    history_import.refresh_from_db()
    assert history_import.status == ImportStatus.CHECKED
    assert history_import.checked_rows == 12
    fragment = admin_client_.get(url("check", history_import), headers={"HX-Request": "true"})
    assert fragment["HX-Refresh"] == "true"
    page = admin_client_.get(url("check", history_import))
    assert 'value="Import 11 deals"' in page.content.decode()


def test_check_progress_fragment_query_count(
    admin_client_, world, large, django_capture_on_commit_callbacks, django_assert_num_queries
):
    checking = queue_check(
        world, create(world, twelve_good_rows()), django_capture_on_commit_callbacks
    )
    with django_assert_num_queries(3):
        response = admin_client_.get(url("check", checking), headers={"HX-Request": "true"})
    assert "Checking: 0 of 12 rows" in response.content.decode()


# --- While a check runs --------------------------------------------------------------------------
@pytest.fixture
def checking(world, large, django_capture_on_commit_callbacks):
    history_import = create(world, twelve_good_rows())
    return queue_check(world, history_import, django_capture_on_commit_callbacks)


def test_mappings_and_columns_are_refused_while_checking(world, checking):
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    with pytest.raises(ValidationError, match="being checked right now"):
        services.history_import_save_mappings(
            actor=world,
            history_import=checking,
            decisions=[
                services.Decision(
                    MappingKind.REASON, Outcome.LOST, "too pricey", MappingAction.MAP, price.pk
                )
            ],
        )
    with pytest.raises(ValidationError, match="being checked right now"):
        services.history_import_set_columns(history_import=checking, columns=checking.columns)
    assert not ValueMapping.objects.exists()


def test_the_values_and_columns_pages_send_back_to_the_check_while_it_runs(admin_client_, checking):
    for name in ("values", "columns"):
        response = admin_client_.get(url(name, checking))
        assert response.status_code == 302
        assert response["Location"] == url("check", checking)
        assert "being checked right now" in messages_of(response)[0]
    # The import's own page leads to the check too.
    assert admin_client_.get(url("change", checking))["Location"] == url("check", checking)


def test_start_during_a_check_is_refused_with_a_clear_message(
    admin_client_, checking, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client_.post(url("start", checking))
    assert response.status_code == 302
    assert response["Location"] == url("check", checking)
    assert "still being checked" in messages_of(response)[0]
    assert callbacks == []
    checking.refresh_from_db()
    assert checking.status == ImportStatus.CHECKING


def test_a_second_check_is_refused_while_one_runs(
    admin_client_, checking, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client_.post(url("check", checking))
    assert response["Location"] == url("check", checking)
    assert "being checked already" in messages_of(response)[0]
    assert callbacks == []


def test_a_stale_check_can_be_checked_again(
    admin_client_, world, checking, django_capture_on_commit_callbacks
):
    # The worker died after 8 rows; nothing was heard for longer than STALE_AFTER.
    silent_since = timezone.now() - services.STALE_AFTER - datetime.timedelta(minutes=1)
    HistoryImport.objects.filter(pk=checking.pk).update(checked_rows=8, heartbeat_at=silent_since)
    page = admin_client_.get(url("check", checking))
    text = page.content.decode()
    assert "stopped answering after 8 of 12 rows" in text
    assert 'value="Check again"' in text
    assert "hx-trigger" not in text
    # Its pages open again, and the check is queued once more.
    assert admin_client_.get(url("values", checking)).status_code == 200
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client_.post(url("check", checking))
    assert len(callbacks) == 1
    checking.refresh_from_db()
    assert checking.status == ImportStatus.CHECKING
    assert checking.checked_rows == 0
    assert checking.heartbeat_at > silent_since
    done = services.history_import_check_run(import_id=checking.pk)
    assert done.status == ImportStatus.INVALID  # "Too pricey" is not mapped
    assert done.error_count == 1


def test_a_live_check_is_not_taken_over(world, checking):
    with pytest.raises(ValidationError, match="being checked already"):
        services.history_import_check_queue(actor=world, history_import=checking)


def test_a_check_cancelled_while_it_runs_ends_without_a_result(world, checking):
    services.history_import_cancel(actor=world, history_import=checking)
    done = services.history_import_check_run(import_id=checking.pk)
    assert done.status == ImportStatus.CANCELLED
    assert done.checked_at is None
    assert done.checked_rows == 0


def test_a_check_job_that_fails_says_so_and_can_be_checked_again(
    admin_client_, world, checking, monkeypatch
):
    def broken(ctx, batch):
        raise KeyError("boom")

    monkeypatch.setattr(engine, "check_rows", broken)
    done = services.history_import_check_run(import_id=checking.pk)
    assert done.status == ImportStatus.INVALID
    assert done.checked_fingerprint == ""
    assert "The check stopped at an unexpected error (KeyError)" in done.errors[0]["message"]
    page = admin_client_.get(url("check", done)).content.decode()
    assert "Row None" not in page
    assert "unexpected error (KeyError)" in page
    assert 'value="Check again"' in page
