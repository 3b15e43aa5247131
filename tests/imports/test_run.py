"""Running an import: mappings, re-imports, suppressions, batches, resuming and cancelling."""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.forms.models import model_to_dict

from imports import engine, selectors, services
from imports.models import HistoryImport, ImportedDeal, MappingAction, ValueMapping
from opportunities.models import Opportunity
from reflections.models import Outcome, Reason, Reflection
from reflections.signals import reflections_imported
from suppressions import services as suppressions_services
from suppressions.models import Suppression

from .conftest import (
    check_and_run,
    create,
    export,
    map_fixture_texts,
    salesforce_csv,
    sf_row,
    start,
)


def _started(admin, history_import, capture):
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "checked", checked.errors
    with capture(execute=False) as callbacks:
        services.history_import_start(actor=admin, history_import=checked)
    assert len(callbacks) == 1  # imports.tasks.run, queued after the commit
    return checked


def test_skip_leaves_those_deals_out(world, sales_ops, django_capture_on_commit_callbacks):
    history_import = create(world, export("salesforce"), default_owner=sales_ops)
    map_fixture_texts(world, history_import)
    services.history_import_save_mappings(
        actor=world,
        history_import=history_import,
        decisions=[services.Decision("reason", "lost", "no budget", MappingAction.SKIP)],
    )
    done = check_and_run(world, history_import, django_capture_on_commit_callbacks)
    assert done.status == "done"
    assert (done.deals_created, done.rows_skipped) == (14, 4)  # 2 open, 2 "No budget"
    assert not ImportedDeal.objects.filter(reason_text__iexact="no budget").exists()


def test_saved_mappings_serve_the_next_file(world, sales_ops, django_capture_on_commit_callbacks):
    first = create(world, export("salesforce"), default_owner=sales_ops)
    map_fixture_texts(world, first)
    check_and_run(world, first, django_capture_on_commit_callbacks)
    saved = ValueMapping.objects.count()

    second = create(
        world, export("hubspot"), preset="hubspot", system="HubSpot", default_owner=sales_ops
    )
    rows = selectors.value_rows(second)
    open_rows = [
        r for r in rows if r.saved is None and not (r.suggestion_action == "map" and r.score == 100)
    ]
    # "Too Expensive", "Price - too high", "No Budget": saved under their normalised text.
    assert [(r.outcome, r.key) for r in open_rows] == [(Outcome.WON, "")]
    assert {r.key for r in rows if r.saved is not None} >= {"too expensive", "price - too high"}
    services.history_import_save_mappings(
        actor=world,
        history_import=second,
        decisions=[services.Decision("reason", Outcome.WON, "", MappingAction.UNKNOWN)],
    )
    assert ValueMapping.objects.count() == saved + 1
    checked = services.history_import_check(history_import=second)
    assert checked.status == "checked", checked.errors


def test_importing_the_same_file_again_creates_nothing(
    world, sales_ops, django_capture_on_commit_callbacks
):
    text = export("salesforce")
    first = create(world, text, default_owner=sales_ops)
    map_fixture_texts(world, first)
    check_and_run(world, first, django_capture_on_commit_callbacks)
    deals, suppressions = Opportunity.objects.count(), Suppression.objects.count()

    again = create(world, text, system=" SALESFORCE ", default_owner=sales_ops)
    checked = services.history_import_check(history_import=again)
    assert (checked.deals_created, checked.deals_existing) == (0, 16)
    assert (checked.companies_created, checked.contacts_created) == (0, 0)
    done = check_and_run(world, again, django_capture_on_commit_callbacks)
    assert (done.status, done.deals_created, done.deals_existing) == ("done", 0, 16)
    assert (done.companies_created, done.contacts_created, done.suppressions_derived) == (0, 0, 0)
    assert Opportunity.objects.count() == deals
    assert Suppression.objects.count() == suppressions
    assert Reflection.objects.count() == deals
    assert selectors.value_rows(done) == []  # the file is gone; the decisions stay saved


# --- suppressions -----------------------------------------------------------------------------


