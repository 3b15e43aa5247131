"""
Imported history in the insights: counted when its import is in reports, left out exactly
when not, told apart on the pages, and heard about through reflections_imported.
"""

import csv
import datetime
import io
from unittest import mock

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from insights import facts as fact_rules
from insights import services, tasks
from insights.models import Dimension, InsightFact, PendingPeriod, ScopeKind
from insights.periods import Period
from opportunities.models import Opportunity
from reflections.models import Answer, Origin, QuestionKind, Reflection
from reflections.signals import reflections_imported
from tests.factories import imported_close
from tests.insights.conftest import Closer

pytestmark = pytest.mark.django_db

# Mid-quarter, so that the quarter before is whole; every date below is built from it.
NOW = datetime.datetime(2026, 5, 21, 12, tzinfo=datetime.UTC)
TODAY = NOW.date()
DAY = TODAY - datetime.timedelta(days=7)  # in this quarter and this month
THIS_QUARTER = Period.containing("quarter", TODAY)
DASHBOARD = reverse("insights:dashboard")
MINE = reverse("insights:my_reflections")


@pytest.fixture(autouse=True)
def _frozen(settings):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 3
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def answered(rep, teammate):
    """Four deals closed in Debrief by team North: 2 won (Product fit), 2 lost (Price)."""
    closer = Closer(rep)
    for owner in (rep, teammate):
        closer.close("won", DAY, "Product fit", owner=owner, text="Won on the demo")
        closer.close("lost", DAY, "Price", owner=owner, text="Bring finance in early")
    return closer


def imported(
    admin, owner, closer, count, *, outcome="lost", reason="Price", closed_date=DAY, **kwargs
):
    return [
        imported_close(
            importer=admin,
            owner=owner,
            outcome=outcome,
            closed_date=closed_date,
            reason=reason,
            company=closer.company,
            product=closer.product,
            **kwargs,
        )
        for _ in range(count)
    ]


def stored() -> dict[tuple, tuple]:
    """Every stored fact: its cell -> its values."""
    return {
        row[: len(fact_rules.UNIQUE_FIELDS)]: row[len(fact_rules.UNIQUE_FIELDS) :]
        for row in InsightFact.objects.values_list(
            *fact_rules.UNIQUE_FIELDS, *fact_rules.VALUE_FIELDS
        )
    }


def summary(scope_kind=ScopeKind.ORG, scope_key="", kind="quarter") -> InsightFact:
    return InsightFact.objects.get(
        period_kind=kind,
        period_start=Period.containing(kind, DAY).start,
        scope_kind=scope_kind,
        scope_key=scope_key,
        dimension=Dimension.SUMMARY,
    )


# --- the rollup --------------------------------------------------------------------------------
def test_an_import_left_out_of_reports_leaves_exactly_the_facts_without_it(
    answered, admin_user, rep, other_rep
):
    imported(admin_user, rep, answered, 3, in_reports=False, outcome="won", reason="Product fit")
    imported(admin_user, other_rep, answered, 2, in_reports=False, reason=None)
    services.insights_rebuild()
    with_import_left_out = stored()

    Opportunity.objects.filter(reflections__origin=Origin.IMPORTED).delete()
    assert Reflection.objects.filter(origin=Origin.IMPORTED).count() == 0
    services.insights_rebuild()
    assert stored() == with_import_left_out
    assert summary().deals == 4 and summary().imported == 0


def test_an_import_in_reports_is_counted_with_its_reasons_and_told_per_slice(
    answered, admin_user, rep, other_rep
):
    imported(admin_user, rep, answered, 3, outcome="won", reason="Product fit")
    imported(admin_user, other_rep, answered, 2, reason=None)  # "Unknown / not sure"
    imported(admin_user, other_rep, answered, 4, in_reports=False)  # left out entirely
    services.insights_rebuild()

    org = summary()
    assert (org.deals, org.won, org.lost, org.imported) == (9, 5, 4, 5)
    assert summary(kind="month").imported == 5
    north = summary(ScopeKind.TEAM, str(rep.team_id))
    south = summary(ScopeKind.TEAM, str(other_rep.team_id))
    assert (north.deals, north.imported) == (7, 3)
    assert (south.deals, south.imported) == (2, 2)
    line = summary(ScopeKind.PRODUCT_LINE, str(answered.product.line_id))
    assert (line.deals, line.imported) == (9, 5)

    reasons = {
        (f.dimension, f.key): f.deals
        for f in InsightFact.objects.filter(
            period_kind="quarter", scope_kind=ScopeKind.ORG, source="all"
        )
    }
    assert reasons[(Dimension.PRIMARY_REASON_WON, str(_reason_id("won", "Product fit")))] == 5
    assert reasons[(Dimension.PRIMARY_REASON_LOST, fact_rules.UNKNOWN_KEY)] == 2
    assert reasons[(Dimension.PRIMARY_REASON_LOST, str(_reason_id("lost", "Price")))] == 2
    # Only summary rows say how many were imported.
    assert not InsightFact.objects.exclude(dimension=Dimension.SUMMARY).filter(imported__gt=0)


