import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from opportunities import services
from opportunities.models import Opportunity, Stage, StageChange
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db


def _create(actor, owner, **overrides):
    company = overrides.pop("company", None) or CompanyFactory()
    kwargs = {
        "actor": actor,
        "owner": owner,
        "company": company,
        "contact": ContactFactory(company=company),
        "product": ProductFactory(),
        "title": "  Rollout for finance team ",
        "amount": Decimal("5000"),
        "expected_close_date": timezone.localdate() + datetime.timedelta(days=20),
    }
    kwargs.update(overrides)
    return services.opportunity_create(**kwargs)


def test_create_records_first_stage_and_trims_title(rep):
    deal = _create(rep, rep)
    assert deal.title == "Rollout for finance team"
    change = StageChange.objects.get(opportunity=deal)
    assert (change.from_stage, change.to_stage, change.changed_by) == ("", Stage.PROSPECTING, rep)


def test_create_refuses_contact_of_another_company_and_saves_nothing(rep):
    with pytest.raises(ValidationError) as exc:
        _create(rep, rep, contact=ContactFactory())
    assert "contact" in exc.value.message_dict
    assert not Opportunity.objects.exists() and not StageChange.objects.exists()


def test_create_refuses_negative_amount(rep):
    with pytest.raises(ValidationError) as exc:
        _create(rep, rep, amount=Decimal("-1"))
    assert "amount" in exc.value.message_dict
    assert not Opportunity.objects.exists()


def test_rep_cannot_create_a_deal_for_a_teammate(rep, teammate):
    with pytest.raises(ValidationError) as exc:
        _create(rep, teammate)
    assert "owner" in exc.value.message_dict


def test_manager_cannot_assign_to_another_teams_rep(manager, other_rep, rep):
    with pytest.raises(ValidationError):
        _create(manager, other_rep)
    assert _create(manager, rep).owner == rep


def test_create_refuses_closed_stage_and_due_date_without_step(rep):
    with pytest.raises(ValidationError):
        _create(rep, rep, stage=Stage.WON)
    with pytest.raises(ValidationError) as exc:
        _create(rep, rep, next_step_due=timezone.localdate())
    assert "next_step" in exc.value.message_dict
    assert not Opportunity.objects.exists()


def test_create_refuses_retired_product(rep):
    with pytest.raises(ValidationError) as exc:
        _create(rep, rep, product=ProductFactory(active=False))
    assert "product" in exc.value.message_dict


def test_update_records_stage_change_and_refuses_closing(rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.QUALIFICATION)
    services.opportunity_update(actor=rep, opportunity=deal, stage=Stage.PROPOSAL)
    assert StageChange.objects.filter(
        opportunity=deal, from_stage=Stage.QUALIFICATION, to_stage=Stage.PROPOSAL
    ).exists()
    with pytest.raises(ValidationError):
        services.opportunity_update(actor=rep, opportunity=deal, stage=Stage.WON)
    deal.refresh_from_db()
    assert deal.stage == Stage.PROPOSAL


def test_update_of_closed_deal_is_refused(rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.LOST)
    with pytest.raises(ValidationError, match="closed"):
        services.opportunity_update(actor=rep, opportunity=deal, title="x")


def test_rep_cannot_update_teammates_deal(rep, teammate):
    deal = OpportunityFactory(owner=teammate)
    with pytest.raises(PermissionDenied):
        services.opportunity_update(actor=rep, opportunity=deal, title="Mine now")


def test_move_stage_only_between_open_stages(rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROSPECTING)
    services.opportunity_move_stage(actor=rep, opportunity=deal, to_stage=Stage.NEGOTIATION)
    with pytest.raises(ValidationError):
        services.opportunity_move_stage(actor=rep, opportunity=deal, to_stage=Stage.WON)
    deal.refresh_from_db()
    assert deal.stage == Stage.NEGOTIATION and deal.closed_date is None
    assert StageChange.objects.filter(opportunity=deal).count() == 1


def test_move_to_same_stage_records_nothing(rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    services.opportunity_move_stage(actor=rep, opportunity=deal, to_stage=Stage.PROPOSAL)
    assert not StageChange.objects.exists()


def test_set_next_step_clears_due_date_with_the_step(rep):
    deal = OpportunityFactory(owner=rep, next_step="Call", next_step_due=timezone.localdate())
    services.opportunity_set_next_step(
        actor=rep, opportunity=deal, next_step="", next_step_due=None
    )
    deal.refresh_from_db()
    assert deal.next_step == "" and deal.next_step_due is None


# --- integrity in the database, not only in forms ----------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": Decimal("-5")},
        {"stage": Stage.WON, "closed_date": None},
        {"stage": Stage.PROPOSAL, "closed_date": datetime.date(2026, 1, 1)},
        {"stage": "bogus"},
        {"next_step": "", "next_step_due": datetime.date(2026, 1, 1)},
    ],
    ids=[
        "negative-amount",
        "closed-without-date",
        "open-with-date",
        "unknown-stage",
        "due-no-step",
    ],
)
def test_database_constraints_reject_inconsistent_deals(rep, changes):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    with pytest.raises(IntegrityError), transaction.atomic():
        Opportunity.objects.filter(pk=deal.pk).update(**changes)
