"""
Contact suppression: one place decides whether a company or contact may be pitched a product
on a day, and why not.

Dates are days in the organisation's time zone (settings.TIME_ZONE). A suppression applies
from `starts_on` to `until`, BOTH INCLUDED: a 90-day rule on a deal lost on 1 March covers
1 March to 29 May, and pitching is allowed again on 30 May. No `until` means indefinitely.

Every enforcement point (creating, editing and reopening a deal, the call-list check, the
JSON API) goes through `check` or `check_many`.
"""

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.utils import timezone
from django.utils.formats import date_format

from accounts import access
from accounts.models import User
from customers.models import (
    REASON_FOR_OUTCOME,
    Company,
    Contact,
    OverrideStatus,
    Suppression,
    SuppressionOverride,
    SuppressionReason,
    SuppressionRule,
    SuppressionScope,
    SuppressionTarget,
)


def today() -> datetime.date:
    """Today in the organisation's time zone: the day every check is made for."""
    return timezone.localdate()


def active_on(day: datetime.date) -> Q:
    return Q(lifted_at__isnull=True, starts_on__lte=day) & (
        Q(until__isnull=True) | Q(until__gte=day)
    )


def _scope_q(product_id: int | None, product_line_id: int | None) -> Q:
    return (
        Q(scope=SuppressionScope.ALL)
        | Q(scope=SuppressionScope.PRODUCT, product_id=product_id)
        | Q(scope=SuppressionScope.PRODUCT_LINE, product_line_id=product_line_id)
    )


