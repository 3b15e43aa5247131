"""
Faults, provoked for real: the broker down while deals close, a worker killed in the middle of
a rollup, the database failing in the middle of a close. Nothing may be half-saved or lost.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.db import DatabaseError, connection
from django.urls import reverse

from crm_site.celery import app
from insights import queue as insight_queue
from insights import services as insight_services
from insights import tasks as insight_tasks
from insights.models import InsightFact, InsightRun, PendingPeriod, PendingReflection, RunStatus
from opportunities.models import Opportunity, Stage, StageChange
from reflections.models import Reflection
from suppressions.models import Suppression
from tests.conftest import _unavailable
from tests.factories import OpportunityFactory
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

ROOT = Path(__file__).resolve().parents[1]
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


@contextmanager
def broker(url: str):
    """Point the Celery app at another broker, with real (not eager) publishing."""
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = url, False
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._pool = None
        app.amqp._producer_pool = None


def _fact_rows() -> set[tuple]:
    fields = [
        f.name
        for f in InsightFact._meta.concrete_fields
        if f.name not in {"id", "computed_at", "created_at", "updated_at"}
    ]
    return set(InsightFact.objects.values_list(*fields))


@pytest.mark.django_db
def test_closing_with_the_broker_down_saves_everything_quickly_and_marks_the_refresh(
    rep_client, rep, lost_set, django_capture_on_commit_callbacks
):
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    url = reverse("reflections:close", args=[deal.pk, "lost"])
    with broker(DEAD_BROKER), django_capture_on_commit_callbacks(execute=True):
        started = time.monotonic()
        response = rep_client.post(url, {"prompt_set": lost_set.pk, **lost_answers(lost_set)})
        elapsed = time.monotonic() - started
    assert response.status_code == 302
    # A publish to a dead broker is bounded (three short tries), not a hang.
    assert elapsed < 10, f"the close took {elapsed:.1f} s with the broker down"
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST
    assert Reflection.objects.filter(opportunity=deal, current=True).exists()
    assert Suppression.objects.filter(source_opportunity=deal).exists()
    # Nothing is lost: the reflection is marked in the close's own transaction...
    assert PendingReflection.objects.count() == 1
    # ... and the refused publish is recorded, not swallowed.
    run = InsightRun.objects.get()
    assert run.status == RunStatus.FAILED and "Could not queue" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_close_that_cannot_queue_its_refresh_says_reports_will_catch_up(
    rep_client, rep, defaults, lost_set
):
    """Real commits (no test transaction): the after-commit publish fails, the page says so."""
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    url = reverse("reflections:close", args=[deal.pk, "lost"])
    with broker(DEAD_BROKER):
        response = rep_client.post(
            url, {"prompt_set": lost_set.pk, **lost_answers(lost_set)}, follow=True
        )
    assert response.status_code == 200
    page = response.content.decode()
    assert "is closed as lost" in page
    assert "they will catch up within a few minutes" in page
    assert "RuntimeError" not in page and "Retry limit" not in page and "Traceback" not in page
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST and PendingReflection.objects.count() == 1


def test_a_close_that_queues_its_refresh_says_nothing_about_catching_up(
    rep_client, rep, lost_set, django_capture_on_commit_callbacks
):
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    url = reverse("reflections:close", args=[deal.pk, "lost"])
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(
            url, {"prompt_set": lost_set.pk, **lost_answers(lost_set)}, follow=True
        )
    assert "catch up" not in response.content.decode()


@pytest.mark.needs_redis
@pytest.mark.django_db(transaction=True)
def test_the_sweep_refreshes_what_closed_while_the_broker_was_down(rep, lost_set, settings):
    from celery.contrib.testing.worker import start_worker

    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    deal = OpportunityFactory(owner=rep)
    with broker(DEAD_BROKER):
        close(rep, deal, lost_answers(lost_set))  # commits; the refresh cannot be queued
    assert PendingReflection.objects.count() == 1
    assert not InsightFact.objects.exists()
    # The broker is back: the scheduled sweep finds the marks and a real worker refreshes.
    with broker(settings.REDIS_URL), start_worker(app, pool="solo", perform_ping_check=False):
        insight_tasks.sweep_insights()
        deadline = time.monotonic() + 30
        while PendingReflection.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        # A refresh queued by the sweep runs straight away (no countdown).
        while (
            InsightRun.objects.exclude(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]).exists()
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
    assert not PendingReflection.objects.exists()
    assert InsightRun.objects.filter(status=RunStatus.SUCCEEDED).exists()
    assert InsightFact.objects.filter(dimension="primary_reason_lost").exists()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _lock_waiters(cursor) -> int:
    cursor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%insights_insightfact%'"
    )
    return cursor.fetchone()[0]


@pytest.mark.needs_postgres
@pytest.mark.needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_middle_of_a_rollup_is_redelivered_and_consistent(
    rep, lost_set, settings
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    for _ in range(3):
        close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    insight_services.insights_rebuild()
    expected = _fact_rows()
    assert expected

    db = connection.settings_dict
    conninfo = dict(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"],
    )
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "true",
        "CONN_MAX_AGE": "0",
    }
    with psycopg.connect(**conninfo, autocommit=False) as locker:
        cursor = locker.cursor()
        # Hold one fact row: the rollup computes, then blocks when it writes its facts.
        cursor.execute("SELECT id FROM insights_insightfact ORDER BY id LIMIT 1 FOR UPDATE")
        with broker(settings.REDIS_URL):
            run = insight_queue.insight_run_request_rebuild(requested_by=None)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crm_site", "worker", "--pool", "prefork",
             "--concurrency", "1", "--without-mingle", "--without-gossip", "-l", "warning"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with psycopg.connect(**conninfo, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while _lock_waiters(watcher.cursor()) == 0:
                    assert time.monotonic() < deadline, "the rollup never reached its writes"
                    time.sleep(0.2)
                run.refresh_from_db()
                assert run.status == RunStatus.RUNNING
                for child in _children(worker.pid):
                    os.kill(child, signal.SIGKILL)  # the pool process dies mid-rollup
            locker.rollback()  # release the row
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                run.refresh_from_db()
                if run.status == RunStatus.SUCCEEDED:
                    break
                time.sleep(0.3)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert _fact_rows() == expected


@pytest.mark.needs_postgres
@pytest.mark.needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_whole_worker_killed_mid_rebuild_is_seen_within_a_lease_and_redone(
    rep, lost_set, settings
):
    """
    The whole worker (main process and pool) is killed while a rebuild writes: nothing will
    redeliver it soon. Within a lease the run is taken as dead; "Refresh now" does not join
    it but starts a new run, which a new worker finishes with the right facts.
    """
    from celery.contrib.testing.worker import start_worker

    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    settings.DEBRIEF_INSIGHT_RUN_LEASE_SECONDS = 3
    for _ in range(3):
        close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    insight_services.insights_rebuild()
    expected = _fact_rows()
    db = connection.settings_dict
    conninfo = dict(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
        port=db["PORT"],
    )  # fmt: skip
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "true",
        "CONN_MAX_AGE": "0",
        "DEBRIEF_INSIGHT_RUN_LEASE_SECONDS": "3",
    }
    with psycopg.connect(**conninfo, autocommit=False) as locker:
        locker.cursor().execute(
            "SELECT id FROM insights_insightfact ORDER BY id LIMIT 1 FOR UPDATE"
        )
        with broker(settings.REDIS_URL):
            run = insight_queue.insight_run_request_rebuild(requested_by=None)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crm_site", "worker", "--pool", "prefork",
             "--concurrency", "1", "--without-mingle", "--without-gossip", "-l", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with psycopg.connect(**conninfo, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while _lock_waiters(watcher.cursor()) == 0:
                    assert time.monotonic() < deadline, "the rollup never reached its writes"
                    time.sleep(0.2)
            for pid in [*_children(worker.pid), worker.pid]:
                os.kill(pid, signal.SIGKILL)  # the whole worker dies, main process too
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
        locker.rollback()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # nobody can know yet
    time.sleep(4)  # longer than the lease: no heartbeat came
    with broker(settings.REDIS_URL), start_worker(app, pool="solo", perform_ping_check=False):
        again = insight_queue.insight_run_request_rebuild(requested_by=None)
        assert again.pk != run.pk
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            again.refresh_from_db()
            if again.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                break
            time.sleep(0.3)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "went silent" in run.error
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert _fact_rows() == expected


@pytest.mark.django_db
def test_a_database_error_in_the_middle_of_a_close_saves_nothing(rep, lost_set, monkeypatch):
    from suppressions import services as suppressions_services

    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)

    def broken(**kwargs):
        raise DatabaseError("could not extend file: No space left on device")

    monkeypatch.setattr(suppressions_services, "derive_for_close", broken)
    with pytest.raises(DatabaseError):
        close(rep, deal, lost_answers(lost_set))
    deal.refresh_from_db()
    assert deal.stage == Stage.PROPOSAL and deal.closed_date is None
    assert not Reflection.objects.exists()
    assert not StageChange.objects.filter(opportunity=deal).exists()
    assert not PendingPeriod.objects.exists() and not PendingReflection.objects.exists()
    assert Opportunity.objects.get(pk=deal.pk).is_open


DEAD_CACHE = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": DEAD_BROKER,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1, "IGNORE_EXCEPTIONS": True},
    }
}


def test_pages_that_cache_fall_back_to_the_database_when_redis_is_down(rep_client, rep, settings):
    """The settings' Redis cache, pointed at a port nothing listens on: pages still answer."""
    from django.conf import settings as live

    from crm_site import settings as project

    deal = OpportunityFactory(owner=rep)
    settings.CACHES = DEAD_CACHE
    assert live.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    # The same options as production's, so that this test fails if they drift apart.
    if project.REDIS_URL:
        assert project.CACHES["default"]["OPTIONS"] == DEAD_CACHE["default"]["OPTIONS"]
    started = time.monotonic()
    for url in (
        reverse("opportunities:pipeline"),
        reverse("customers:company_detail", args=[deal.company_id]),
        reverse("opportunities:detail", args=[deal.pk]),
        reverse("opportunities:plan"),
    ):
        response = rep_client.get(url)
        assert response.status_code == 200, url
    assert time.monotonic() - started < 20  # each refused connection fails fast


