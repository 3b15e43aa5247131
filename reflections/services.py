"""
Closing a deal is reflecting on it: the stage, the closed date, the reflection and its answers
(and the suppressions that the rules derive, through the suppressions app) are saved in one
transaction.
"""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.models import User
from opportunities import services as opportunity_services
from opportunities.models import OPEN_STAGES, Competitor, Opportunity, Stage, StageChange
from reflections import selectors, signals
from reflections.models import (
    MULTI_KINDS,
    Answer,
    Objection,
    Origin,
    Outcome,
    PromptSet,
    Question,
    QuestionKind,
    Reason,
    ReasonSource,
    Reflection,
    ReflectionRevision,
)
from suppressions import services as suppressions_services


@dataclass
class AnswerInput:
    """One answer as a form produced it; multi-choice questions give one per choice."""

    question: Question
    reason: Reason | None = None
    reason_source: str = ""
    competitor: Competitor | None = None
    objection: Objection | None = None
    number: int | None = None
    text: str = ""
    is_unknown: bool = False


@dataclass
class _Checked:
    answers: list[AnswerInput] = field(default_factory=list)
    competitor: Competitor | None = None


def _field(question: Question) -> str:
    return f"q_{question.pk}"


def _check_answers(prompt_set: PromptSet, outcome: str, answers: list[AnswerInput]) -> _Checked:
    """Every rule a reflection obeys, whatever form or API produced the answers."""
    questions = {q.pk: q for q in prompt_set.questions.all()}
    errors: dict[str, list[str]] = {}
    by_question: dict[int, list[AnswerInput]] = {}
    checked = _Checked()

    def error(question: Question, message: str) -> None:
        errors.setdefault(_field(question), []).append(message)

    for answer in answers:
        question = questions.get(answer.question.pk)
        if question is None:
            raise ValidationError(
                f"“{answer.question.label}” is not a question of {prompt_set}. "
                "Reload the page and answer the questions shown."
            )
        by_question.setdefault(question.pk, []).append(answer)
        kind = question.kind
        if answer.is_unknown:
            if kind in (QuestionKind.PRIMARY_REASON, QuestionKind.CONTRIBUTING_REASONS):
                checked.answers.append(answer)
            else:
                error(question, "Only reason questions take “Unknown / not sure”.")
            continue
        if kind in (QuestionKind.PRIMARY_REASON, QuestionKind.CONTRIBUTING_REASONS):
            if answer.reason is None:
                error(question, "Pick a reason.")
            elif answer.reason.outcome != outcome:
                error(question, f"“{answer.reason.label}” is not a reason for this outcome.")
            elif not answer.reason.active:
                error(question, f"“{answer.reason.label}” is retired; pick another reason.")
        if kind == QuestionKind.PRIMARY_REASON and answer.reason_source not in ReasonSource.values:
            error(question, "Say whether the customer told you, or it is your own read.")
        if kind == QuestionKind.COMPETITOR:
            if answer.competitor is None or not answer.competitor.active:
                error(question, "Pick a competitor from the list.")
            else:
                checked.competitor = answer.competitor
        if kind == QuestionKind.OBJECTIONS and (
            answer.objection is None or not answer.objection.active
        ):
            error(question, "Pick objections from the list.")
        if kind == QuestionKind.SCALE and (answer.number is None or not 1 <= answer.number <= 5):
            error(question, "Choose a number from 1 to 5.")
        if kind == QuestionKind.YES_NO and answer.number not in (0, 1):
            error(question, "Answer yes or no.")
        if kind == QuestionKind.SHORT_TEXT:
            answer.text = answer.text.strip()
            if not answer.text:
                continue  # an empty optional text is simply not stored
            if len(answer.text) > 2000:
                error(question, "Keep it under 2,000 characters.")
        checked.answers.append(answer)

    for question in questions.values():
        given = [a for a in by_question.get(question.pk, []) if a in checked.answers]
        if question.required and not given and _field(question) not in errors:
            error(question, "This question needs an answer.")
        if question.kind not in MULTI_KINDS and len(given) > 1:
            error(question, "Give one answer here.")
        if question.kind in MULTI_KINDS and any(a.is_unknown for a in given) and len(given) > 1:
            error(question, "“Unknown / not sure” goes alone.")
    if errors:
        raise ValidationError(errors)
    return checked


def _save_answers(reflection: Reflection, answers: list[AnswerInput]) -> None:
    Answer.objects.bulk_create(
        Answer(
            reflection=reflection,
            question=a.question,
            reason=a.reason,
            reason_source=a.reason_source if a.question.kind == QuestionKind.PRIMARY_REASON else "",
            competitor=a.competitor,
            objection=a.objection,
            number=a.number,
            text=a.text,
            is_unknown=a.is_unknown,
        )
        for a in answers
    )


