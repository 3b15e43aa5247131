"""
The benchmark harness (`make bench`) in its smoke mode: seed_demo's steps at a tiny scale on the
test database and two timed runs of every measurement, so that the harness cannot rot while the
apps change under it. It asserts the shape of results.json, never a time: timings belong to
`make bench` on the large set, and the test suite keeps query-count budgets instead.
"""

import json
from decimal import Decimal

import pytest
from django.db.models import Count
from django.utils import timezone

from accounts.models import Role, User
from bench import seed
from bench.floor import Pipeline, company_rows, insight_rows, page_rows
from bench.run import execute, format_table
from bench.suite import Plan
from customers.models import Company
from insights.models import Dimension, InsightFact, PeriodKind, ScopeKind
from insights.periods import Period
from opportunities import selectors
from opportunities.models import OPEN_STAGES

PIPELINE = {
    "pipeline_first_page",
    "pipeline_first_page_manager",
    "pipeline_deep_page",
    "pipeline_deep_page_manager",
    "pipeline_filtered",
    "pipeline_filtered_manager",
    "pipeline_search_manager",
}
DASHBOARD = {
    f"insights_dashboard_{scope}_{kind}{who}"
    for scope in ("org", "team")
    for kind in ("quarter", "month")
    for who in ("", "_manager")
}
PAGES = PIPELINE | DASHBOARD | {"company_page", "company_page_manager", "company_page_uncached"}
JOBS = {
    "close_with_reflection_post",
    "suppression_check_single",
    "calllist_check_100k",
    "insights_rebuild_full",
    "insights_refresh_incremental",
}
MEASUREMENTS = PAGES | JOBS
KEYS = {"name", "median_ms", "p95_ms", "queries", "target_ms", "peak_rss_mb", "pass"}
FLOOR_KEYS = {"floor_url", "floor_median_ms", "floor_p95_ms", "floor_queries", "floor_ratio"}


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
    # Every page carries its floor, measured as often as the page; the pipeline's ratio has
    # the target, the others are reported without one.
    for name in PAGES:
        row = by_name[name]
        assert row.keys() >= FLOOR_KEYS, name
        assert row["floor_url"].startswith("/bench/floor/"), name
        assert row["floor_median_ms"] > 0 and row["floor_p95_ms"] >= row["floor_median_ms"]
        assert row["floor_ratio"] == pytest.approx(
            row["median_ms"] / row["floor_median_ms"], rel=0.01
        ), name
        assert isinstance(row["floor_queries"], int), name
        # Never more than the page: a pipeline page with no open deals to flag makes as few
        # queries as its floor (session, user, the rows with their count).
        assert 0 < row["floor_queries"] <= row["queries"], name
        assert row["target_ratio"] == (1.5 if name in PIPELINE else None), name
        assert "no_floor" not in row, name
    for name in JOBS:
        assert by_name[name]["floor_ratio"] is None and by_name[name]["no_floor"], name
    for name in DASHBOARD:
        row = by_name[name]
        assert row["target_ms"] == 60, name
        assert row["url"].startswith("/insights/?kind="), name
        assert row["floor_url"].split("?")[1] == row["url"].split("?")[1], name
    assert "scope=team:" in by_name["insights_dashboard_team_month_manager"]["url"]
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

    # So do its variants: a deep page, filtered, searched.
    ordered = expected.order_by("expected_close_date", "id")
    tenth = ordered[10]
    rows, count = page_rows(rep, Pipeline(after=(tenth.expected_close_date, tenth.pk)))
    assert [row["id"] for row in rows] == list(ordered.values_list("id", flat=True)[11:36])
    assert count == expected.count()
    line = rep.opportunities.values_list("product__line_id", flat=True).first()
    rows, count = page_rows(rep, Pipeline(line=line, amount_min=Decimal(20000), by_amount=True))
    narrowed = expected.filter(product__line_id=line, amount_reporting__gte=20000)
    assert [row["id"] for row in rows] == list(
        narrowed.order_by("-amount_reporting", "-id").values_list("id", flat=True)[:25]
    )
    assert count == narrowed.count()
    word = rep.opportunities.values_list("company__name", flat=True).first().split()[0]
    rows, count = page_rows(rep, Pipeline(status="all", q=word.lower()))
    found = selectors.pipeline_for(rep).filter(company__name__icontains=word) | (
        selectors.pipeline_for(rep).filter(title__icontains=word)
    )
    assert count == found.count() > 0
    assert {row["id"] for row in rows} <= set(found.values_list("id", flat=True))

    # The company floor reads every section in one query.
    company = Company.objects.annotate(n=Count("opportunities")).order_by("-n", "id").first()
    with django_assert_num_queries(1):
        sections = company_rows(rep, company.pk)
    assert [row["a"] for row in sections["company"]] == [company.name]
    assert {row["id"] for row in sections.get("open", [])} == set(
        selectors.opportunities_visible_to(rep)
        .filter(company=company, stage__in=OPEN_STAGES)
        .values_list("id", flat=True)
    )
    assert (
        sum(row["id"] for row in sections["outcome"])
        == company.opportunities.exclude(stage__in=OPEN_STAGES).count()
    )
    assert len(sections["contact"]) == company.contacts.count()

    # The dashboard's floor reads the period's facts and its trend's summaries in one query
    # (the suite's rebuild stored them).
    period = Period.containing(PeriodKind.QUARTER, timezone.localdate())
    stored = InsightFact.objects.filter(
        period_kind=PeriodKind.QUARTER, scope_kind=ScopeKind.ORG, scope_key=""
    )
    assert stored.filter(period_start=period.start).exists()
    with django_assert_num_queries(1):
        facts = insight_rows(PeriodKind.QUARTER, period, ScopeKind.ORG, "")
    trend_starts = [period.shift(-i).start for i in range(1, 8)]
    assert len(facts) == (
        stored.filter(period_start=period.start).count()
        + stored.filter(dimension=Dimension.SUMMARY, period_start__in=trend_starts).count()
    )
    assert {str(row["period_start"]) for row in facts} <= {
        day.isoformat() for day in [period.start, *trend_starts]
    }