def _reason_id(outcome, label):
    from reflections.models import Reason

    return Reason.objects.get(outcome=outcome, label=label).pk


def test_a_refresh_computes_the_same_imported_count_as_a_rebuild(answered, admin_user, rep):
    services.insights_rebuild()
    with transaction.atomic():
        made = imported(admin_user, rep, answered, 3)
        reflections_imported.send(sender=Reflection, dates={r.closed_date for r in made})
    services.insights_refresh_pending()
    refreshed = stored()
    assert summary().imported == 3 and summary().deals == 7
    services.insights_rebuild()
    assert stored() == refreshed


def test_switching_an_import_out_of_reports_and_back_follows_through_refreshes(
    answered, admin_user, rep
):
    made = imported(admin_user, rep, answered, 3)
    services.insights_rebuild()
    assert summary().deals == 7
    dates = {r.closed_date for r in made}

    Reflection.objects.filter(pk__in=[r.pk for r in made]).update(in_reports=False)
    reflections_imported.send(sender=Reflection, dates=dates)
    services.insights_refresh_pending()
    assert (summary().deals, summary().imported) == (4, 0)

    Reflection.objects.filter(pk__in=[r.pk for r in made]).update(in_reports=True)
    reflections_imported.send(sender=Reflection, dates=dates)
    services.insights_refresh_pending()
    assert (summary().deals, summary().imported) == (7, 3)


def test_rows_without_an_origin_still_tally_as_answered():
    """Simulations hand rows in the older shape (without the origin column)."""
    period = Period.containing("quarter", DAY)
    row = (1, DAY, "won", 1, "North", 1, "Payments", "software", None, None, None, "GBP", None)
    computed = fact_rules.facts_from_rows([row], [], periods={"quarter": [period]})["quarter"]
    org = next(f for f in computed if f.scope_kind == "org" and f.dimension == "summary")
    assert (org.deals, org.imported) == (1, 0)


# --- the dashboard and the private page --------------------------------------------------------
def test_dashboard_says_how_many_deals_were_imported(
    rep_client, answered, admin_user, rep, django_assert_num_queries, settings
):
    imported(admin_user, rep, answered, 3)
    services.insights_rebuild()
    params = {"kind": "quarter", "period": THIS_QUARTER.start.isoformat()}
    html = rep_client.get(DASHBOARD, params).content.decode()
    assert (
        "3 of these 7 deals were imported from another CRM; no rep answered their questions."
        in html
    )
    # Quotes are reps' own words: the answered deals' lessons, never the imported ones'.
    assert "Bring finance in early" in html

    # The count comes with the stored summary: no query more than without an import (every
    # table shown both times, so that the same quotes are read).
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    Opportunity.objects.filter(reflections__origin=Origin.IMPORTED).delete()
    services.insights_rebuild()
    rep_client.get(DASHBOARD, params)  # warm the session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as without:
        page = rep_client.get(DASHBOARD, params).content.decode()
    assert "imported from another CRM" not in page
    imported(admin_user, rep, answered, 3)
    services.insights_rebuild()
    with django_assert_num_queries(len(without.captured_queries)):
        rep_client.get(DASHBOARD, params)


def test_summary_csv_says_how_many_deals_were_imported(rep_client, answered, admin_user, rep):
    imported(admin_user, rep, answered, 3)
    services.insights_rebuild()
    params = {"kind": "quarter", "period": THIS_QUARTER.start.isoformat()}
    response = rep_client.get(reverse("insights:export", args=["summary"]), params)
    header, row = list(csv.reader(io.StringIO(response.content.decode())))[:2]
    values = dict(zip(header, row, strict=True))
    assert (values["Closed deals"], values["Imported from another CRM"]) == ("7", "3")


