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