def test_table_names_each_measurement_and_marks_misses():
    rows = [
        {"name": "fast", "median_ms": 1.0, "p95_ms": 2.0, "queries": 3, "target_ms": 5,
         "peak_rss_mb": None, "pass": True},
        {"name": "slow", "median_ms": 9.0, "p95_ms": 9.5, "queries": 3, "target_ms": 5,
         "peak_rss_mb": None, "pass": False},
    ]  # fmt: skip

    table = format_table(rows)

    assert "fast" in table and "slow" in table and "MISS" in table


def test_table_puts_the_ratio_to_the_floor_first_and_says_which_rows_have_none():
    rows = [
        {"name": "a_page", "median_ms": 12.0, "p95_ms": 14.0, "queries": 4, "target_ms": 50,
         "peak_rss_mb": None, "pass": True, "floor_median_ms": 8.0, "floor_queries": 3,
         "floor_ratio": 1.5, "target_ratio": 1.5},
        {"name": "a_job", "median_ms": 900.0, "p95_ms": 950.0, "queries": 11,
         "target_ms": 1000, "peak_rss_mb": None, "pass": True, "floor_ratio": None,
         "no_floor": "a background job, no page"},
    ]  # fmt: skip

    lines = format_table(rows).splitlines()

    header = lines[0].split()
    assert header[:5] == ["measurement", "x", "floor", "target", "x"]
    page = lines[2].split()
    assert page[:6] == ["a_page", "1.50x", "1.5x", "12.00", "8.00", "14.00"]
    assert "4 / 3" in lines[2]
    assert lines[3].split()[:3] == ["a_job", "none", "-"]
    assert "  a_job: a background job, no page" in lines
