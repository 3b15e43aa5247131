import datetime
import threading
from unittest import mock

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from opportunities.models import Opportunity, Stage, StageChange
from reflections import selectors, services, signals
from reflections.forms import ReflectionForm
from reflections.models import (
    Answer,
    Outcome,
    PromptSet,
    Question,
    QuestionKind,
    Reason,
    Reflection,
    ReflectionRevision,
)
from tests.factories import OpportunityFactory, ProductLineFactory
from tests.reflections.conftest import lost_answers, question

pytestmark = pytest.mark.django_db


def close(actor, deal, data, outcome=Outcome.LOST):
    prompt_set = selectors.prompt_set_for(outcome, deal.product.line_id)
    form = ReflectionForm(data, prompt_set=prompt_set, outcome=outcome)
    assert form.is_valid(), form.errors
    return services.opportunity_close(
        actor=actor,
        opportunity=deal,
        outcome=outcome,
        prompt_set=prompt_set,
        answers=form.answers(),
    )


def test_most_specific_prompt_set_wins(lost_set):
    line = ProductLineFactory(name="Payments")
    other = ProductLineFactory(name="Analytics")
    specific = PromptSet.objects.create(
        family="payments-lost", name="Payments losses", outcome=Outcome.LOST, product_line=line
    )
    assert selectors.prompt_set_for(Outcome.LOST, line.pk) == specific
    assert selectors.prompt_set_for(Outcome.LOST, other.pk) == lost_set
    assert selectors.prompt_set_for(Outcome.WON, line.pk).family == "default-won"


def test_default_lost_set_is_short_with_pick_lists_first(lost_set):
    kinds = list(lost_set.questions.values_list("kind", flat=True))
    assert len(kinds) <= 6
    assert kinds[-1] == QuestionKind.SHORT_TEXT
    assert lost_set.questions.get(kind=QuestionKind.SHORT_TEXT).label == (
        "What would you do differently?"
    )


def test_close_saves_stage_reflection_answers_in_one_go(rep, lost_set, competitor):
    deal = OpportunityFactory(owner=rep, stage=Stage.NEGOTIATION)
    reflection = close(rep, deal, lost_answers(lost_set, competitor))
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST and deal.closed_date == timezone.localdate()
    assert deal.primary_competitor == competitor
    assert reflection.current and reflection.author == rep and reflection.prompt_set == lost_set
    primary = reflection.answers.get(question__kind=QuestionKind.PRIMARY_REASON)
    assert primary.reason.label == "Price" and primary.reason_source == "customer"
    assert reflection.answers.get(question__kind=QuestionKind.SHORT_TEXT).text == (
        "Bring finance in earlier."
    )
    assert StageChange.objects.filter(opportunity=deal, to_stage=Stage.LOST).exists()
    lost_set.refresh_from_db()
    assert lost_set.is_frozen


