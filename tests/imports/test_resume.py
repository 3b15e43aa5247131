"""
An import whose worker died resumes when started again, and a run never uses mappings its
check did not see.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from imports import engine, services, tasks
from imports.models import HistoryImport, ImportStatus, MappingAction
from opportunities.models import Opportunity
from reflections.models import Outcome, Reason

from .conftest import create, salesforce_csv, sf_row, start


@pytest.fixture
def small_batches(settings):
    settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = 5
    settings.DEBRIEF_IMPORT_BATCH_ROWS = 4


def _checked(world, n=10):
    history_import = create(world, salesforce_csv([sf_row(i) for i in range(1, n + 1)]))
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "checked", checked.errors
    return checked


def _died_after_first_batch(world, monkeypatch, capture):
    """An import whose worker died (killed, no chance to say so) after its first batch."""
    checked = _checked(world)
    real = engine.write_batch
    calls = []

    def first_then_die(ctx, deals, *, actor_id):
        calls.append(len(deals))
        if len(calls) > 1:
            raise RuntimeError("worker killed")
        return real(ctx, deals, actor_id=actor_id)

    monkeypatch.setattr(engine, "write_batch", first_then_die)
    start(world, checked, capture)
    monkeypatch.setattr(engine, "write_batch", real)
    silent = timezone.now() - services.STALE_AFTER - datetime.timedelta(minutes=1)
    HistoryImport.objects.filter(pk=checked.pk).update(
        status=ImportStatus.RUNNING, errors=[], error_count=0, heartbeat_at=silent
    )
    checked.refresh_from_db()
    assert checked.rows_done == 4
    return checked


def test_an_import_gone_silent_starts_again_after_its_committed_rows(
    world, small_batches, monkeypatch, django_capture_on_commit_callbacks
):
    stalled = _died_after_first_batch(world, monkeypatch, django_capture_on_commit_callbacks)
    assert services.history_import_run_stalled(stalled)

    done = start(world, stalled, django_capture_on_commit_callbacks)

    assert done.status == ImportStatus.DONE
    assert (done.rows_done, done.deals_created) == (10, 10)
    assert Opportunity.objects.count() == 10


def test_an_import_that_answers_cannot_be_started_twice(
    world, small_batches, monkeypatch, django_capture_on_commit_callbacks
):
    stalled = _died_after_first_batch(world, monkeypatch, django_capture_on_commit_callbacks)
    HistoryImport.objects.filter(pk=stalled.pk).update(heartbeat_at=timezone.now())

    with pytest.raises(ValidationError, match="importing; it cannot start"):
        services.history_import_start(actor=world, history_import=stalled)


def test_the_page_of_an_import_gone_silent_offers_start_again(
    world, client, small_batches, monkeypatch, django_capture_on_commit_callbacks
):
    stalled = _died_after_first_batch(world, monkeypatch, django_capture_on_commit_callbacks)
    client.force_login(world)

    page = client.get(f"/admin/imports/historyimport/{stalled.pk}/change/")

    html = page.content.decode()
    assert "The import stopped answering (last heard at" in html
    assert "Start again resumes after the 4 rows already imported." in html
    assert 'value="Start again"' in html
    assert "hx-trigger" not in html  # nothing to poll: nobody is working on it


def test_a_redelivered_task_looks_again_once_a_silent_import_would_be_stale(
    world, small_batches, monkeypatch, django_capture_on_commit_callbacks
):
    stalled = _died_after_first_batch(world, monkeypatch, django_capture_on_commit_callbacks)
    HistoryImport.objects.filter(pk=stalled.pk).update(heartbeat_at=timezone.now())
    retried = []

    class Retry(Exception):
        pass

    def retry(**kwargs):
        retried.append(kwargs)
        return Retry()

    monkeypatch.setattr(tasks.run, "retry", retry)
    with pytest.raises(Retry):
        tasks.run(stalled.pk)

    assert retried[0]["countdown"] == services.STALE_AFTER.total_seconds()
    stalled.refresh_from_db()
    assert (stalled.status, stalled.rows_done) == (ImportStatus.RUNNING, 4)


def test_a_redelivered_task_resumes_an_import_gone_stale(
    world, small_batches, monkeypatch, django_capture_on_commit_callbacks
):
    stalled = _died_after_first_batch(world, monkeypatch, django_capture_on_commit_callbacks)

    assert tasks.run(stalled.pk) == ImportStatus.DONE
    assert Opportunity.objects.count() == 10


def test_a_mapping_changed_while_queued_stops_the_run_before_any_deal(
    world, client, django_capture_on_commit_callbacks
):
    checked = _checked(world, n=3)
    with django_capture_on_commit_callbacks(execute=False):
        services.history_import_start(actor=world, history_import=checked)
    budget = Reason.objects.get(outcome=Outcome.LOST, label="Budget")
    services.history_import_save_mappings(
        actor=world,
        history_import=checked,
        decisions=[
            services.Decision("reason", Outcome.LOST, "price", MappingAction.MAP, budget.pk)
        ],
    )

    ran = services.history_import_run(import_id=checked.pk)

    assert ran.status == ImportStatus.FAILED
    assert ran.errors[0]["message"].startswith("Something changed since the check")
    assert (ran.deals_created, ran.rows_done) == (0, 0)
    assert Opportunity.objects.count() == 0
    # Its page says so and offers to check the file again, which clears the way to start.
    client.force_login(world)
    page = client.get(f"/admin/imports/historyimport/{checked.pk}/change/").content.decode()
    assert "Something changed since the check" in page
    assert 'value="Check again"' in page
    client.post(f"/admin/imports/historyimport/{checked.pk}/check/")
    checked.refresh_from_db()
    assert checked.status == ImportStatus.CHECKED
