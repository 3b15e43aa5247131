"""
Refreshes after closes: queued after commit, coalesced, and caught up by the sweep. Most tests
here are a deployment with workers (the broker mocked); the embedded default, where a thread of
the process does the refresh, is at the end.
"""

import datetime
from unittest import mock

import pytest
from django.utils import timezone

from insights import services, tasks
from insights.models import (
    InsightFact,
    InsightRun,
    PendingPeriod,
    PendingReflection,
    RunKind,
    RunStatus,
)
from opportunities.models import Stage
from reflections import signals
from reflections.models import Outcome, Reflection
from tests.factories import OpportunityFactory
from tests.insights.conftest import d
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

pytestmark = pytest.mark.django_db


@pytest.fixture
def apply_async(settings):
    """A deployment with workers: tasks go to the broker (mocked here), not eager."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with mock.patch.object(tasks.run_insights, "apply_async") as patched:
        yield patched


@pytest.mark.smoke
def test_a_burst_of_100_closes_queues_one_refresh(
    closer, apply_async, django_capture_on_commit_callbacks, settings
):
    settings.DEBRIEF_INSIGHT_REFRESH_DELAY = 30
    reflections = [closer.close("lost", d("2026-05-12"), "Price") for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for i in range(100):
            signals.reflection_submitted.send(
                sender=Reflection, reflection=reflections[i % 3], created=True
            )
    assert len(callbacks) >= 100  # every close asked...
    assert apply_async.call_count == 1  # ...and one refresh was queued
    run = InsightRun.objects.get()
    assert (run.kind, run.status) == (RunKind.REFRESH, RunStatus.QUEUED)
    apply_async.assert_called_once_with(args=[run.pk], countdown=30)
    # Each reflection is marked once, as counted nowhere yet (the refresh adds its delta).
    assert set(PendingReflection.objects.values_list("pk", "counted")) == {
        (reflection.pk, None) for reflection in reflections
    }
    assert not PendingPeriod.objects.exists()


def test_closes_after_the_refresh_started_queue_exactly_one_more(
    closer, apply_async, django_capture_on_commit_callbacks
):
    reflection = closer.close("lost", d("2026-05-12"), "Price")
    with django_capture_on_commit_callbacks(execute=True):
        signals.reflection_submitted.send(sender=Reflection, reflection=reflection, created=True)
    first = InsightRun.objects.get()
    InsightRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)  # a worker took it
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(50):
            signals.reflection_submitted.send(
                sender=Reflection, reflection=reflection, created=False
            )
    assert apply_async.call_count == 2
    assert InsightRun.objects.filter(status=RunStatus.QUEUED).count() == 1


def test_nothing_is_marked_or_queued_when_the_close_rolls_back(
    closer, apply_async, django_capture_on_commit_callbacks
):
    from django.db import transaction

    reflection = closer.close("lost", d("2026-05-12"), "Price")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        signals.reflection_submitted.send(sender=Reflection, reflection=reflection, created=True)
        assert PendingReflection.objects.count() == 1  # marked inside the close's transaction
        raise RuntimeError("the close fails after the signal")
    apply_async.assert_not_called()
    assert not PendingReflection.objects.exists()


def test_refresh_recomputes_the_marked_periods_and_clears_them(
    closer, apply_async, django_capture_on_commit_callbacks, settings
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    reflection = closer.close("lost", d("2026-05-12"), "Price")
    with django_capture_on_commit_callbacks(execute=True):
        signals.reflection_submitted.send(sender=Reflection, reflection=reflection, created=True)
    run = InsightRun.objects.get()
    tasks.run_insights(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert not PendingPeriod.objects.exists()
    periods = set(InsightFact.objects.values_list("period_kind", "period_start"))
    assert periods == {("quarter", d("2026-04-01")), ("month", d("2026-05-01"))}


def test_a_mark_renewed_during_a_refresh_survives_it(closer):
    services.insights_mark_stale(dates=[d("2026-05-12")])
    original = services._pending_snapshot()
    PendingPeriod.objects.update(marked_at=timezone.now() + datetime.timedelta(seconds=5))
    services._pending_clear(original)
    assert PendingPeriod.objects.count() == 2


def test_closing_through_the_service_marks_and_queues_after_commit(
    rep, lost_set, apply_async, django_capture_on_commit_callbacks
):
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    with django_capture_on_commit_callbacks(execute=True):
        reflection = close(rep, deal, lost_answers(lost_set), outcome=Outcome.LOST)
    assert apply_async.call_count == 1
    assert PendingReflection.objects.get().pk == reflection.pk


def test_reopening_marks_the_old_reflection_with_what_it_counted(
    closer, apply_async, django_capture_on_commit_callbacks
):
    reflection = closer.close("lost", d("2026-02-12"), "Price")
    with django_capture_on_commit_callbacks(execute=True):
        signals.opportunity_reopened.send(
            sender=None, opportunity=reflection.opportunity, reflection=reflection
        )
    counted = PendingReflection.objects.get(pk=reflection.pk).counted
    assert (counted["month"], counted["outcome"]) == ("2026-02-01", "lost")
    assert apply_async.call_count == 1


def test_sweep_catches_up_lost_and_stuck_work(apply_async, settings):
    now = timezone.now()
    stuck = InsightRun.objects.create(
        kind=RunKind.REBUILD,
        status=RunStatus.RUNNING,
        started_at=now - datetime.timedelta(hours=2),
    )
    lost = InsightRun.objects.create(
        kind=RunKind.REFRESH, created_at=now - datetime.timedelta(minutes=30)
    )
    PendingPeriod.objects.create(period_kind="month", period_start=d("2026-05-01"))
    requeued = tasks.sweep_insights()
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.FAILED and "worker stopped" in stuck.error
    # The dead rebuild is started again; the lost refresh is requeued, and it is still the
    # queued one, so no second refresh.
    restarted = InsightRun.objects.get(kind=RunKind.REBUILD, status=RunStatus.QUEUED)
    assert requeued == [restarted.pk, lost.pk]
    assert InsightRun.objects.filter(status=RunStatus.QUEUED).count() == 2


def test_sweep_queues_a_refresh_for_orphan_marks(apply_async, django_capture_on_commit_callbacks):
    PendingPeriod.objects.create(period_kind="month", period_start=d("2026-05-01"))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_insights()
    run = InsightRun.objects.get()
    assert run.kind == RunKind.REFRESH
    apply_async.assert_called_once_with(args=[run.pk], countdown=None)