def test_a_close_older_than_the_rules_window_derives_nothing(
    world, frozen_today, django_capture_on_commit_callbacks
):
    # The default lost rule runs 90 days, counting the closing day.
    rows = [sf_row(1, closed_days_ago=90), sf_row(2, closed_days_ago=400)]
    done = check_and_run(
        world, create(world, salesforce_csv(rows)), django_capture_on_commit_callbacks
    )
    assert done.deals_created == 2
    assert done.suppressions_derived == 0
    assert Suppression.objects.count() == 0


@pytest.mark.parametrize(
    ("stage", "days_ago"),
    [("Closed Lost", 89), ("Closed Won", 100), ("Closed - No Decision", 3)],
)
def test_a_close_inside_the_window_derives_what_closing_then_would_have(
    stage, days_ago, world, frozen_today, django_capture_on_commit_callbacks
):
    reason = {"Closed Lost": "Price", "Closed Won": "Price", "Closed - No Decision": "Timing"}
    row = sf_row(1, closed_days_ago=days_ago, Stage=stage, **{"Win/Loss Reason": reason[stage]})
    done = check_and_run(
        world, create(world, salesforce_csv([row])), django_capture_on_commit_callbacks
    )
    deal = Opportunity.objects.get()
    imported = [_fields(s) for s in Suppression.objects.filter(source_opportunity=deal)]
    assert done.suppressions_derived == len(imported) == 1
    assert imported[0]["starts_on"] == frozen_today - datetime.timedelta(days=days_ago)

    Suppression.objects.all().delete()
    suppressions_services.derive_for_close(
        opportunity=deal, outcome=deal.stage, closed_on=deal.closed_date
    )
    closed_then = [_fields(s) for s in Suppression.objects.filter(source_opportunity=deal)]
    assert imported == closed_then


def _fields(s: Suppression) -> dict:
    return {k: v for k, v in model_to_dict(s).items() if k not in ("id", "created_at")}


def test_derive_for_history_matches_derive_for_close_for_every_rule(defaults, frozen_today):
    from tests.factories import OpportunityFactory

    closes = []
    for outcome, days_ago in (("lost", 10), ("won", 170), ("no_decision", 29), ("lost", 95)):
        closed_on = frozen_today - datetime.timedelta(days=days_ago)
        deal = OpportunityFactory(stage=outcome, closed_date=closed_on)
        closes.append((deal, outcome, closed_on))
    derived = suppressions_services.derive_for_history(closes)
    assert len(derived) == 3  # the lost close of 95 days ago is over
    by_deal = {s.source_opportunity_id: _fields(s) for s in derived}
    Suppression.objects.all().delete()
    for deal, outcome, closed_on in closes[:3]:
        (made,) = suppressions_services.derive_for_close(
            opportunity=deal, outcome=outcome, closed_on=closed_on
        )
        assert _fields(made) == by_deal[deal.pk]


# --- batches, resuming, cancelling ------------------------------------------------------------


@pytest.fixture
def small_batches(settings):
    settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = 5
    settings.DEBRIEF_IMPORT_BATCH_ROWS = 4


def _ten_rows(world):
    return create(world, salesforce_csv([sf_row(n) for n in range(1, 11)]))


def test_a_large_file_is_imported_in_batches_with_progress(
    world, small_batches, django_capture_on_commit_callbacks
):
    progress = []
    real = engine.write_batch

    def watching(ctx, deals, **kwargs):
        progress.append(HistoryImport.objects.get(pk=ctx.history_import.pk).rows_done)
        return real(ctx, deals, **kwargs)

    def heard(sender, dates: set, **kwargs):
        progress.append(("signal", len(dates)))

    reflections_imported.connect(heard, dispatch_uid="test-batches")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine, "write_batch", watching)
            done = check_and_run(world, _ten_rows(world), django_capture_on_commit_callbacks)
    finally:
        reflections_imported.disconnect(dispatch_uid="test-batches")
    assert done.status == "done"
    assert progress == [0, ("signal", 1), 4, ("signal", 1), 8, ("signal", 1)]
    assert (done.rows_done, done.deals_created) == (10, 10)
    assert done.heartbeat_at is not None and done.finished_at is not None


