"""
What changes suppressions: derivation when a deal closes (and from imported history), lifting
on reopen or by a manager, do-not-contact entries, and reps' exception requests with their
managers' decisions. Each is one transaction; the decision function is in decisions.py.
"""

import datetime
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.models import User
from customers.models import Company, Contact
from opportunities.models import Opportunity
from suppressions import feed
from suppressions.decisions import Verdict, check, today
from suppressions.models import (
    REASON_FOR_OUTCOME,
    ChangeKind,
    OverrideStatus,
    Suppression,
    SuppressionOverride,
    SuppressionReason,
    SuppressionRule,
    SuppressionScope,
    SuppressionTarget,
)


def use_override(verdict: Verdict, opportunity_id: int) -> None:
    """Tie an approved override to the one deal it let through, so it cannot be reused."""
    if verdict.override is not None and verdict.override.opportunity_id is None:
        SuppressionOverride.objects.filter(pk=verdict.override.pk, used_at__isnull=True).update(
            opportunity_id=opportunity_id, used_at=timezone.now()
        )


# --- derivation from closed deals --------------------------------------------------------------


def _derived(rule: SuppressionRule, opportunity, closed_on: datetime.date) -> Suppression:
    contact_id = opportunity.contact_id if rule.target == SuppressionTarget.CONTACT else None
    product_id = opportunity.product_id if rule.scope == SuppressionScope.PRODUCT else None
    line_id = opportunity.product.line_id if rule.scope == SuppressionScope.PRODUCT_LINE else None
    return Suppression(
        company_id=opportunity.company_id,
        # A contact rule on a deal without a contact protects the whole company instead.
        contact_id=contact_id,
        scope=rule.scope,
        product_id=product_id,
        product_line_id=line_id,
        reason=REASON_FOR_OUTCOME[rule.trigger_outcome],
        source_opportunity_id=opportunity.pk,
        rule=rule,
        starts_on=closed_on,
        until=closed_on + datetime.timedelta(days=rule.days - 1),
    )


def derive_for_close(*, opportunity, outcome: str, closed_on: datetime.date) -> list[Suppression]:
    """
    The suppressions that the active rules imply for a deal that just closed. Called by the
    close service inside its transaction, so a failed close leaves none behind (nor their
    changes in the feed).
    """
    rules = SuppressionRule.objects.filter(active=True, trigger_outcome=outcome)
    created = Suppression.objects.bulk_create(
        [_derived(rule, opportunity, closed_on) for rule in rules]
    )
    feed.changes_record_ids(ChangeKind.STARTED, [s.pk for s in created])
    return created


def derive_for_history(
    closes: Iterable[tuple[Any, str, datetime.date]],
    *,
    rules: dict[str, list[SuppressionRule]] | None = None,
    on: datetime.date | None = None,
) -> list[Suppression]:
    """
    For closes of the past brought in by an import, as (opportunity, outcome, closed_on):
    exactly what derive_for_close() would have derived on the closed date, but only the
    suppressions whose window still runs on `on` (closed_on + days - 1 >= on; default today):
    an older close derives nothing. Each opportunity needs its `product` loaded (line rules).
    `rules` (outcome -> active rules) saves the query when the caller has read them.
    """
    day = on or today()
    if rules is None:
        rules = {}
        for rule in SuppressionRule.objects.filter(active=True):
            rules.setdefault(rule.trigger_outcome, []).append(rule)
    derived = [
        _derived(rule, opportunity, closed_on)
        for opportunity, outcome, closed_on in closes
        for rule in rules.get(outcome, ())
        if closed_on + datetime.timedelta(days=rule.days - 1) >= day
    ]
    if not derived:
        return []
    created = Suppression.objects.bulk_create(derived)
    feed.changes_record_ids(ChangeKind.STARTED, [s.pk for s in created])
    return created


