"""
Helpers that write closed deals with their reflection and answers straight into the database,
so that fixtures can be counted by hand. (The close service is exercised in
tests/reflections; one test here goes through it to check the signal wiring.)
"""

import datetime
import zoneinfo
from decimal import Decimal

import pytest

from customers.models import Segment
from opportunities.models import Stage
from reflections.models import (
    Answer,
    Objection,
    Outcome,
    PromptSet,
    Question,
    QuestionKind,
    Reason,
    Reflection,
)
from tests.factories import CompanyFactory, OpportunityFactory, ProductFactory, ProductLineFactory

LONDON = zoneinfo.ZoneInfo("Europe/London")


class Closer:
    """Writes closed deals for one owner; shares one company and product unless told."""

    def __init__(self, owner, product=None, company=None):
        self.owner = owner
        self.product = product or ProductFactory(line=ProductLineFactory(name="Payments"))
        self.company = company or CompanyFactory(segment=Segment.SOFTWARE)
        self._sets = {}
        self._questions = {}

    def prompt_set(self, outcome):
        if outcome not in self._sets:
            family = f"default-{outcome.replace('_', '-')}"
            prompt_set = PromptSet.objects.get(family=family, active=True)
            self._sets[outcome] = prompt_set
            self._questions[outcome] = {
                q.kind: q for q in Question.objects.filter(prompt_set=prompt_set)
            }
        return self._sets[outcome]

    def question(self, outcome, kind):
        self.prompt_set(outcome)
        return self._questions[outcome][kind]

    def close(
        self,
        outcome,
        closed,
        reason=None,
        source="customer",
        *,
        amount="1000.00",
        currency="GBP",
        cycle_days=10,
        competitor=None,
        objections=(),
        contributing=(),
        text="",
        owner=None,
        product=None,
        company=None,
        unknown=False,
    ):
        owner = owner or self.owner
        created = datetime.datetime.combine(
            closed - datetime.timedelta(days=cycle_days), datetime.time(12), tzinfo=LONDON
        )
        deal = OpportunityFactory(
            owner=owner,
            product=product or self.product,
            company=company or self.company,
            contact=None,
            stage=Stage(outcome),
            closed_date=closed,
            amount=Decimal(amount),
            currency=currency,
            primary_competitor=competitor,
            created_at=created,
        )
        reflection = Reflection.objects.create(
            opportunity=deal,
            author=owner,
            outcome=outcome,
            prompt_set=self.prompt_set(outcome),
            closed_date=closed,
        )
        answers = []
        if reason or unknown:
            answers.append(
                Answer(
                    reflection=reflection,
                    question=self.question(outcome, QuestionKind.PRIMARY_REASON),
                    reason=None if unknown else Reason.objects.get(outcome=outcome, label=reason),
                    reason_source=source,
                    is_unknown=unknown,
                )
            )
        for label in contributing:
            answers.append(
                Answer(
                    reflection=reflection,
                    question=self.question(outcome, QuestionKind.CONTRIBUTING_REASONS),
                    reason=Reason.objects.get(outcome=outcome, label=label),
                )
            )
        for label in objections:
            answers.append(
                Answer(
                    reflection=reflection,
                    question=self.question(outcome, QuestionKind.OBJECTIONS),
                    objection=Objection.objects.get(label=label),
                )
            )
        if competitor is not None and outcome != Outcome.NO_DECISION:
            answers.append(
                Answer(
                    reflection=reflection,
                    question=self.question(outcome, QuestionKind.COMPETITOR),
                    competitor=competitor,
                )
            )
        if text:
            answers.append(
                Answer(
                    reflection=reflection,
                    question=self.question(outcome, QuestionKind.SHORT_TEXT),
                    text=text,
                )
            )
        Answer.objects.bulk_create(answers)
        return reflection


@pytest.fixture
def closer(rep):
    return Closer(rep)


def d(value: str) -> datetime.date:
    return datetime.date.fromisoformat(value)


def buyer_answer(reflection, label: str | None) -> None:
    """
    The buyer answers (or changes) the main-reason question of `reflection`'s survey, as
    surveys.services.survey_answer does it: `label` names the reason, None says "don't know".
    """
    from django.db import transaction
    from django.utils import timezone

    from surveys.models import (
        SurveyAnswer,
        SurveyQuestion,
        SurveyQuestionKind,
        SurveyRequest,
        SurveyStatus,
        SurveyTemplate,
    )
    from surveys.signals import survey_answered
    from tests.factories import ContactFactory

    outcome = reflection.outcome
    template = SurveyTemplate.objects.get(outcome=outcome, active=True)
    question = SurveyQuestion.objects.get(template=template, kind=SurveyQuestionKind.MAIN_REASON)
    with transaction.atomic():
        request = SurveyRequest.objects.filter(reflection=reflection).first()
        if request is None:
            contact = ContactFactory(company=reflection.opportunity.company)
            request = SurveyRequest.objects.create(
                reflection=reflection,
                opportunity=reflection.opportunity,
                contact=contact,
                email=contact.email,
                template=template,
                status=SurveyStatus.SENT,
                expires_at=timezone.now() + datetime.timedelta(days=30),
            )
        SurveyAnswer.objects.filter(request=request).delete()
        SurveyAnswer.objects.create(
            request=request,
            question=question,
            reason=None if label is None else Reason.objects.get(outcome=outcome, label=label),
            is_unknown=label is None,
        )
        request.status, request.answered_at = SurveyStatus.ANSWERED, timezone.now()
        request.revision += 1
        request.save(update_fields=["status", "answered_at", "revision"])
        survey_answered.send(sender=SurveyRequest, survey=request)


def reopen_deal(reflection) -> None:
    """As opportunity_reopen does it: the deal open again, its reflection no longer current."""
    from django.db import transaction

    from reflections import signals

    with transaction.atomic():
        deal = reflection.opportunity
        deal.stage, deal.closed_date = Stage.NEGOTIATION, None
        deal.save(update_fields=["stage", "closed_date"])
        reflection.current = False
        reflection.save(update_fields=["current"])
        signals.opportunity_reopened.send(
            sender=type(deal), opportunity=deal, reflection=reflection
        )
