"""
Personas used across the suite (like healthchecks' alice / bob / charlie):

- rep: Riley, a rep in team North.
- teammate: another rep in North.
- other_rep: a rep in team South.
- manager: manages North.
- other_manager: manages South.
- admin: runs the Django admin.
"""

import contextlib
import datetime
import os

import pytest
import time_machine
from django.db import connection

from accounts.models import Role
from reflections.models import PromptSet
from tests.factories import CompetitorFactory, ManagerFactory, TeamFactory, UserFactory

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config):
    """
    DEBRIEF_TEST_CLOCK_SHIFT_DAYS=365 runs the whole suite with the clock that many days ahead
    (still ticking), to show that no test hangs on a calendar date that a clock can overtake.
    Tests that freeze their own day with time-machine still travel to it.
    """
    days = os.environ.get("DEBRIEF_TEST_CLOCK_SHIFT_DAYS", "").strip()
    if not days:
        return
    try:
        shift = datetime.timedelta(days=int(days))
    except ValueError:
        raise pytest.UsageError(
            f"DEBRIEF_TEST_CLOCK_SHIFT_DAYS={days!r}: give a whole number of days."
        ) from None
    traveller = time_machine.travel(datetime.datetime.now(datetime.UTC) + shift, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


def _unavailable(reason: str):
    """Skip on a developer machine; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a test that needs a service fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _require_services(request, settings):
    if request.node.get_closest_marker("needs_postgres") and connection.vendor != "postgresql":
        _unavailable("needs PostgreSQL: set DATABASE_URL")
    if request.node.get_closest_marker("needs_redis") and not settings.REDIS_URL:
        _unavailable("needs Redis: set REDIS_URL")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (in CI it is Redis, shared by the whole run)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def embedded_default(settings):
    """
    The embedded default's eager tasks, whatever this run's REDIS_URL says: in the settings
    and in the Celery app, which insights.tasks.in_process() both read.
    """
    from crm_site.celery import app

    # Read first: the app takes its configuration from the settings when it is first asked.
    saved = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


@pytest.fixture
def background_thread():
    """Ask for the embedded default's real background thread (see in_process_runs)."""


@pytest.fixture(autouse=True)
def in_process_runs(request, monkeypatch):
    """
    Tasks are eager here, as in the embedded default, so an insight run goes to a thread of
    this process (insights.services.insight_run_start_in_process). In a test:

    - whose transaction never commits, the thread could never see the run and would outlive
      the test: the runs handed over are only recorded, in the list this fixture gives;
    - with real commits on the in-memory SQLite test database, the run is done at once by the
      thread that hands it over, after the commit. Connections there share one cache, whose
      table locks fail at once where a SQLite file in WAL mode waits its turn, so a run next
      to the live server's requests would fail them both. (tests/insights/
      test_embedded_close.py closes next to the real thread on a file);
    - with real commits on PostgreSQL, or asking for `background_thread`, the real thread,
      waited for before the tables are emptied.
    """
    from insights import services

    marker = request.node.get_closest_marker("django_db")
    committed = marker is not None and marker.kwargs.get("transaction")
    if committed and (
        "background_thread" in request.fixturenames
        or connection.vendor != "sqlite"
        or not connection.is_in_memory_db()
    ):
        yield None
        thread = services._local_thread
        if thread is not None:
            thread.join(timeout=60)
        return
    handed: list[int] = []

    def hand_over(*, run_id: int, settle: float = 0) -> None:
        handed.append(run_id)
        if committed:
            # A failure is recorded on the run, as in the thread.
            with contextlib.suppress(Exception):
                services.insight_run_execute(run_id=run_id)

    monkeypatch.setattr(services, "insight_run_start_in_process", hand_over)
    yield handed


@pytest.fixture
def north(db):
    return TeamFactory(name="North")


@pytest.fixture
def south(db):
    return TeamFactory(name="South")


@pytest.fixture
def rep(north):
    return UserFactory(email="riley@example.com", full_name="Riley Rep", team=north)


@pytest.fixture
def teammate(north):
    return UserFactory(email="tess@example.com", full_name="Tess Teammate", team=north)


@pytest.fixture
def other_rep(south):
    return UserFactory(email="oscar@example.com", full_name="Oscar Other", team=south)


@pytest.fixture
def manager(north):
    return ManagerFactory(email="maya@example.com", full_name="Maya Manager", manages=[north])


@pytest.fixture
def other_manager(south):
    return ManagerFactory(email="noah@example.com", full_name="Noah Other", manages=[south])


@pytest.fixture
def admin_user(db):
    return UserFactory(email="ada@example.com", full_name="Ada Admin", role=Role.ADMIN, team=None)


def client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def rep_client(client, rep):
    return client_for(client, rep)


@pytest.fixture
def manager_client(client, manager):
    return client_for(client, manager)


@pytest.fixture
def admin_client_(client, admin_user):
    return client_for(client, admin_user)


@pytest.fixture
def defaults(db):
    """
    The rows the data migrations create (reasons, objections, prompt sets, suppression rules,
    buyer survey templates).
    Transactional tests truncate every table when they end, so tests that may run after one
    re-create them here; the migrations' functions are idempotent.
    """
    from importlib import import_module

    from django.apps import apps

    import_module("reflections.migrations.0002_default_taxonomy_and_prompt_sets").create_defaults(
        apps, None
    )
    # The rules' data migration predates the suppressions app (its models were customers').
    from suppressions.models import SuppressionRule

    if not SuppressionRule.objects.exists():
        for name, outcome, scope, target, days in import_module(
            "customers.migrations.0003_default_suppression_rules"
        ).RULES:
            SuppressionRule.objects.create(
                name=name, trigger_outcome=outcome, scope=scope, target=target, days=days
            )
    import_module("surveys.migrations.0002_default_templates").create(apps, None)


@pytest.fixture
def lost_set(defaults):
    """The default lost prompt set from the data migration."""
    return PromptSet.objects.get(family="default-lost", active=True)


@pytest.fixture
def competitor(db):
    return CompetitorFactory(name="Acme Rival")
