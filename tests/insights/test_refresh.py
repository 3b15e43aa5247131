"""Refresh now: a run, a progress bar polled by htmx, and failures shown with their reason."""

import datetime
import time
from unittest import mock

import kombu.exceptions
import pytest
from django.urls import reverse
from django.utils import timezone

from insights import queue, services, tasks
from insights.models import InsightRun, RunKind, RunStatus
from tests.insights.conftest import Closer, d

pytestmark = pytest.mark.django_db

REFRESH = reverse("insights:refresh")


def progress_url(run):
    return reverse("insights:run_progress", args=[run.pk])


@pytest.fixture
def apply_async(settings):
    """A deployment with workers: tasks go to the broker (mocked here), not eager."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with mock.patch.object(tasks.run_insights, "apply_async") as patched:
        yield patched


def test_refresh_now_starts_a_run_and_polls_until_done(
    manager_client, closer, apply_async, django_capture_on_commit_callbacks
):
    for _ in range(5):
        closer.close("won", d("2026-05-12"), "Product fit")
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(REFRESH, HTTP_HX_REQUEST="true")
    run = InsightRun.objects.get()
    assert response.status_code == 202
    assert (run.kind, run.status, run.progress) == (RunKind.REBUILD, RunStatus.QUEUED, 0)
    apply_async.assert_called_once_with(args=[run.pk], countdown=None)
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' in html and "<progress" in html

    polling = manager_client.get(progress_url(run), HTTP_HX_REQUEST="true")
    assert polling.status_code == 200 and 'hx-trigger="every 1s"' in polling.content.decode()

    tasks.run_insights(run.pk)  # what the worker does, called directly
    run.refresh_from_db()
    assert (run.status, run.progress) == (RunStatus.SUCCEEDED, 100)
    assert run.facts_written > 0 and run.started_at and run.finished_at
    done = manager_client.get(progress_url(run), HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    assert "every 1s" not in done.content.decode() and "up to date" in done.content.decode()
    assert "insightsRefreshed" in done.headers["HX-Trigger"]  # the report reloads itself


def test_a_second_click_joins_the_queued_run(manager_client, apply_async):
    manager_client.post(REFRESH, HTTP_HX_REQUEST="true")
    manager_client.post(REFRESH, HTTP_HX_REQUEST="true")
    assert InsightRun.objects.count() == 1


def test_refresh_without_javascript_redirects_to_the_dashboard(rep_client, apply_async):
    response = rep_client.post(REFRESH)
    assert response.status_code == 302 and response.url == reverse("insights:dashboard")


def test_a_failed_run_shows_its_reason(manager_client, apply_async):
    run = queue.insight_run_request_rebuild(requested_by=None)
    with (
        mock.patch("insights.facts.rollup_facts", side_effect=RuntimeError("disk full on db host")),
        pytest.raises(RuntimeError),
    ):
        tasks.run_insights(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "RuntimeError: disk full on db host"
    fragment = manager_client.get(progress_url(run), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286
    assert "disk full on db host" in fragment.content.decode()
    assert "HX-Trigger" not in fragment.headers
    page = manager_client.get(reverse("insights:dashboard")).content.decode()
    assert "The last refresh failed" in page and "disk full on db host" in page


def test_a_broker_refusal_is_recorded_on_the_run(
    manager_client, apply_async, django_capture_on_commit_callbacks
):
    apply_async.side_effect = kombu.exceptions.OperationalError("Connection refused")
    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(REFRESH, HTTP_HX_REQUEST="true")
    run = InsightRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert "Could not queue the job" in run.error
    # Plain words on the page; the exception goes to the log only.
    assert "Connection refused" not in run.error and "OperationalError" not in run.error


def test_a_succeeded_run_is_not_redone_by_a_redelivered_message(closer, apply_async):
    run = queue.insight_run_request_rebuild(requested_by=None)
    tasks.run_insights(run.pk)
    run.refresh_from_db()
    finished = run.finished_at
    with mock.patch("insights.facts.rollup_facts") as compute:
        tasks.run_insights(run.pk)
    compute.assert_not_called()
    run.refresh_from_db()
    assert run.finished_at == finished


def test_a_rep_pressing_refresh_joins_and_follows_a_run_already_under_way(
    rep_client, rep, manager, apply_async
):
    run = queue.insight_run_request_rebuild(requested_by=manager)
    assert queue.insight_run_request_rebuild(requested_by=rep).pk == run.pk
    assert rep_client.get(progress_url(run)).status_code == 200
    assert rep_client.get(reverse("insights:run_progress", args=[99999])).status_code == 404


def test_progress_fragment_query_count(manager_client, apply_async, django_assert_num_queries):
    run = queue.insight_run_request_rebuild(requested_by=None)
    with django_assert_num_queries(3):  # session, user, run
        manager_client.get(progress_url(run), HTTP_HX_REQUEST="true")


def test_a_message_for_a_run_that_no_longer_exists_is_dropped():
    assert tasks.run_insights(987654) == "missing"


def _running(seconds_silent: int, **fields):
    now = timezone.now()
    return InsightRun.objects.create(
        kind=RunKind.REBUILD,
        status=RunStatus.RUNNING,
        started_at=now - datetime.timedelta(seconds=seconds_silent + 5),
        heartbeat_at=now - datetime.timedelta(seconds=seconds_silent),
        progress=30,
        **fields,
    )


def test_a_run_whose_worker_died_is_seen_within_a_lease_and_started_again(
    manager_client, apply_async, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_INSIGHT_RUN_LEASE_SECONDS = 60
    dead = _running(61)
    with django_capture_on_commit_callbacks(execute=True):
        polled = manager_client.get(progress_url(dead), HTTP_HX_REQUEST="true")
    assert polled.status_code == 286  # the bar stops, saying what happened
    assert "stopped before finishing" in polled.content.decode()
    dead.refresh_from_db()
    assert dead.status == RunStatus.FAILED
    again = InsightRun.objects.get(status=RunStatus.QUEUED)
    assert again.kind == RunKind.REBUILD and "Restarted" in again.detail
    apply_async.assert_called_once_with(args=[again.pk], countdown=None)


def test_refresh_now_never_joins_a_dead_run(manager_client, apply_async, settings):
    settings.DEBRIEF_INSIGHT_RUN_LEASE_SECONDS = 60
    dead = _running(120)
    run = queue.insight_run_request_rebuild(requested_by=None)
    assert run.pk != dead.pk and run.status == RunStatus.QUEUED
    dead.refresh_from_db()
    assert dead.status == RunStatus.FAILED


def test_a_slow_run_with_a_heartbeat_is_joined_not_restarted(manager_client, apply_async):
    alive = _running(5)
    assert queue.insight_run_request_rebuild(requested_by=None).pk == alive.pk
    manager_client.get(progress_url(alive), HTTP_HX_REQUEST="true")
    alive.refresh_from_db()
    assert alive.status == RunStatus.RUNNING
    assert not apply_async.called


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_stamps_the_heartbeat_while_a_long_job_runs(settings, monkeypatch):
    """Outside eager mode a thread stamps the run while the work goes on, however long."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.DEBRIEF_INSIGHT_RUN_LEASE_SECONDS = 3  # a stamp every second
    stamps = []

    def slow_rebuild(progress):
        for _ in range(5):
            time.sleep(0.6)
            stamps.append(InsightRun.objects.values_list("heartbeat_at", flat=True).get())
        return 0

    monkeypatch.setitem(services.WORK, RunKind.REBUILD, slow_rebuild)
    run = InsightRun.objects.create(kind=RunKind.REBUILD)
    services.insight_run_execute(run_id=run.pk)
    assert len(set(stamps)) >= 2  # stamped again while the job ran, with no progress call
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert not services.insight_runs_reap()


