"""
Closing on the embedded default (`make run`: SQLite, eager tasks, no worker): the close marks
its periods stale and returns; a thread of the process refreshes the reports afterwards, one
run at a time, and closes that commit meanwhile share one follow-up run.
"""

import ast
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from insights import services
from insights.models import (
    Dimension,
    InsightFact,
    InsightRun,
    PendingPeriod,
    PendingReflection,
    RunKind,
    RunStatus,
)
from insights.periods import Period
from insights.services import insight_run_start_in_process as start_in_process
from opportunities.models import Stage
from reflections.models import Reflection
from tests.factories import OpportunityFactory
from tests.reflections.conftest import lost_answers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("embedded_default")


def close_url(deal):
    return reverse("reflections:close", args=[deal.pk, "lost"])


@pytest.mark.django_db
def test_a_close_marks_its_periods_and_leaves_the_refresh_to_the_background_thread(
    rep_client, rep, lost_set, in_process_runs, django_capture_on_commit_callbacks
):
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    with (
        mock.patch("insights.facts.rollup_facts") as rollup,
        mock.patch("insights.facts.compute_facts") as compute,
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = rep_client.post(
            close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set)}
        )
    assert response.status_code == 302
    rollup.assert_not_called()
    compute.assert_not_called()
    # The request reads no answers for a report and writes no fact: it marks and claims.
    sql = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sql if "insights_insightfact" in s]
    assert len([s for s in sql if 'FROM "reflections_answer"' in s]) == 0
    run = InsightRun.objects.get()
    assert (run.kind, run.status) == (RunKind.REFRESH, RunStatus.QUEUED)
    assert in_process_runs == [run.pk]  # handed to the thread once the close committed
    # The close marks its reflection, counted nowhere yet: the refresh applies its delta.
    reflection = Reflection.objects.get(opportunity=deal)
    assert list(PendingReflection.objects.values_list("pk", "counted")) == [(reflection.pk, None)]
    assert not PendingPeriod.objects.exists()


@pytest.mark.django_db
def test_closes_while_a_refresh_waits_share_it(
    rep_client, rep, lost_set, in_process_runs, django_capture_on_commit_callbacks
):
    for _ in range(3):
        deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
        with django_capture_on_commit_callbacks(execute=True):
            rep_client.post(close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set)})
    run = InsightRun.objects.get()
    # Each close tells the thread closes go on (so it waits for them to pause); one run.
    assert in_process_runs == [run.pk] * 3