def test_a_failed_batch_keeps_the_ones_before_and_the_job_resumes(
    world, small_batches, django_capture_on_commit_callbacks
):
    real = engine.write_batch
    calls = []

    def failing_second(ctx, deals, **kwargs):
        calls.append(len(deals))
        result = real(ctx, deals, **kwargs)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return result

    history_import = _started(world, _ten_rows(world), django_capture_on_commit_callbacks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "write_batch", failing_second)
        failed = services.history_import_run(import_id=history_import.pk)
    assert failed.status == "failed"
    assert failed.rows_done == 4
    assert failed.deals_created == 4
    assert "unexpected error (RuntimeError)" in failed.errors[0]["message"]
    assert Opportunity.objects.count() == 4  # batch 2 rolled back whole
    assert Reflection.objects.count() == 4
    assert failed.file, "kept for the resumption"

    resumed = services.history_import_run(import_id=history_import.pk)
    assert resumed.status == "done"
    assert (resumed.rows_done, resumed.deals_created, resumed.deals_existing) == (10, 10, 0)
    assert resumed.errors == []
    assert Opportunity.objects.count() == 10
    assert ImportedDeal.objects.values("external_id").distinct().count() == 10


def test_a_stopped_import_checked_again_resumes_with_its_counts(
    world, small_batches, django_capture_on_commit_callbacks
):
    real = engine.write_batch

    def failing_second(ctx, deals, **kwargs):
        if HistoryImport.objects.get(pk=ctx.history_import.pk).rows_done == 4:
            raise RuntimeError("disk full")
        return real(ctx, deals, **kwargs)

    history_import = _started(world, _ten_rows(world), django_capture_on_commit_callbacks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "write_batch", failing_second)
        services.history_import_run(import_id=history_import.pk)
    rechecked = services.history_import_check(history_import=history_import)
    assert rechecked.status == "checked"
    assert (rechecked.rows_done, rechecked.deals_created) == (4, 4)  # what was imported
    done = start(world, rechecked, django_capture_on_commit_callbacks)
    assert (done.status, done.rows_done, done.deals_created) == ("done", 10, 10)
    assert Opportunity.objects.count() == 10


def test_a_repeated_batch_creates_nothing(world, small_batches, django_capture_on_commit_callbacks):
    text = salesforce_csv([sf_row(n) for n in range(1, 11)])
    done = check_and_run(world, create(world, text), django_capture_on_commit_callbacks)
    # As if the worker had died after committing every batch but recording only the first.
    done.file.save("again.csv", ContentFile(text.encode()), save=False)
    HistoryImport.objects.filter(pk=done.pk).update(
        status="queued", rows_done=4, deals_created=4, file=done.file.name
    )
    rerun = services.history_import_run(import_id=done.pk)
    assert rerun.status == "done"
    assert (rerun.deals_created, rerun.deals_existing) == (4, 6)
    assert Opportunity.objects.count() == 10


def test_cancelling_stops_after_the_current_batch(
    world, small_batches, django_capture_on_commit_callbacks
):
    real = engine.write_batch

    def cancel_during_first(ctx, deals, **kwargs):
        result = real(ctx, deals, **kwargs)
        hi = HistoryImport.objects.get(pk=ctx.history_import.pk)
        if hi.rows_done == 0:
            services.history_import_cancel(actor=world, history_import=hi)
        return result

    history_import = _started(world, _ten_rows(world), django_capture_on_commit_callbacks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "write_batch", cancel_during_first)
        with django_capture_on_commit_callbacks(execute=True):
            stopped = services.history_import_run(import_id=history_import.pk)
    stopped.refresh_from_db()
    assert stopped.status == "cancelled"
    assert stopped.rows_done == 4
    assert Opportunity.objects.count() == 4
    assert not stopped.file


