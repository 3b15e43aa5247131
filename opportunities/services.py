"""
Every write to the pipeline. Each function is one transaction, checks who may do it, and raises
ValidationError (with field names where a form field is at fault) before anything is saved.
"""

import datetime
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.models import User
from customers.models import Company, Contact
from opportunities.guard import Verdict, guard
from opportunities.models import (
    OPEN_STAGES,
    Competitor,
    Opportunity,
    Product,
    Stage,
    StageChange,
)


def pitch_verdict(
    *,
    company: Company,
    contact: Contact | None,
    product: Product,
    opportunity: Opportunity | None = None,
    requester: User | None = None,
) -> Verdict:
    """
    The suppression verdict for pitching this product to this company / contact today. This
    is the single enforcement hook: create, edit and reopen all call it. An override a
    manager approved for the requester (or for this very deal) lets the pitch through.
    """
    return guard().check(
        company_id=company.pk,
        contact_id=contact.pk if contact else None,
        product_id=product.pk,
        product_line_id=product.line_id,
        opportunity_id=opportunity.pk if opportunity else None,
        requester_id=requester.pk if requester else None,
    )


def _check_owner(actor: User, owner: User) -> None:
    if not owner.is_active:
        raise ValidationError({"owner": "This person is no longer active; pick someone else."})
    if not access.can_act_for(actor, owner):
        raise ValidationError({"owner": "You can only assign deals to yourself or your team."})


def _check_parties(company: Company, contact: Contact | None, product: Product) -> None:
    if contact is not None and contact.company_id != company.pk:
        raise ValidationError({"contact": f"{contact} does not work at {company}."})
    if not product.active:
        raise ValidationError({"product": f"{product} is retired and cannot be pitched."})


def _check_next_step(next_step: str, next_step_due: datetime.date | None) -> None:
    if next_step_due and not next_step.strip():
        raise ValidationError({"next_step": "Say what the next step is, not only when."})


def _check_block(company, contact, product, owner, opportunity=None) -> Verdict:
    verdict = pitch_verdict(
        company=company,
        contact=contact,
        product=product,
        opportunity=opportunity,
        requester=owner,
    )
    if verdict.blocked:
        raise verdict.error()
    return verdict


def _record_stage(opportunity: Opportunity, from_stage: str, actor: User) -> None:
    StageChange.objects.create(
        opportunity=opportunity,
        from_stage=from_stage,
        to_stage=opportunity.stage,
        changed_by=actor,
        changed_at=timezone.now(),
    )


@transaction.atomic
def opportunity_create(
    *,
    actor: User,
    company: Company,
    product: Product,
    owner: User,
    title: str,
    amount: Decimal,
    expected_close_date: datetime.date,
    contact: Contact | None = None,
    currency: str = "GBP",
    stage: str = Stage.PROSPECTING,
    primary_competitor: Competitor | None = None,
    next_step: str = "",
    next_step_due: datetime.date | None = None,
) -> Opportunity:
    """Open a new deal in an open stage and record its first stage."""
    _check_owner(actor, owner)
    _check_parties(company, contact, product)
    _check_next_step(next_step, next_step_due)
    if stage not in OPEN_STAGES:
        raise ValidationError({"stage": "A new deal starts in an open stage."})
    if amount < 0:
        raise ValidationError({"amount": "The amount cannot be negative."})
    verdict = _check_block(company, contact, product, owner)
    opportunity = Opportunity(
        company=company,
        contact=contact,
        product=product,
        owner=owner,
        title=title.strip(),
        amount=amount,
        currency=currency,
        stage=stage,
        expected_close_date=expected_close_date,
        primary_competitor=primary_competitor,
        next_step=next_step.strip(),
        next_step_due=next_step_due,
    )
    opportunity.full_clean()
    opportunity.save()
    guard().use_override(verdict, opportunity.pk)
    _record_stage(opportunity, "", actor)
    return opportunity


def opportunity_lock(actor: User, opportunity_id: int) -> Opportunity:
    """
    The deal, row-locked until the transaction ends, for a change `actor` may make; the row
    lock is what makes two concurrent changes (a double close) happen one after the other.
    """
    opportunity = (
        Opportunity.objects.select_for_update(of=("self",))
        .select_related("owner", "company", "contact", "product")
        .get(pk=opportunity_id)
    )
    if not access.can_act_for(actor, opportunity.owner):
        raise PermissionDenied("You cannot change this deal.")
    return opportunity


EDITABLE_FIELDS = (
    "company",
    "contact",
    "product",
    "owner",
    "title",
    "amount",
    "currency",
    "stage",
    "expected_close_date",
    "primary_competitor",
    "next_step",
    "next_step_due",
)


@transaction.atomic
def opportunity_update(*, actor: User, opportunity: Opportunity, **changes) -> Opportunity:
    """
    Edit an open deal. A stage change among open stages is recorded; closing goes through
    the reflection flow instead, so a closed deal cannot be edited here.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    locked = opportunity_lock(actor, opportunity.pk)
    if not locked.is_open:
        raise ValidationError("This deal is closed. Reopen it before editing.")
    old_stage = locked.stage
    pitched = (locked.company_id, locked.contact_id, locked.product_id)
    for field, value in changes.items():
        setattr(locked, field, value)
    if "owner" in changes:
        _check_owner(actor, locked.owner)
    if locked.stage not in OPEN_STAGES:
        raise ValidationError({"stage": "Close a deal with its reflection, not by editing it."})
    _check_parties(locked.company, locked.contact, locked.product)
    _check_next_step(locked.next_step, locked.next_step_due)
    verdict = None
    if (locked.company_id, locked.contact_id, locked.product_id) != pitched:
        verdict = _check_block(locked.company, locked.contact, locked.product, locked.owner, locked)
    locked.title = locked.title.strip()
    locked.next_step = locked.next_step.strip()
    locked.full_clean()
    locked.save()
    if verdict is not None:
        guard().use_override(verdict, locked.pk)
    if locked.stage != old_stage:
        _record_stage(locked, old_stage, actor)
    return locked


@transaction.atomic
def opportunity_move_stage(*, actor: User, opportunity: Opportunity, to_stage: str) -> Opportunity:
    """Move an open deal to another open stage (the board's one-click move)."""
    if to_stage not in OPEN_STAGES:
        raise ValidationError("Deals move between open stages here; close them with a reflection.")
    locked = opportunity_lock(actor, opportunity.pk)
    if not locked.is_open:
        raise ValidationError("This deal is closed. Reopen it before moving it.")
    if locked.stage == to_stage:
        return locked
    old_stage = locked.stage
    locked.stage = to_stage
    locked.save(update_fields=["stage", "updated_at"])
    _record_stage(locked, old_stage, actor)
    return locked


@transaction.atomic
def opportunity_set_next_step(
    *,
    actor: User,
    opportunity: Opportunity,
    next_step: str,
    next_step_due: datetime.date | None,
) -> Opportunity:
    """The rep's own plan for a deal: what happens next and by when. Empty clears it."""
    locked = opportunity_lock(actor, opportunity.pk)
    _check_next_step(next_step, next_step_due)
    locked.next_step = next_step.strip()
    locked.next_step_due = next_step_due if locked.next_step else None
    locked.full_clean()
    locked.save(update_fields=["next_step", "next_step_due", "updated_at"])
    return locked