@pytest.mark.django_db(transaction=True)
def test_with_redis_stopped_every_page_answers_and_only_the_refresh_says_503(
    client, rep, manager, defaults, lost_set, settings
):
    """Broker and cache both unreachable: every page a person opens still answers."""
    from tests.test_permission_matrix import MATRIX, _fill

    deal = OpportunityFactory(owner=rep)
    closed = OpportunityFactory(owner=rep)
    with broker(DEAD_BROKER):
        close(rep, closed, lost_answers(lost_set))
    settings.CACHES = DEAD_CACHE
    client.force_login(manager)
    objects = {
        "team": rep.team_id, "company": deal.company_id, "contact": deal.contact_id,
        "product": deal.product_id, "deal": deal.pk, "closed_deal": closed.pk,
        "reflection": closed.reflections.get().pk, "rep_id": rep.pk,
    }  # fmt: skip
    answered = {}
    with broker(DEAD_BROKER):
        for name, entry in MATRIX.items():
            if entry.method != "get" or any(
                not all(k in objects for k in _placeholders(a)) for a in entry.args
            ):
                continue
            url = reverse(name, args=[_fill(a, objects) for a in entry.args])
            answered[name] = client.get(url + _fill(entry.query, objects)).status_code
        refresh = client.post(reverse("insights:refresh"), HTTP_HX_REQUEST="true")
    assert len(answered) > 25
    assert all(status < 500 for status in answered.values()), answered
    assert refresh.status_code == 503
    page = refresh.content.decode()
    assert "Could not queue the job" in page and "tried again every few minutes" in page
    assert "OperationalError" not in page and "Connection refused" not in page