# The suppression that explains a block best: do-not-contact first, then the longest-lasting.
_PRIORITY = [
    Case(
        When(reason=SuppressionReason.DO_NOT_CONTACT, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    ).asc(),
    F("until").desc(nulls_first=True),
    F("id").desc(),
]


def _fmt(day: datetime.date) -> str:
    return date_format(day, "j M Y")


def describe(suppression: Suppression) -> str:
    """A plain sentence: who, why, the source deal and rule, and until when."""
    who = suppression.contact.full_name if suppression.contact_id else suppression.company.name
    if suppression.reason == SuppressionReason.DO_NOT_CONTACT:
        note = f" ({suppression.note})" if suppression.note else ""
        return f"{who} is on the do-not-contact list since {_fmt(suppression.starts_on)}{note}."
    what = {
        SuppressionScope.PRODUCT: suppression.product.name if suppression.product_id else "",
        SuppressionScope.PRODUCT_LINE: (
            f"any {suppression.product_line.name} product" if suppression.product_line_id else ""
        ),
        SuppressionScope.ALL: "anything",
    }[suppression.scope]
    verb = {
        SuppressionReason.DECLINED: "declined",
        SuppressionReason.BOUGHT: "bought",
        SuppressionReason.NO_DECISION: "ended without a decision",
    }.get(suppression.reason, suppression.get_reason_display().lower())
    source = ""
    if suppression.source_opportunity_id:
        deal = suppression.source_opportunity
        source = f" in “{deal.title}” ({deal.owner.full_name})"
    rule = f" Rule “{suppression.rule.name}”." if suppression.rule_id else ""
    until = _fmt(suppression.until) if suppression.until else "further notice"
    return (
        f"{who} {verb}{source} on {_fmt(suppression.starts_on)}.{rule} "
        f"Do not pitch {what} to {'them' if suppression.contact_id else who} "
        f"until {until} (inclusive)."
    )


@dataclass(frozen=True)
class Verdict:
    suppression: Suppression | None = None
    override: SuppressionOverride | None = None

    @property
    def suppressed(self) -> bool:
        return self.suppression is not None

    @property
    def blocked(self) -> bool:
        return self.suppressed and self.override is None

    @property
    def until(self) -> datetime.date | None:
        return self.suppression.until if self.suppression else None

    @property
    def message(self) -> str:
        if not self.suppressed:
            return ""
        text = describe(self.suppression)
        if self.override is not None:
            text += f" A manager approved an exception ({self.override.decided_by})."
        return text


def check(
    *,
    company_id: int,
    contact_id: int | None,
    product_id: int,
    product_line_id: int,
    on: datetime.date | None = None,
    opportunity_id: int | None = None,
    requester_id: int | None = None,
) -> Verdict:
    """
    May this company / contact be pitched this product on `on` (default today)? At most two
    indexed queries: the best matching suppression, then (only when suppressed) an approved
    override for exactly this deal, or an unused one the requester asked for this pitch.
    """
    day = on or today()
    people = Q(contact__isnull=True)
    if contact_id is not None:
        people |= Q(contact_id=contact_id)
    suppression = (
        Suppression.objects.filter(company_id=company_id)
        .filter(active_on(day), people, _scope_q(product_id, product_line_id))
        .select_related(
            "company", "contact", "product", "product_line", "rule", "source_opportunity__owner"
        )
        .order_by(*_PRIORITY)
        .first()
    )
    if suppression is None:
        return Verdict()
    if suppression.reason == SuppressionReason.DO_NOT_CONTACT:
        return Verdict(suppression)
    overrides = SuppressionOverride.objects.filter(
        status=OverrideStatus.APPROVED,
        company_id=company_id,
        contact_id=contact_id,
        product_id=product_id,
    )
    if opportunity_id is not None:
        pitch = Q(opportunity_id=opportunity_id)
        if requester_id is not None:
            pitch |= Q(opportunity__isnull=True, used_at__isnull=True, requested_by_id=requester_id)
        overrides = overrides.filter(pitch)
    elif requester_id is not None:
        overrides = overrides.filter(
            opportunity__isnull=True, used_at__isnull=True, requested_by_id=requester_id
        )
    else:
        return Verdict(suppression)
    override = overrides.select_related("decided_by").order_by("-decided_at").first()
    return Verdict(suppression, override)


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
    close service inside its transaction, so a failed close leaves none behind.
    """
    rules = SuppressionRule.objects.filter(active=True, trigger_outcome=outcome)
    return Suppression.objects.bulk_create(
        [_derived(rule, opportunity, closed_on) for rule in rules]
    )


def lift_for_reopen(*, opportunity, actor: User) -> int:
    """A reopened deal no longer suppresses anything; its suppressions are kept, lifted."""
    return Suppression.objects.filter(
        source_opportunity=opportunity, lifted_at__isnull=True
    ).update(lifted_at=timezone.now(), lifted_by=actor, lift_reason="The deal was reopened.")


@transaction.atomic
def rule_rebuild(*, rule: SuppressionRule, batch_size: int = 2000) -> int:
    """
    Recompute a rule's suppressions from closed-deal history: drop the ones it made that are
    not lifted, and create those its current settings imply and that still run today. Lifted
    suppressions stay as they are (somebody decided on them).
    """
    from django.apps import apps

    Opportunity = apps.get_model("opportunities", "Opportunity")
    Suppression.objects.filter(rule=rule, lifted_at__isnull=True).delete()
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
            created += len(Suppression.objects.bulk_create(batch))
            batch = []
    created += len(Suppression.objects.bulk_create(batch))
    return created


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
    return suppression


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


# --- many at once: call lists and the API ------------------------------------------------------


@dataclass
class Pitch:
    """One row of a call list, already normalised."""

    email: str = ""
    phone: str = ""
    domain: str = ""
    product: str = ""


@dataclass(frozen=True)
class Result:
    suppressed: bool
    reason: str = ""
    until: datetime.date | None = None
    matched: bool = True


def _covers(s: Suppression, product_id: int, line_id: int) -> bool:
    return (
        s.scope == SuppressionScope.ALL
        or (s.scope == SuppressionScope.PRODUCT and s.product_id == product_id)
        or (s.scope == SuppressionScope.PRODUCT_LINE and s.product_line_id == line_id)
    )


def _best(candidates: Iterable[Suppression]) -> Suppression | None:
    ranked = sorted(
        candidates,
        key=lambda s: (
            s.reason != SuppressionReason.DO_NOT_CONTACT,
            s.until is not None,
            -(s.until.toordinal() if s.until else 0),
        ),
    )
    return ranked[0] if ranked else None


def check_many(
    pitches: list[Pitch], *, on: datetime.date | None = None, products: dict | None = None
) -> list[Result]:
    """
    Check a batch of call-list rows set-based: a fixed number of queries per batch (contacts
    by e-mail, by phone, companies by domain, their active suppressions), whatever its size.
    Without a product, any active suppression of the person or company counts.
    `products` maps lower-cased product names to (product_id, line_id); see product_index().
    """
    day = on or today()
    products = products if products is not None else product_index()
    emails = {p.email for p in pitches if p.email}
    phones = {p.phone for p in pitches if p.phone}
    domains = {p.domain for p in pitches if p.domain}
    by_email: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_phone: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_domain: dict[str, int] = {}
    if emails:
        for cid, company_id, email in Contact.objects.filter(email__in=emails).values_list(
            "id", "company_id", "email"
        ):
            by_email[email].append((cid, company_id))
    if phones:
        for cid, company_id, phone in Contact.objects.filter(
            phone_normalized__in=phones
        ).values_list("id", "company_id", "phone_normalized"):
            by_phone[phone].append((cid, company_id))
    if domains:
        by_domain = dict(Company.objects.filter(domain__in=domains).values_list("domain", "id"))
    company_ids = {c for rows in (*by_email.values(), *by_phone.values()) for _, c in rows}
    company_ids |= set(by_domain.values())
    suppressions: dict[int, list[Suppression]] = defaultdict(list)
    if company_ids:
        for s in (
            Suppression.objects.filter(company_id__in=company_ids)
            .filter(active_on(day))
            .select_related(
                "company", "contact", "product", "product_line", "rule", "source_opportunity__owner"
            )
        ):
            suppressions[s.company_id].append(s)

    results = []
    for pitch in pitches:
        people = by_email.get(pitch.email, []) + by_phone.get(pitch.phone, [])
        targets = set(people)
        if pitch.domain in by_domain:
            targets.add((None, by_domain[pitch.domain]))
        if not targets:
            results.append(Result(suppressed=False, matched=False))
            continue
        product = products.get(pitch.product.strip().lower()) if pitch.product else None
        candidates = []
        for contact_id, company_id in targets:
            for s in suppressions.get(company_id, []):
                if s.contact_id is not None and s.contact_id != contact_id:
                    continue
                if product is not None and not (
                    s.scope == SuppressionScope.ALL
                    or (s.scope == SuppressionScope.PRODUCT and s.product_id == product[0])
                    or (
                        s.scope == SuppressionScope.PRODUCT_LINE and s.product_line_id == product[1]
                    )
                ):
                    continue
                candidates.append(s)
        best = _best(candidates)
        if best is None:
            results.append(Result(suppressed=False))
        else:
            results.append(Result(suppressed=True, reason=describe(best), until=best.until))
    return results


def product_index() -> dict[str, tuple[int, int]]:
    """Product names (lower case) to (product id, line id), in one query."""
    from django.apps import apps

    Product = apps.get_model("opportunities", "Product")
    return {
        name.lower(): (pk, line_id)
        for pk, line_id, name in Product.objects.values_list("id", "line_id", "name")
    }