@transaction.atomic
def opportunity_close(
    *,
    actor: User,
    opportunity: Opportunity,
    outcome: str,
    prompt_set: PromptSet,
    answers: list[AnswerInput],
    closed_date: datetime.date | None = None,
) -> Reflection:
    """
    Close an open deal as won, lost or no decision with its reflection. The row lock makes a
    second, concurrent close wait and then find the deal closed; the partial unique
    constraint on current reflections backs it up.
    """
    if outcome not in Outcome.values:
        raise ValidationError("Close a deal as won, lost or no decision.")
    locked = opportunity_services.opportunity_lock(actor, opportunity.pk)
    if not locked.is_open:
        raise ValidationError(
            "This deal is already closed, maybe in another tab. Its reflection is saved.",
            code="already_closed",
        )
    expected = selectors.prompt_set_for(outcome, locked.product.line_id)
    if expected is None or expected.pk != prompt_set.pk:
        raise ValidationError(
            "The questions for this outcome changed while you were answering. "
            "Your answers were not saved; please answer the current questions.",
            code="prompt_set_changed",
        )
    checked = _check_answers(expected, outcome, answers)
    closed_on = closed_date or timezone.localdate()
    if closed_on > timezone.localdate():
        raise ValidationError({"closed_date": "A deal cannot close in the future."})

    old_stage = locked.stage
    locked.stage = outcome
    locked.closed_date = closed_on
    if checked.competitor is not None:
        locked.primary_competitor = checked.competitor
    locked.save(update_fields=["stage", "closed_date", "primary_competitor", "updated_at"])
    StageChange.objects.create(
        opportunity=locked, from_stage=old_stage, to_stage=outcome, changed_by=actor
    )
    PromptSet.objects.filter(pk=expected.pk, frozen_at__isnull=True).update(
        frozen_at=timezone.now()
    )
    reflection = Reflection.objects.create(
        opportunity=locked,
        author=actor,
        outcome=outcome,
        prompt_set=expected,
        closed_date=closed_on,
    )
    _save_answers(reflection, checked.answers)
    suppressions_services.derive_for_close(opportunity=locked, outcome=outcome, closed_on=closed_on)
    signals.reflection_submitted.send(sender=Reflection, reflection=reflection, created=True)
    return reflection


def _last_open_stage(opportunity: Opportunity) -> str:
    last = (
        StageChange.objects.filter(opportunity=opportunity, to_stage__in=OPEN_STAGES)
        .order_by("-changed_at", "-id")
        .values_list("to_stage", flat=True)
        .first()
    )
    return last or Stage.NEGOTIATION


@transaction.atomic
def opportunity_reopen(*, actor: User, opportunity: Opportunity) -> Opportunity:
    """
    Reopen a closed deal in the open stage it left from. Its reflection stays in history
    (no longer current); closing again asks for a new one.
    """
    locked = opportunity_services.opportunity_lock(actor, opportunity.pk)
    if locked.is_open:
        raise ValidationError("This deal is already open.")
    # The deal's own suppressions end with its reopening; any other one still blocks it.
    suppressions_services.lift_for_reopen(opportunity=locked, actor=actor)
    verdict = opportunity_services.pitch_verdict(
        company=locked.company,
        contact=locked.contact,
        product=locked.product,
        opportunity=locked,
        requester=locked.owner,
    )
    if verdict.blocked:
        raise verdict.error()
    suppressions_services.use_override(verdict, locked.pk)
    old_stage = locked.stage
    locked.stage = _last_open_stage(locked)
    locked.closed_date = None
    locked.save(update_fields=["stage", "closed_date", "updated_at"])
    StageChange.objects.create(
        opportunity=locked, from_stage=old_stage, to_stage=locked.stage, changed_by=actor
    )
    reflection = Reflection.objects.filter(opportunity=locked, current=True).first()
    if reflection is not None:
        reflection.current = False
        reflection.save(update_fields=["current"])
    signals.opportunity_reopened.send(sender=Opportunity, opportunity=locked, reflection=reflection)
    return locked


def _snapshot(reflection: Reflection) -> list[dict]:
    return [
        {
            "question_id": answer.question_id,
            "question": answer.question.label,
            "answer": answer.display_value,
            "reason_source": answer.get_reason_source_display() if answer.reason_source else "",
        }
        for answer in reflection.answers.select_related(
            "question", "reason", "competitor", "objection"
        ).order_by("question__order", "id")
    ]


def reflection_editable_until(reflection: Reflection) -> datetime.datetime:
    return reflection.submitted_at + datetime.timedelta(days=settings.DEBRIEF_REFLECTION_EDIT_DAYS)


IMPORTED_NOT_AMENDABLE = (
    "This reflection was imported from another CRM: nobody answered it in Debrief, so it "
    "cannot be amended. If its reason is wrong, the deal's owner can reopen the deal and "
    "close it again with a reflection of their own."
)


def can_amend(user: User, reflection: Reflection) -> bool:
    """The author, within the edit window, of a current reflection answered in Debrief."""
    return (
        reflection.author_id == user.pk
        and reflection.origin == Origin.ANSWERED
        and reflection.current
        and timezone.now() <= reflection_editable_until(reflection)
    )