def test_a_cancelled_import_never_runs(world, django_capture_on_commit_callbacks):
    history_import = _started(world, _ten_rows(world), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.history_import_cancel(actor=world, history_import=history_import)
    assert services.history_import_run(import_id=history_import.pk).status == "cancelled"
    assert Opportunity.objects.count() == 0
    with pytest.raises(ValidationError):
        services.history_import_start(actor=world, history_import=history_import)


def test_a_finished_import_cannot_be_cancelled(world, django_capture_on_commit_callbacks):
    done = check_and_run(world, _ten_rows(world), django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="leave it out of reports"):
        services.history_import_cancel(actor=world, history_import=done)


def test_a_mapping_edited_after_the_dry_run_makes_start_refuse(
    world, django_capture_on_commit_callbacks
):
    rows = [sf_row(1, **{"Win/Loss Reason": "too pricey"})]
    history_import = create(world, salesforce_csv(rows))
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    budget = Reason.objects.get(outcome=Outcome.LOST, label="Budget")

    def decide(reason):
        services.history_import_save_mappings(
            actor=world,
            history_import=history_import,
            decisions=[services.Decision("reason", "lost", "too pricey", "map", reason.pk)],
        )

    decide(price)
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "checked"
    decide(budget)
    with pytest.raises(ValidationError, match="Something changed since the check"):
        services.history_import_start(actor=world, history_import=checked)
    assert HistoryImport.objects.get().status == "checked"
    assert Opportunity.objects.count() == 0

    rechecked = services.history_import_check(history_import=checked)
    start(world, rechecked, django_capture_on_commit_callbacks)
    answer = Reflection.objects.get().answers.get(question__kind="primary_reason")
    assert answer.reason == budget


def test_changed_columns_ask_for_another_check(world):
    history_import = create(world, salesforce_csv([sf_row(1)]))
    checked = services.history_import_check(history_import=history_import)
    services.history_import_set_columns(
        history_import=checked, columns={**checked.columns, "title": "Account Name"}
    )
    with pytest.raises(ValidationError, match="Run the check first"):
        services.history_import_start(actor=world, history_import=checked)


def test_only_admins_start_an_import(world, rep):
    checked = services.history_import_check(
        history_import=create(world, salesforce_csv([sf_row(1)]))
    )
    with pytest.raises(PermissionDenied):
        services.history_import_start(actor=rep, history_import=checked)


@pytest.mark.parametrize("size", [10, 60])
def test_the_runs_queries_do_not_grow_with_rows(
    size, world, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    rows = [sf_row(n, **{"Main Competitor(s)": f"Rival {n % 4}"}) for n in range(1, size + 1)]
    history_import = _started(
        world, create(world, salesforce_csv(rows)), django_capture_on_commit_callbacks
    )
    with django_assert_max_num_queries(40):
        done = services.history_import_run(import_id=history_import.pk)
    assert done.deals_created == size
    assert (done.companies_created, done.contacts_created) == (min(size, 50), size)


def test_leaving_an_import_out_of_reports(world, django_capture_on_commit_callbacks):
    done = check_and_run(world, _ten_rows(world), django_capture_on_commit_callbacks)
    heard = []

    def on_imported(sender, dates, **kwargs):
        heard.append(dates)

    reflections_imported.connect(on_imported, dispatch_uid="test-in-reports")
    try:
        services.history_import_set_in_reports(actor=world, history_import=done, in_reports=False)
    finally:
        reflections_imported.disconnect(dispatch_uid="test-in-reports")
    assert Reflection.objects.filter(in_reports=True).count() == 0
    assert HistoryImport.objects.get().in_reports is False
    assert heard == [set(Reflection.objects.values_list("closed_date", flat=True))]


def test_the_task_runs_a_queued_import(world, django_capture_on_commit_callbacks):
    from imports import tasks

    history_import = _started(world, _ten_rows(world), django_capture_on_commit_callbacks)
    assert tasks.run(history_import.pk) == "done"
    assert tasks.run(history_import.pk) == "done"  # a redelivered task finds nothing to do
    assert Opportunity.objects.count() == 10
    assert tasks.run(history_import.pk + 1000) == "missing"


def test_only_admins_see_imports(world, rep, manager):
    create(world, salesforce_csv([sf_row(1)]))
    assert selectors.history_imports_visible_to(world).count() == 1
    assert selectors.history_imports_visible_to(rep).count() == 0
    assert selectors.history_imports_visible_to(manager).count() == 0