def lift_for_reopen(*, opportunity, actor: User) -> int:
    """A reopened deal no longer suppresses anything; its suppressions are kept, lifted."""
    # Locked first, like suppression_lift does, so that a manager lifting one of them at the
    # same moment waits instead of deadlocking on the change log.
    ids = list(
        Suppression.objects.select_for_update()
        .filter(source_opportunity=opportunity, lifted_at__isnull=True)
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    lifted = Suppression.objects.filter(pk__in=ids).update(
        lifted_at=timezone.now(), lifted_by=actor, lift_reason="The deal was reopened."
    )
    feed.changes_record_ids(ChangeKind.LIFTED, ids)
    return lifted


@transaction.atomic
def rule_rebuild(*, rule: SuppressionRule, batch_size: int = 2000) -> int:
    """
    Recompute a rule's suppressions from closed-deal history: drop the ones it made that are
    not lifted, and create those its current settings imply and that still run today. Lifted
    suppressions stay as they are (somebody decided on them). The feed reports each dropped
    one as lifted (withdrawn) unless its end was reported, and each created one as started.
    """
    # Locked first (as suppression_lift locks), then reported and deleted by id, so that a
    # lift or a close at the same moment neither deadlocks nor slips in unreported.
    dropped = list(
        Suppression.objects.select_for_update()
        .filter(rule=rule, lifted_at__isnull=True)
        .values_list("pk", flat=True)
    )
    for start in range(0, len(dropped), feed.ID_CHUNK):
        chunk = Suppression.objects.filter(pk__in=dropped[start : start + feed.ID_CHUNK])
        feed.changes_record(ChangeKind.LIFTED, feed.without_an_end(chunk))
        chunk.delete()
    if not rule.active:
        return 0
    lifted = set(
        Suppression.objects.filter(rule=rule, lifted_at__isnull=False).values_list(
            "source_opportunity_id", flat=True
        )
    )
    earliest = today() - datetime.timedelta(days=rule.days - 1)
    deals = (
        Opportunity.objects.filter(stage=rule.trigger_outcome, closed_date__gte=earliest)
        .select_related("product")
        .only("id", "company_id", "contact_id", "product_id", "product__line_id", "closed_date")
        .order_by("id")
    )
    created, batch = 0, []
    for deal in deals.iterator(chunk_size=batch_size):
        if deal.pk in lifted:
            continue
        batch.append(_derived(rule, deal, deal.closed_date))
        if len(batch) >= batch_size:
            created += _create_started(batch)
            batch = []
    created += _create_started(batch)
    return created


def _create_started(suppressions: list[Suppression]) -> int:
    created = Suppression.objects.bulk_create(suppressions)
    feed.changes_record_ids(ChangeKind.STARTED, [s.pk for s in created])
    return len(created)


# --- do-not-contact and lifting ----------------------------------------------------------------


@transaction.atomic
def do_not_contact_add(
    *, actor: User, company: Company, contact: Contact | None = None, note: str
) -> Suppression:
    """Nobody pitches this contact (or company) anything, until lifted with a reason."""
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say why, e.g. “Asked not to be called again”."})
    if contact is not None and contact.company_id != company.pk:
        raise ValidationError({"contact": f"{contact} does not work at {company}."})
    suppression = Suppression.objects.create(
        company=company,
        contact=contact,
        scope=SuppressionScope.ALL,
        reason=SuppressionReason.DO_NOT_CONTACT,
        note=note,
        starts_on=today(),
        until=None,
        created_by=actor,
    )
    if contact is not None and not contact.do_not_contact:
        Contact.objects.filter(pk=contact.pk).update(do_not_contact=True)
    feed.changes_record_ids(ChangeKind.STARTED, [suppression.pk])
    return suppression


@transaction.atomic
def do_not_contact_add_many(
    *, actor: User | None, contacts: list[Contact], note: str
) -> list[Suppression]:
    """do_not_contact_add for many contacts at once (imports, the demo): one suppression
    each, and their flags set in one statement, so that flag and suppression agree."""
    day = today()
    suppressions = Suppression.objects.bulk_create(
        Suppression(
            company_id=contact.company_id,
            contact=contact,
            scope=SuppressionScope.ALL,
            reason=SuppressionReason.DO_NOT_CONTACT,
            note=note,
            starts_on=day,
            until=None,
            created_by=actor,
        )
        for contact in contacts
    )
    Contact.objects.filter(pk__in=[c.pk for c in contacts]).update(do_not_contact=True)
    feed.changes_record_ids(ChangeKind.STARTED, [s.pk for s in suppressions])
    return suppressions


def can_lift(user: User) -> bool:
    return user.is_active and (user.is_manager or user.is_admin)


@transaction.atomic
def suppression_lift(*, actor: User, suppression: Suppression, reason: str) -> Suppression:
    """End a suppression early. It is kept, with who lifted it, when and why."""
    if not can_lift(actor):
        raise PermissionDenied("Only managers and administrators lift suppressions.")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why this suppression ends early."})
    locked = Suppression.objects.select_for_update().get(pk=suppression.pk)
    if locked.lifted_at is not None:
        raise ValidationError("This suppression was lifted already.")
    locked.lifted_at = timezone.now()
    locked.lifted_by = actor
    locked.lift_reason = reason
    locked.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    feed.changes_record_ids(ChangeKind.LIFTED, [locked.pk])
    if locked.reason == SuppressionReason.DO_NOT_CONTACT and locked.contact_id:
        still = Suppression.objects.filter(
            contact_id=locked.contact_id,
            reason=SuppressionReason.DO_NOT_CONTACT,
            lifted_at__isnull=True,
        ).exists()
        if not still:
            Contact.objects.filter(pk=locked.contact_id).update(do_not_contact=False)
    return locked


# --- overrides ---------------------------------------------------------------------------------


@transaction.atomic
def override_request(
    *,
    actor: User,
    company: Company,
    contact: Contact | None,
    product,
    justification: str,
    opportunity=None,
) -> SuppressionOverride:
    """A rep asks a manager of their team to let one pitch through despite a suppression."""
    justification = justification.strip()
    if len(justification) < 10:
        raise ValidationError(
            {"justification": "Explain in a sentence why this customer wants to hear from us."}
        )
    verdict = check(
        company_id=company.pk,
        contact_id=contact.pk if contact else None,
        product_id=product.pk,
        product_line_id=product.line_id,
    )
    if not verdict.suppressed:
        raise ValidationError("Nothing suppresses this pitch; no exception is needed.")
    if verdict.suppression.reason == SuppressionReason.DO_NOT_CONTACT:
        raise ValidationError(
            "A do-not-contact entry cannot be overridden. If the person asked to hear from us "
            "again, a manager can lift it with that reason."
        )
    pending = SuppressionOverride.objects.filter(
        requested_by=actor,
        company=company,
        contact=contact,
        product=product,
        status=OverrideStatus.PENDING,
    ).first()
    if pending is not None:
        raise ValidationError("You already asked for this exception; it is waiting for a manager.")
    return SuppressionOverride.objects.create(
        suppression=verdict.suppression,
        company=company,
        contact=contact,
        product=product,
        opportunity=opportunity,
        requested_by=actor,
        justification=justification,
    )


def can_decide(user: User, override: SuppressionOverride) -> bool:
    """A manager of the requester's team (or an admin), never the requester."""
    return (
        user.is_active
        and user.pk != override.requested_by_id
        and access.manages(user, override.requested_by)
    )


@transaction.atomic
def override_decide(
    *, actor: User, override: SuppressionOverride, approve: bool, note: str = ""
) -> SuppressionOverride:
    locked = (
        SuppressionOverride.objects.select_for_update(of=("self",))
        .select_related("requested_by")
        .get(pk=override.pk)
    )
    if not can_decide(actor, locked):
        raise PermissionDenied("Only a manager of the requester's team decides this.")
    if locked.status != OverrideStatus.PENDING:
        raise ValidationError(f"This request was {locked.get_status_display().lower()} already.")
    note = note.strip()
    if not approve and not note:
        raise ValidationError({"note": "Say why, so the rep knows what to do instead."})
    locked.status = OverrideStatus.APPROVED if approve else OverrideStatus.DECLINED
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    locked.decision_note = note
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    return locked
