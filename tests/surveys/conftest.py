import pytest

from surveys import services, tokens
from surveys.models import SurveyRequest
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close


def closed_lost(owner, lost_set, *, contact=None, **deal):
    """A deal of `owner` closed as lost with the default answers (Price, customer said)."""
    company = contact.company if contact is not None else CompanyFactory(name="Brightwater Foods")
    contact = contact or ContactFactory(company=company, full_name="Dana Buyer")
    opportunity = OpportunityFactory(
        owner=owner,
        company=company,
        contact=contact,
        product=deal.pop("product", None) or ProductFactory(name="Ledger Pro"),
        **deal,
    )
    close(owner, opportunity, lost_answers(lost_set))
    opportunity.refresh_from_db()
    return opportunity


def ask_and_send(actor, opportunity) -> SurveyRequest:
    """Request the survey and send it as the task would (no broker in between)."""
    survey = services.survey_request(actor=actor, opportunity=opportunity)
    services.survey_send(request_id=survey.pk)
    survey.refresh_from_db()
    return survey


@pytest.fixture
def lost_deal(rep, lost_set):
    return closed_lost(rep, lost_set, amount="98765.43", next_step="Secret internal plan")


@pytest.fixture
def sent_survey(rep, lost_deal, mailoutbox):
    return ask_and_send(rep, lost_deal)


@pytest.fixture
def link(sent_survey):
    return f"/survey/{tokens.make(sent_survey)}/"