def test_dashboard_wording_when_one_of_the_deals_was_imported(
    rep_client, answered, admin_user, rep
):
    imported(admin_user, rep, answered, 1)
    services.insights_rebuild()
    params = {"kind": "quarter", "period": THIS_QUARTER.start.isoformat()}
    html = rep_client.get(DASHBOARD, params).content.decode()
    assert (
        "1 of these 5 deals was imported from another CRM; no rep answered its questions. "
        "Its main reason was mapped" in html
    )


def test_dashboard_wording_when_every_deal_was_imported(rep_client, admin_user, rep):
    closer = Closer(rep)
    imported(admin_user, rep, closer, 4)
    services.insights_rebuild()
    params = {"kind": "quarter", "period": THIS_QUARTER.start.isoformat()}
    html = rep_client.get(DASHBOARD, params).content.decode()
    assert "All 4 of these deals were imported from another CRM" in html


def test_dashboard_never_quotes_an_imported_reflection(rep_client, answered, admin_user, rep):
    made = imported(admin_user, rep, answered, 3)
    # Even if an import carried free text, it is not a rep's lesson.
    for reflection in made:
        Answer.objects.create(
            reflection=reflection,
            question=reflection.prompt_set.questions.get(kind=QuestionKind.SHORT_TEXT),
            text="Old CRM note: customer went quiet",
        )
    services.insights_rebuild()
    for scope in ("org", f"team:{rep.team_id}"):
        params = {"kind": "quarter", "period": THIS_QUARTER.start.isoformat(), "scope": scope}
        html = rep_client.get(DASHBOARD, params).content.decode()
        assert "Bring finance in early" in html
        assert "Old CRM note" not in html


def test_private_page_tells_the_rep_which_of_their_deals_were_imported(
    rep_client, answered, admin_user, rep
):
    imported(admin_user, rep, answered, 2)
    imported(admin_user, rep, answered, 5, in_reports=False)
    services.insights_rebuild()
    html = rep_client.get(MINE).content.decode()
    # Riley closed 2 deals in Debrief and owns 2 imported ones that are in reports.
    assert "2 of these 4 deals were imported from another CRM; you did not answer" in html


# --- the receiver ------------------------------------------------------------------------------
@pytest.fixture
def apply_async(settings):
    """A deployment with workers: the refresh goes to the broker (mocked here)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with mock.patch.object(tasks.run_insights, "apply_async") as patched:
        yield patched


def marks() -> set[tuple[str, datetime.date]]:
    return set(PendingPeriod.objects.values_list("period_kind", "period_start"))


def expected_marks(dates) -> set[tuple[str, datetime.date]]:
    return {
        (kind, Period.containing(kind, day).start) for day in dates for kind in ("month", "quarter")
    }


def test_an_import_batch_marks_its_periods_and_queues_one_refresh_on_commit(
    apply_async, django_capture_on_commit_callbacks
):
    dates = {DAY, DAY - datetime.timedelta(days=100), DAY - datetime.timedelta(days=101)}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            reflections_imported.send(sender=Reflection, dates=dates)
            # Marked inside the caller's transaction...
            assert marks() == expected_marks(dates)
        # ...and nothing queued before the commit.
        apply_async.assert_not_called()
    assert len(callbacks) >= 1
    apply_async.assert_called_once()


def test_a_rolled_back_batch_marks_nothing_and_queues_nothing(
    apply_async, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        reflections_imported.send(sender=Reflection, dates={DAY})
        raise RuntimeError("row 12: bad amount")
    assert marks() == set() and callbacks == []
    apply_async.assert_not_called()


def test_three_years_of_history_marks_every_period_once(
    apply_async, django_capture_on_commit_callbacks
):
    first = TODAY - datetime.timedelta(days=3 * 365)
    dates = {first + datetime.timedelta(days=i) for i in range(0, 3 * 365, 2)}
    with django_capture_on_commit_callbacks(execute=True):
        reflections_imported.send(sender=Reflection, dates=dates)
    months = {(k, s) for k, s in marks() if k == "month"}
    quarters = {(k, s) for k, s in marks() if k == "quarter"}
    assert marks() == expected_marks(dates)
    assert len(months) >= 36 and len(quarters) >= 12
    apply_async.assert_called_once()


def test_an_empty_batch_marks_and_queues_nothing(apply_async, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        reflections_imported.send(sender=Reflection, dates=set())
    assert marks() == set() and callbacks == []
