"""
The benchmark harness (`make bench`) in its smoke mode: seed_demo's steps at a tiny scale on the
test database and two timed runs of every measurement, so that the harness cannot rot while the
apps change under it. It asserts the shape of results.json, never a time: timings belong to
`make bench` on the large set, and the test suite keeps query-count budgets instead.
"""

import json

import pytest

from accounts.models import Role, User
from bench import seed
from bench.floor import page_rows
from bench.run import execute, format_table
from bench.suite import Plan
from opportunities import selectors
from opportunities.models import OPEN_STAGES

MEASUREMENTS = {
    "pipeline_first_page",
    "pipeline_first_page_manager",
    "pipeline_deep_page",
    "pipeline_deep_page_manager",
    "pipeline_filtered",
    "pipeline_filtered_manager",
    "pipeline_search_manager",
    "pipeline_floor",
    "pipeline_floor_manager",
    "company_page",
    "company_page_manager",
    "company_page_uncached",
    "close_with_reflection_post",
    "suppression_check_single",
    "calllist_check_100k",
    "insights_rebuild_full",
    "insights_refresh_incremental",
}
KEYS = {"name", "median_ms", "p95_ms", "queries", "target_ms", "peak_rss_mb", "pass"}


@pytest.fixture
def tiny_demo(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    seed.seed_tiny(log=lambda message: None)


def test_smoke_run_writes_every_measurement(tiny_demo, tmp_path, django_assert_num_queries):
    output = tmp_path / "results.json"

    rows = execute(Plan.smoke(2), output=output, log=lambda message: None)

    written = json.loads(output.read_text())
    assert written == rows
    assert {row["name"] for row in written} == MEASUREMENTS
    for row in written:
        assert row.keys() >= KEYS, row["name"]
        assert row["iterations"] >= 1, row["name"]
        assert row["median_ms"] > 0 and row["p95_ms"] >= row["median_ms"], row["name"]
        assert isinstance(row["queries"], int) and row["queries"] > 0, row["name"]
    by_name = {row["name"]: row for row in written}
    assert by_name["pipeline_first_page"]["target_ms"] == 50
    assert by_name["pipeline_first_page"]["floor_ratio"] > 0
    assert by_name["pipeline_first_page"]["target_ratio"] == 2.0
    calls = by_name["calllist_check_100k"]
    assert calls["target_ms"] == 3000 and calls["target_rss_growth_mb"] == 150
    assert calls["peak_rss_mb"] > 0 and calls["rss_growth_mb"] is not None

    assert by_name["pipeline_first_page"]["iterations"] == 2

    # The floor shows the same rows as the pipeline's first page, fetched in one query.
    rep = User.objects.filter(role=Role.REP, opportunities__isnull=False).order_by("id").first()
    with django_assert_num_queries(1):
        rows, count = page_rows(rep)
    expected = selectors.pipeline_for(rep).filter(stage__in=OPEN_STAGES)
    assert [row["id"] for row in rows] == list(
        expected.order_by("expected_close_date", "id").values_list("id", flat=True)[:25]
    )
    assert count == expected.count()


def test_table_names_each_measurement_and_marks_misses():
    rows = [
        {"name": "fast", "median_ms": 1.0, "p95_ms": 2.0, "queries": 3, "target_ms": 5,
         "peak_rss_mb": None, "pass": True},
        {"name": "slow", "median_ms": 9.0, "p95_ms": 9.5, "queries": 3, "target_ms": 5,
         "peak_rss_mb": None, "pass": False},
    ]  # fmt: skip

    table = format_table(rows)

    assert "fast" in table and "slow" in table and "MISS" in table