def test_close_sends_reflection_submitted(rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    received = []

    def receiver(sender, reflection, **kwargs):
        received.append(reflection)

    signals.reflection_submitted.connect(receiver, dispatch_uid="test-close-signal")
    try:
        reflection = close(rep, deal, lost_answers(lost_set))
    finally:
        signals.reflection_submitted.disconnect(dispatch_uid="test-close-signal")
    assert received == [reflection]


def test_required_answers_are_enforced_by_the_service_too(rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    text = question(lost_set, QuestionKind.SHORT_TEXT)
    with pytest.raises(ValidationError) as exc:
        services.opportunity_close(
            actor=rep,
            opportunity=deal,
            outcome=Outcome.LOST,
            prompt_set=lost_set,
            answers=[services.AnswerInput(question=text, text="Only this")],
        )
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    assert exc.value.message_dict[f"q_{primary.pk}"] == ["This question needs an answer."]
    deal.refresh_from_db()
    assert deal.is_open and not Reflection.objects.exists()


def test_a_failure_in_the_middle_of_closing_leaves_the_deal_open(rep, lost_set):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    with (
        mock.patch.object(Answer.objects, "bulk_create", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        close(rep, deal, lost_answers(lost_set))
    deal.refresh_from_db()
    assert deal.stage == Stage.PROPOSAL and deal.closed_date is None
    assert not Reflection.objects.exists() and not StageChange.objects.exists()
    lost_set.refresh_from_db()
    assert not lost_set.is_frozen


def test_closing_twice_is_refused(rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    close(rep, deal, lost_answers(lost_set))
    with pytest.raises(ValidationError, match="already closed"):
        close(rep, deal, lost_answers(lost_set))
    assert Reflection.objects.count() == 1


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_double_close_gives_exactly_one_reflection(rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    barrier = threading.Barrier(2)
    outcomes = []

    def submit():
        try:
            barrier.wait(timeout=5)
            close(rep, Opportunity.objects.get(pk=deal.pk), lost_answers(lost_set))
            outcomes.append("closed")
        except ValidationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(outcomes) == ["already_closed", "closed"]
    assert Reflection.objects.filter(opportunity=deal).count() == 1
    assert StageChange.objects.filter(opportunity=deal, to_stage=Stage.LOST).count() == 1


def test_rep_cannot_close_a_teammates_deal(rep, teammate, lost_set):
    deal = OpportunityFactory(owner=teammate)
    with pytest.raises(PermissionDenied):
        close(rep, deal, lost_answers(lost_set))
    assert not Reflection.objects.exists()


def test_manager_can_close_a_team_deal(manager, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    assert close(manager, deal, lost_answers(lost_set)).author == manager


def test_a_stale_prompt_set_is_refused_with_a_clear_message(rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    form = ReflectionForm(lost_answers(lost_set), prompt_set=lost_set, outcome=Outcome.LOST)
    assert form.is_valid()
    services.prompt_set_revise(prompt_set=lost_set)
    with pytest.raises(ValidationError, match="questions for this outcome changed"):
        services.opportunity_close(
            actor=rep,
            opportunity=deal,
            outcome=Outcome.LOST,
            prompt_set=lost_set,
            answers=form.answers(),
        )


def test_versioning_keeps_old_reflections_intact_after_an_edit(rep, lost_set):
    old = close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    new_set = services.prompt_set_revise(prompt_set=lost_set)
    Question.objects.filter(prompt_set=new_set, kind=QuestionKind.SHORT_TEXT).update(
        label="What is the one lesson here?"
    )
    lost_set.refresh_from_db()
    assert not lost_set.active and new_set.active and new_set.version == 2
    assert selectors.prompt_set_for(Outcome.LOST, None) == new_set
    old.refresh_from_db()
    labels = [a.question.label for a in selectors.reflections_of(old.opportunity)[0].answers.all()]
    assert "What would you do differently?" in labels
    assert "What is the one lesson here?" not in labels
    fresh = close(rep, OpportunityFactory(owner=rep), lost_answers(new_set))
    assert fresh.prompt_set == new_set


def test_only_the_latest_version_can_be_revised(lost_set):
    services.prompt_set_revise(prompt_set=lost_set)
    with pytest.raises(ValidationError, match="newer"):
        services.prompt_set_revise(prompt_set=lost_set)


# --- form-level bad input: clear error, nothing saved --------------------------------------


def _form(lost_set, data):
    return ReflectionForm(data, prompt_set=lost_set, outcome=Outcome.LOST)


def test_unknown_reason_id_is_a_clear_error(lost_set):
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    form = _form(lost_set, lost_answers(lost_set, **{f"q_{primary.pk}": "999999"}))
    assert not form.is_valid()
    assert "Select a valid choice" in form.errors[f"q_{primary.pk}"][0]


def test_a_reason_of_the_wrong_outcome_is_refused(lost_set):
    won_reason = Reason.objects.filter(outcome=Outcome.WON).first()
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    form = _form(lost_set, lost_answers(lost_set, **{f"q_{primary.pk}": str(won_reason.pk)}))
    assert not form.is_valid() and f"q_{primary.pk}" in form.errors


def test_scale_outside_1_to_5_is_refused(rep):
    no_decision = selectors.prompt_set_for(Outcome.NO_DECISION, None)
    scale = question(no_decision, QuestionKind.SCALE)
    form = ReflectionForm({f"q_{scale.pk}": "9"}, prompt_set=no_decision, outcome="no_decision")
    assert not form.is_valid()
    assert "Select a valid choice" in form.errors[f"q_{scale.pk}"][0]


def test_empty_required_text_is_refused(lost_set):
    text = question(lost_set, QuestionKind.SHORT_TEXT)
    form = _form(lost_set, lost_answers(lost_set, **{f"q_{text.pk}": "   "}))
    assert not form.is_valid()
    assert form.errors[f"q_{text.pk}"] == ["This question needs an answer."]


def test_a_question_id_from_another_prompt_set_is_refused(lost_set):
    won_question = selectors.prompt_set_for(Outcome.WON, None).questions.first()
    form = _form(lost_set, lost_answers(lost_set, **{f"q_{won_question.pk}": "x"}))
    assert not form.is_valid()
    assert "not part of it" in form.non_field_errors()[0]


def test_primary_reason_needs_its_source_unless_unknown(lost_set):
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    form = _form(lost_set, lost_answers(lost_set, **{f"q_{primary.pk}_source": ""}))
    assert not form.is_valid() and f"q_{primary.pk}_source" in form.errors
    form = _form(
        lost_set,
        lost_answers(lost_set, **{f"q_{primary.pk}": "unknown", f"q_{primary.pk}_source": ""}),
    )
    assert form.is_valid(), form.errors


def test_unknown_not_sure_is_recorded_honestly(rep, lost_set):
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    reflection = close(
        rep, OpportunityFactory(owner=rep), lost_answers(lost_set, **{f"q_{primary.pk}": "unknown"})
    )
    answer = reflection.answers.get(question=primary)
    assert (
        answer.is_unknown
        and answer.reason is None
        and answer.display_value == ("Unknown / not sure")
    )


def test_service_refuses_retired_reason_even_without_the_form(rep, lost_set):
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    retired = Reason.objects.create(outcome=Outcome.LOST, label="Old reason", active=False)
    with pytest.raises(ValidationError):
        services.opportunity_close(
            actor=rep,
            opportunity=OpportunityFactory(owner=rep),
            outcome=Outcome.LOST,
            prompt_set=lost_set,
            answers=[
                services.AnswerInput(question=primary, reason=retired, reason_source="rep"),
                services.AnswerInput(
                    question=question(lost_set, QuestionKind.SHORT_TEXT), text="x"
                ),
            ],
        )
    assert not Reflection.objects.exists()


# --- reopen and amend ------------------------------------------------------------------------


def test_reopen_returns_to_last_open_stage_and_keeps_reflection_in_history(rep, lost_set):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    StageChange.objects.create(
        opportunity=deal, from_stage=Stage.QUALIFICATION, to_stage=Stage.PROPOSAL, changed_by=rep
    )
    first = close(rep, deal, lost_answers(lost_set))
    services.opportunity_reopen(actor=rep, opportunity=deal)
    deal.refresh_from_db()
    first.refresh_from_db()
    assert deal.stage == Stage.PROPOSAL and deal.closed_date is None
    assert not first.current
    second = close(rep, deal, lost_answers(lost_set))
    assert second.current and Reflection.objects.filter(opportunity=deal).count() == 2


def test_reopen_by_other_teams_manager_is_refused(other_manager, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    close(rep, deal, lost_answers(lost_set))
    with pytest.raises(PermissionDenied):
        services.opportunity_reopen(actor=other_manager, opportunity=deal)


def test_author_amends_within_the_window_and_the_old_version_is_kept(rep, lost_set):
    reflection = close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    text = question(lost_set, QuestionKind.SHORT_TEXT)
    form = _form(lost_set, lost_answers(lost_set, **{f"q_{text.pk}": "Qualify budget first."}))
    assert form.is_valid()
    services.reflection_amend(actor=rep, reflection=reflection, answers=form.answers())
    reflection.refresh_from_db()
    assert reflection.edited_at is not None
    assert reflection.answers.get(question=text).text == "Qualify budget first."
    revision = ReflectionRevision.objects.get(reflection=reflection)
    assert {"question_id": text.pk, "question": text.label}.items() <= next(
        r for r in revision.answers if r["question_id"] == text.pk
    ).items()
    assert any(r["answer"] == "Bring finance in earlier." for r in revision.answers)


def test_amend_is_refused_after_the_window(rep, lost_set, settings):
    reflection = close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    later = timezone.now() + datetime.timedelta(days=settings.DEBRIEF_REFLECTION_EDIT_DAYS, hours=1)
    form = _form(lost_set, lost_answers(lost_set))
    assert form.is_valid()
    with time_machine.travel(later), pytest.raises(ValidationError, match="14 days"):
        services.reflection_amend(actor=rep, reflection=reflection, answers=form.answers())
    assert not ReflectionRevision.objects.exists()


def test_only_the_author_amends(rep, manager, lost_set):
    reflection = close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    form = _form(lost_set, lost_answers(lost_set))
    assert form.is_valid()
    with pytest.raises(PermissionDenied):
        services.reflection_amend(actor=manager, reflection=reflection, answers=form.answers())


def test_rep_cannot_read_another_reps_reflection(rep, teammate, other_manager, manager, lost_set):
    from django.http import Http404

    reflection = close(teammate, OpportunityFactory(owner=teammate), lost_answers(lost_set))
    with pytest.raises(Http404):
        selectors.reflection_for(rep, reflection.pk)
    with pytest.raises(Http404):
        selectors.reflection_for(other_manager, reflection.pk)
    assert selectors.reflection_for(manager, reflection.pk) == reflection
