"""Counting an import in reports, or leaving it out: which reflections switch, and when."""

import pytest
from django.core.exceptions import ValidationError

from imports import services
from imports.models import HistoryImport, ImportStatus
from opportunities.models import Opportunity
from reflections import selectors as reflection_selectors
from reflections import services as reflection_services
from reflections.models import (
    Origin,
    Outcome,
    QuestionKind,
    Reason,
    ReasonSource,
    Reflection,
)

from .conftest import check_and_run, create, salesforce_csv, sf_row


def _imported(world, capture, n=2):
    history_import = create(world, salesforce_csv([sf_row(i) for i in range(1, n + 1)]))
    return check_and_run(world, history_import, capture)


def _answers(prompt_set, outcome):
    reason = Reason.objects.filter(outcome=outcome, active=True).order_by("pk").first()
    return [
        reflection_services.AnswerInput(
            question=q, reason=reason, reason_source=ReasonSource.values[0]
        )
        for q in prompt_set.questions.filter(kind=QuestionKind.PRIMARY_REASON)
    ]


def test_leaving_an_import_out_keeps_a_reflection_written_after_reopening(
    world, rep, django_capture_on_commit_callbacks
):
    done = _imported(world, django_capture_on_commit_callbacks)
    deal = Opportunity.objects.order_by("pk").first()
    reflection_services.opportunity_reopen(actor=rep, opportunity=deal)
    deal.refresh_from_db()
    prompt_set = reflection_selectors.prompt_set_for(Outcome.WON, deal.product.line_id)
    answered = reflection_services.opportunity_close(
        actor=rep,
        opportunity=deal,
        outcome=Outcome.WON,
        prompt_set=prompt_set,
        answers=_answers(prompt_set, Outcome.WON),
    )
    assert answered.origin == Origin.ANSWERED

    services.history_import_set_in_reports(actor=world, history_import=done, in_reports=False)

    answered.refresh_from_db()
    assert answered.in_reports is True
    imported = Reflection.objects.filter(origin=Origin.IMPORTED)
    assert imported.count() == 2
    assert not imported.filter(in_reports=True).exists()


@pytest.mark.parametrize("status", [ImportStatus.CANCELLED, ImportStatus.FAILED])
def test_a_stopped_import_with_deals_can_be_left_out(
    status, world, django_capture_on_commit_callbacks
):
    done = _imported(world, django_capture_on_commit_callbacks)
    HistoryImport.objects.filter(pk=done.pk).update(status=status)
    done.refresh_from_db()

    services.history_import_set_in_reports(actor=world, history_import=done, in_reports=False)

    assert not Reflection.objects.filter(in_reports=True).exists()


@pytest.mark.parametrize(
    "status", [ImportStatus.QUEUED, ImportStatus.RUNNING, ImportStatus.CHECKING]
)
def test_an_import_under_way_cannot_switch(status, world, django_capture_on_commit_callbacks):
    done = _imported(world, django_capture_on_commit_callbacks)
    HistoryImport.objects.filter(pk=done.pk).update(status=status)
    done.refresh_from_db()

    with pytest.raises(ValidationError, match="still under way"):
        services.history_import_set_in_reports(actor=world, history_import=done, in_reports=False)

    done.refresh_from_db()
    assert done.in_reports is True
    assert Reflection.objects.filter(in_reports=True).count() == 2


def test_an_import_without_deals_cannot_switch(world):
    history_import = create(world, salesforce_csv([sf_row(1)]))
    HistoryImport.objects.filter(pk=history_import.pk).update(status=ImportStatus.CANCELLED)

    with pytest.raises(ValidationError, match="no deals"):
        services.history_import_set_in_reports(
            actor=world, history_import=history_import, in_reports=False
        )


@pytest.mark.parametrize("status", [ImportStatus.CANCELLED, ImportStatus.FAILED])
def test_the_page_of_a_stopped_import_with_deals_offers_the_switch(
    status, world, client, django_capture_on_commit_callbacks
):
    done = _imported(world, django_capture_on_commit_callbacks)
    HistoryImport.objects.filter(pk=done.pk).update(status=status)
    client.force_login(world)

    page = client.get(f"/admin/imports/historyimport/{done.pk}/change/")

    assert page.status_code == 200
    assert 'value="Leave this import out of reports"' in page.content.decode()


def test_the_page_of_a_running_import_does_not_offer_the_switch(
    world, client, django_capture_on_commit_callbacks
):
    done = _imported(world, django_capture_on_commit_callbacks)
    HistoryImport.objects.filter(pk=done.pk).update(status=ImportStatus.RUNNING)
    client.force_login(world)

    page = client.get(f"/admin/imports/historyimport/{done.pk}/change/")

    assert "out of reports" not in page.content.decode()