def _placeholders(value: str) -> list[str]:
    import string

    return [field for _, field, _, _ in string.Formatter().parse(value) if field]


@pytest.fixture
def own_redis():
    """A Redis server of the test's own on a free port, so that the test may freeze it."""
    import shutil
    import socket

    if shutil.which("redis-server") is None:
        _unavailable("needs the redis-server program")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield url, server
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def result_backend(url: str):
    saved = app.conf.result_backend
    app.conf.result_backend = url
    app._local.__dict__.pop("backend", None)
    try:
        yield
    finally:
        app.conf.result_backend = saved
        app._local.__dict__.pop("backend", None)


@pytest.mark.needs_redis
@pytest.mark.django_db
def test_closing_with_redis_frozen_saves_the_close_within_seconds(
    rep_client, rep, lost_set, own_redis, django_capture_on_commit_callbacks
):
    """Broker and result store on one Redis that hangs (SIGSTOP): the close is saved fast."""
    url, server = own_redis
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    close_url = reverse("reflections:close", args=[deal.pk, "lost"])
    server.send_signal(signal.SIGSTOP)
    # Timed with the after-commit publish, which the capture runs as its block ends.
    started = time.monotonic()
    with broker(url), result_backend(url), django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(close_url, {"prompt_set": lost_set.pk, **lost_answers(lost_set)})
    elapsed = time.monotonic() - started
    assert response.status_code == 302
    assert elapsed < 5, f"the close took {elapsed:.1f} s with Redis frozen"
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST
    assert Reflection.objects.filter(opportunity=deal, current=True).exists()
    assert PendingReflection.objects.count() == 1  # the sweep catches up when Redis is back
    run = InsightRun.objects.get()
    assert run.status == RunStatus.FAILED and "Could not queue" in run.error
