"""Task options, the beat schedules, and one rollup through the real Redis broker and a worker."""

import kombu.exceptions
import pytest
import redis.exceptions
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from django.db import InterfaceError, OperationalError
from django_celery_beat.models import PeriodicTask

from crm_site.celery import app
from insights import schedules, tasks
from insights.models import Dimension, InsightFact, InsightRun, RunStatus, ScopeKind
from tests.insights.conftest import Closer, d

ALL_TASKS = [
    tasks.run_insights,
    tasks.rollup_insights,
    tasks.rebuild_insights,
    tasks.sweep_insights,
    tasks.send_weekly_digest,
]


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_tasks_are_acked_late_and_retry_transient_errors(task):
    assert task.acks_late and task.reject_on_worker_lost
    for error in (
        OperationalError,
        InterfaceError,
        kombu.exceptions.OperationalError,
        redis.exceptions.ConnectionError,
    ):
        assert issubclass(error, task.autoretry_for)
    assert task.retry_backoff and task.max_retries
    assert task.name in app.tasks


@pytest.mark.django_db
def test_schedules_are_installed_in_celery_beat_and_edits_survive():
    # post_migrate installed them when the test database was created.
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {s.name for s in schedules.SCHEDULES} <= names
    nightly = PeriodicTask.objects.get(name="Insights: nightly rebuild")
    assert nightly.task == "insights.rebuild"
    assert (nightly.crontab.minute, nightly.crontab.hour) == ("15", "2")
    digest = PeriodicTask.objects.get(name="Insights: weekly digest")
    assert (digest.crontab.day_of_week, digest.crontab.hour) == ("1", "7")
    # An admin's edit is kept: installing again changes nothing.
    nightly.enabled = False
    nightly.save()
    assert schedules.install() == 0
    assert not PeriodicTask.objects.get(name="Insights: nightly rebuild").enabled


@pytest.mark.django_db
def test_schedules_are_reinstalled_when_missing():
    PeriodicTask.objects.filter(name__startswith="Insights:").delete()
    assert schedules.install() == 3
    assert schedules.install() == 0


@pytest.mark.django_db
def test_scheduled_rebuild_records_a_run(rep):
    Closer(rep).close("won", d("2026-05-12"), "Product fit")
    run_id = tasks.rebuild_insights()
    run = InsightRun.objects.get(pk=run_id)
    assert run.status == RunStatus.SUCCEEDED and run.detail == "Scheduled rebuild"


@pytest.mark.django_db
def test_rebuild_command(rep, capsys):
    Closer(rep).close("won", d("2026-05-12"), "Product fit")
    call_command("insights_rebuild")
    assert "facts written" in capsys.readouterr().out
    assert InsightFact.objects.exists()


@pytest.mark.needs_redis
@pytest.mark.django_db(transaction=True)
def test_rollup_runs_through_redis_and_a_real_worker(rep, defaults):
    assert not app.conf.task_always_eager
    assert app.conf.broker_url.startswith("redis://")
    Closer(rep).close("won", d("2026-05-12"), "Product fit")
    Closer(rep).close("lost", d("2026-05-13"), "Price")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        result = tasks.rollup_insights.apply_async(
            args=["quarter", "2026-04-01", ScopeKind.ORG, ""], ignore_result=False
        )
        assert result.get(timeout=30) > 0
    summary = InsightFact.objects.get(
        period_kind="quarter",
        period_start=d("2026-04-01"),
        scope_kind=ScopeKind.ORG,
        dimension=Dimension.SUMMARY,
    )
    assert (summary.deals, summary.won, summary.lost) == (2, 1, 1)