# --- the embedded default: no worker, the run goes on in a thread of the server ---------------
@pytest.fixture
def in_process(embedded_default, monkeypatch):
    """The embedded default (eager tasks); the thread is recorded here, not started."""
    started = []
    monkeypatch.setattr(
        services,
        "insight_run_start_in_process",
        lambda *, run_id, settle=0: started.append(run_id),
    )
    return started


def test_embedded_refresh_now_answers_at_once_with_a_progress_bar(
    manager_client, closer, in_process, django_capture_on_commit_callbacks
):
    closer.close("won", d("2026-05-12"), "Product fit")
    with (
        mock.patch.object(tasks.run_insights, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = manager_client.post(REFRESH, HTTP_HX_REQUEST="true")
    run = InsightRun.objects.get()
    # Not run inside the request: started in the background once the claim committed.
    assert in_process == [run.pk] and not apply_async.called
    assert response.status_code == 202 and run.status == RunStatus.QUEUED
    html = response.content.decode()
    assert "<progress" in html and 'hx-trigger="every 1s"' in html
    assert "HX-Trigger" not in response.headers


def test_embedded_refresh_now_joins_the_run_under_way(manager_client, rep_client, in_process):
    manager_client.post(REFRESH, HTTP_HX_REQUEST="true")
    rep_client.post(REFRESH, HTTP_HX_REQUEST="true")
    assert InsightRun.objects.count() == 1


def test_embedded_refresh_now_hands_over_a_rebuild_a_stopped_server_left_queued(
    manager, in_process, django_capture_on_commit_callbacks
):
    left = InsightRun.objects.create(kind=RunKind.REBUILD, status=RunStatus.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        joined = queue.insight_run_request_rebuild(requested_by=manager)
    assert joined.pk == left.pk and in_process == [left.pk]


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_does_the_run_and_records_it(
    rep, defaults, embedded_default, background_thread
):
    Closer(rep).close("won", d("2026-05-12"), "Product fit")
    run = InsightRun.objects.create(kind=RunKind.REBUILD)
    thread = services.insight_run_start_in_process(run_id=run.pk)
    thread.join(timeout=60)
    assert not thread.is_alive()
    run.refresh_from_db()
    assert (run.status, run.progress) == (RunStatus.SUCCEEDED, 100)
    assert run.facts_written > 0


@pytest.mark.django_db(transaction=True)
def test_a_failure_in_the_background_thread_is_recorded_on_the_run(
    embedded_default, monkeypatch, background_thread
):

    def broken(progress):
        raise RuntimeError("disk full on db host")

    monkeypatch.setitem(services.WORK, RunKind.REBUILD, broken)
    run = InsightRun.objects.create(kind=RunKind.REBUILD)
    services.insight_run_start_in_process(run_id=run.pk).join(timeout=60)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "disk full" in run.error


def test_a_finished_run_brings_figures_as_of_up_to_date(manager_client, apply_async):
    run = queue.insight_run_request_rebuild(requested_by=None)
    page = manager_client.get(reverse("insights:dashboard")).content.decode()
    assert "Not computed yet" in page and "hx-swap-oob" not in page

    under_way = manager_client.get(progress_url(run), HTTP_HX_REQUEST="true").content.decode()
    assert "figures-as-of" not in under_way

    tasks.run_insights(run.pk)
    run.refresh_from_db()
    done = manager_client.get(progress_url(run), HTTP_HX_REQUEST="true").content.decode()
    stamp = timezone.localtime(run.finished_at).strftime("%-d %b %Y, %H:%M")
    assert (
        f'<span id="figures-as-of" class="muted" hx-swap-oob="true">Figures as of {stamp}' in done
    )
    page = manager_client.get(reverse("insights:dashboard")).content.decode()
    assert f"Figures as of {stamp}" in page and "hx-swap-oob" not in page


def test_a_rebuild_reports_progress_while_it_computes(closer):
    closer.close("won", d("2026-05-12"), "Product fit")
    seen = []
    services.insights_rebuild(progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 99
    # The bar moves during the computation (half of a run), not only once it is done.
    assert len([p for p in seen if 0 < p < 50]) >= 2, seen