@pytest.mark.django_db(transaction=True)
def test_closes_during_a_refresh_make_one_follow_up_and_the_dashboard_counts_them_all(
    rep, admin_user, lost_set, settings, monkeypatch, background_thread
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    monkeypatch.setattr(services, "LOCAL_QUIET_SECONDS", 0)  # start at once
    refresh = services.WORK[RunKind.REFRESH]
    started, release = threading.Event(), threading.Event()
    running, most, callers = [0], [0], []

    def held_refresh(progress):
        callers.append(threading.current_thread().name)
        running[0] += 1
        most[0] = max(most[0], running[0])
        started.set()
        release.wait(30)
        try:
            return refresh(progress=progress)
        finally:
            running[0] -= 1

    monkeypatch.setitem(services.WORK, RunKind.REFRESH, held_refresh)
    closer = Client()
    closer.force_login(rep)
    deals = [OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION) for _ in range(3)]
    answers = {"prompt_set": lost_set.pk, **lost_answers(lost_set)}

    assert closer.post(close_url(deals[0]), answers).status_code == 302
    assert started.wait(30), "the background thread never started the refresh"
    first = InsightRun.objects.get()
    assert first.status == RunStatus.RUNNING
    for deal in deals[1:]:
        assert closer.post(close_url(deal), answers).status_code == 302
    follow_up = InsightRun.objects.exclude(pk=first.pk).get()
    assert follow_up.status == RunStatus.QUEUED  # both later closes share it

    release.set()
    services._local_thread.join(timeout=60)
    statuses = list(InsightRun.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert most[0] == 1 and callers == ["insight-runs", "insight-runs"]
    assert not PendingPeriod.objects.exists()

    quarter = Period.containing("quarter", timezone.localdate())
    summary = InsightFact.objects.get(
        period_kind="quarter",
        period_start=quarter.start,
        scope_kind="org",
        dimension=Dimension.SUMMARY,
        source="all",
    )
    assert (summary.deals, summary.lost) == (3, 3)
    viewer = Client()
    viewer.force_login(admin_user)
    page = viewer.get(
        reverse("insights:dashboard"), {"kind": "quarter", "period": quarter.start, "scope": "org"}
    ).content.decode()
    assert '<dt>Closed deals</dt><dd class="stat">3</dd>' in page
    assert "under way" not in page and "waiting to start" not in page


def test_the_thread_waits_for_closes_to_pause_and_does_the_run_once(monkeypatch):
    done = []
    monkeypatch.setattr(services, "LOCAL_QUIET_SECONDS", 0.3)
    monkeypatch.setattr(
        services,
        "insight_run_execute",
        lambda *, run_id, beat: done.append((run_id, time.monotonic())),
    )
    thread = start_in_process(run_id=41, settle=30)
    for _ in range(3):
        time.sleep(0.1)
        start_in_process(run_id=41, settle=30)  # another close: the same queued run
    last = time.monotonic()
    start_in_process(run_id=42)  # "Refresh now" behind it
    thread.join(timeout=10)
    assert [run_id for run_id, _ in done] == [41, 42]
    assert done[0][1] >= last + 0.3 - 0.01  # it waited for the closes to pause


def test_the_thread_starts_a_refresh_by_its_deadline_however_closes_go_on(monkeypatch):
    done = []
    monkeypatch.setattr(services, "LOCAL_QUIET_SECONDS", 10)
    monkeypatch.setattr(
        services, "insight_run_execute", lambda *, run_id, beat: done.append(time.monotonic())
    )
    first = time.monotonic()
    thread = start_in_process(run_id=43, settle=0.4)
    while not done and time.monotonic() < first + 10:
        start_in_process(run_id=43, settle=0.4)
        time.sleep(0.05)
    thread.join(timeout=10)
    assert len(done) == 1 and first + 0.4 <= done[0] < first + 5


def _imports(module: str) -> set[str]:
    """The modules `module` imports anywhere in it (at the top or inside a function)."""
    tree = ast.parse((ROOT / f"{module.replace('.', '/')}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_services_never_import_the_tasks_they_are_called_by():
    assert not {"insights.tasks", "insights.queue"} & _imports("insights.services")
    assert "insights.queue" not in _imports("insights.tasks")
    assert {"insights.services", "insights.tasks"} <= _imports("insights.queue")


def test_a_burst_of_closes_next_to_the_refresh_all_succeed_on_sqlite(tmp_path):
    """
    The embedded default's own database (a SQLite file in WAL mode with a busy timeout, not the
    test database): 20 closes in a row through the close view while the background refresh
    runs next to them (it starts at the first close); none meets "database is locked".
    """
    result_file = tmp_path / "result.json"
    args = [
        *("--base", str(tmp_path / "embedded.sqlite3"), "--tiny"),
        *("--closes", "20", "--warmup", "0", "--quiet", "0", "--reflections", "0"),
        *("--json", str(result_file)),
    ]
    finished = subprocess.run(
        [sys.executable, "-m", "bench.embedded_close", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    assert "locked" not in output
    result = json.loads(result_file.read_text())
    assert result["closes"] == 20
    assert result["closes_beside_a_run"] >= 1, result  # the refresh really ran next to them
    assert result["refresh_statuses"] == ["succeeded"]
    assert result["dashboard_after"] - result["dashboard_before"] == 20