@transaction.atomic
def reflection_amend(
    *, actor: User, reflection: Reflection, answers: list[AnswerInput]
) -> Reflection:
    """
    The author corrects their reflection within the edit window. What it said before is kept
    as a revision, visible to the author and managers.
    """
    locked = (
        Reflection.objects.select_for_update().select_related("prompt_set").get(pk=reflection.pk)
    )
    if locked.author_id != actor.pk:
        raise PermissionDenied("Only the author can amend a reflection.")
    if locked.origin == Origin.IMPORTED:
        raise ValidationError(IMPORTED_NOT_AMENDABLE)
    if not locked.current:
        raise ValidationError("This deal was reopened; its old reflection is history now.")
    if timezone.now() > reflection_editable_until(locked):
        raise ValidationError(
            f"Reflections can be amended for {settings.DEBRIEF_REFLECTION_EDIT_DAYS} days; "
            "this one is past that."
        )
    checked = _check_answers(locked.prompt_set, locked.outcome, answers)
    signals.reflection_amending.send(sender=Reflection, reflection=locked)
    ReflectionRevision.objects.create(reflection=locked, edited_by=actor, answers=_snapshot(locked))
    locked.answers.all().delete()
    _save_answers(locked, checked.answers)
    locked.edited_at = timezone.now()
    locked.save(update_fields=["edited_at"])
    if checked.competitor is not None:
        Opportunity.objects.filter(pk=locked.opportunity_id).update(
            primary_competitor=checked.competitor
        )
    signals.reflection_submitted.send(sender=Reflection, reflection=locked, created=False)
    return locked


@transaction.atomic
def prompt_set_revise(*, prompt_set: PromptSet) -> PromptSet:
    """
    A new, editable version of a frozen prompt set, with copies of its questions. The new
    version becomes the active one; the old one stays, unchanged, for the reflections that
    answered it.
    """
    latest = (
        PromptSet.objects.select_for_update()
        .filter(family=prompt_set.family)
        .order_by("-version")
        .first()
    )
    if latest.pk != prompt_set.pk:
        raise ValidationError(f"{latest} is newer; revise that one.")
    for old in PromptSet.objects.filter(family=prompt_set.family, active=True):
        old.active = False
        old.save(update_fields=["active"])  # one by one, so the audit trail records it
    new = PromptSet.objects.create(
        family=prompt_set.family,
        version=latest.version + 1,
        name=prompt_set.name,
        outcome=prompt_set.outcome,
        product_line=prompt_set.product_line,
        active=True,
    )
    Question.objects.bulk_create(
        Question(
            prompt_set=new,
            kind=q.kind,
            label=q.label,
            help_text=q.help_text,
            required=q.required,
            order=q.order,
        )
        for q in prompt_set.questions.order_by("order", "id")
    )
    return new


@transaction.atomic
def reason_merge(*, reason: Reason, into: Reason) -> Reason:
    """
    Retire `reason` and count it under `into` from now on, so that trends stay continuous.
    Answers keep pointing at the original reason: history is never rewritten.
    """
    if reason.pk == into.pk:
        raise ValidationError("A reason cannot be merged into itself.")
    if reason.outcome != into.outcome:
        raise ValidationError("Reasons can only be merged within the same outcome.")
    if not into.active or into.merged_into_id is not None:
        raise ValidationError(f"“{into.label}” is retired; merge into an active reason.")
    reason.active = False
    reason.merged_into = into
    reason.save(update_fields=["active", "merged_into"])
    Reason.objects.filter(merged_into=reason).update(merged_into=into)
    return reason


@transaction.atomic
def call_debrief_create(
    *,
    author: User,
    company,
    call_date: datetime.date,
    customer_said: str,
    contact=None,
    opportunity: Opportunity | None = None,
    objections=(),
    next_step: str = "",
    high_card: bool = False,
):
    """A quick note after a call or meeting that mattered."""
    from reflections.models import CallDebrief

    if contact is not None and contact.company_id != company.pk:
        raise ValidationError({"contact": f"{contact} does not work at {company}."})
    if opportunity is not None:
        if opportunity.company_id != company.pk:
            raise ValidationError({"opportunity": "That deal is with another company."})
        if not access.can_act_for(author, opportunity.owner):
            raise ValidationError(
                {"opportunity": "You can only link your own or your team's deals."}
            )
    if call_date > timezone.localdate():
        raise ValidationError({"call_date": "The call cannot be in the future."})
    customer_said = customer_said.strip()
    if not customer_said:
        raise ValidationError({"customer_said": "Write down what the customer said."})
    debrief = CallDebrief.objects.create(
        company=company,
        contact=contact,
        opportunity=opportunity,
        author=author,
        call_date=call_date,
        customer_said=customer_said,
        next_step=next_step.strip(),
        high_card=high_card,
    )
    if objections:
        debrief.objections.set(objections)
    return debrief
