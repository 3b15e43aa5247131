"""Uploaded exports hold customers' names and e-mails: an import left waiting is cancelled and
its file deleted after DEBRIEF_IMPORT_KEEP_DAYS (imports.expire_uploads, nightly)."""

import datetime
import os

import time_machine
from django.utils import timezone

from imports import services, tasks
from imports.models import HistoryImport, ImportStatus
from insights import schedules
from opportunities.models import Opportunity

from .conftest import check_and_run, create, salesforce_csv, sf_row


def _later(days: float):
    return time_machine.travel(timezone.now() + datetime.timedelta(days=days), tick=False)


def test_an_upload_left_waiting_is_cancelled_and_its_file_deleted(
    world, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_IMPORT_KEEP_DAYS = 14
    waiting = create(world, salesforce_csv([sf_row(1), sf_row(2)]))
    path = waiting.file.path

    with _later(13.9), django_capture_on_commit_callbacks(execute=True):
        assert services.history_imports_expire() == 0
    waiting.refresh_from_db()
    assert waiting.status == ImportStatus.UPLOADED and waiting.file

    with _later(14.1), django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_uploads() == 1
    waiting.refresh_from_db()
    assert waiting.status == ImportStatus.CANCELLED
    assert waiting.finished_at is not None
    assert not waiting.file
    assert not os.path.exists(path)


def test_a_check_counts_as_a_sign_of_life(world, settings, django_capture_on_commit_callbacks):
    settings.DEBRIEF_IMPORT_KEEP_DAYS = 14
    history_import = create(world, salesforce_csv([sf_row(1)]))
    with _later(10):
        checked = services.history_import_check(history_import=history_import)
    assert checked.status == ImportStatus.CHECKED
    with _later(20), django_capture_on_commit_callbacks(execute=True):
        assert services.history_imports_expire() == 0  # checked 10 days before
    with _later(24.1), django_capture_on_commit_callbacks(execute=True):
        assert services.history_imports_expire() == 1


def test_imports_under_way_or_finished_are_never_expired(
    world, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_IMPORT_KEEP_DAYS = 1
    done = check_and_run(
        world, create(world, salesforce_csv([sf_row(1)])), django_capture_on_commit_callbacks
    )
    assert done.status == ImportStatus.DONE
    running = create(world, salesforce_csv([sf_row(2)]), system="Other CRM")
    HistoryImport.objects.filter(pk=running.pk).update(status=ImportStatus.RUNNING)
    deals = Opportunity.objects.count()

    with _later(30), django_capture_on_commit_callbacks(execute=True):
        assert services.history_imports_expire() == 0
    assert set(HistoryImport.objects.values_list("status", flat=True)) == {
        ImportStatus.DONE,
        ImportStatus.RUNNING,
    }
    assert Opportunity.objects.count() == deals  # expiring never touches imported deals


def test_the_nightly_expiry_is_declared_with_the_other_schedules():
    expiry = [s for s in schedules.SCHEDULES if s.task == "imports.expire_uploads"]
    assert len(expiry) == 1 and expiry[0].hour == "3"
