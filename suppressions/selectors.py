"""Reads of suppressions and exception requests, for the pages and the company brief."""

import datetime

from django.db.models import Q, QuerySet

from accounts import access
from accounts.models import Role
from customers.models import Company, Contact
from suppressions.decisions import today
from suppressions.models import (
    OverrideStatus,
    SuppressionOverride,
    SuppressionReason,
    SuppressionScope,
)


def overrides_visible_to(user) -> QuerySet:
    """Override requests: a rep's own, a manager's teams', all for admins."""
    return (
        SuppressionOverride.objects.filter(access.owner_q(user, "requested_by"))
        .select_related(
            "company",
            "contact",
            "product",
            "requested_by",
            "decided_by",
            "opportunity",
            "suppression",
        )
        .order_by("-requested_at", "-id")
    )


def overrides_waiting_for(user) -> QuerySet:
    """
    Pending override requests this user may decide (as services.can_decide): a
    manager's teams' requests, every request for an administrator, never their own; none for a
    rep. Oldest first: the one waiting longest is answered first. A single query (the teams
    are joined, not looked up first), so that the navigation can count it on every page.
    """
    if not user.is_authenticated or not user.is_active or user.role == Role.REP:
        return SuppressionOverride.objects.none()
    waiting = SuppressionOverride.objects.filter(status=OverrideStatus.PENDING).exclude(
        requested_by=user
    )
    if user.role == Role.MANAGER:
        waiting = waiting.filter(requested_by__team__managers=user)
    return waiting.select_related(
        "company", "contact", "product", "requested_by", "suppression"
    ).order_by("requested_at", "id")


def suppressions_of(
    company: Company, *, recent_days: int = 90, contacts: list[Contact] | None = None
) -> dict:
    """
    A company's active suppressions, and those that ended or were lifted recently. `contacts`
    (the company's, when the caller has them) name the people without joining them.
    """
    day = today()
    # Through the company's manager, so each row knows its company without a join; the small
    # catalogue tables and the source deal are joined, whoever lifted one is read only if one
    # is listed. Joining all seven related tables cost more to plan than to run.
    rows = list(
        company.suppressions.filter(
            Q(until__isnull=True) | Q(until__gte=day - datetime.timedelta(days=recent_days))
        )
        .select_related("product", "product_line", "rule", "source_opportunity__owner")
        .prefetch_related("lifted_by")
        .order_by("-starts_on", "-id")[:50]
    )
    by_id = {contact.pk: contact for contact in contacts or ()}
    for row in rows:
        if row.contact_id in by_id:
            row.contact = by_id[row.contact_id]
    active = [s for s in rows if s.is_active_on(day)]
    ended = [s for s in rows if not s.is_active_on(day) and s.starts_on <= day]
    return {"active": active, "ended": ended}


def group_suppressions(active: list) -> list[dict]:
    """
    A company's active suppressions (with their `description`) as one line per product (or
    line, or everything) and person (or the whole company), for the brief: what, who, why,
    until when (the latest end; none if any is indefinite), and the suppressions behind it.
    Do-not-contact lines first, then those lasting longest.
    """
    groups: dict[tuple, dict] = {}
    for s in active:
        key = (s.contact_id, s.scope, s.product_id, s.product_line_id)
        group = groups.get(key)
        if group is None:
            if s.reason == SuppressionReason.DO_NOT_CONTACT:
                what = "Any contact at all"
            elif s.scope == SuppressionScope.ALL:
                what = "Anything"
            elif s.scope == SuppressionScope.PRODUCT:
                what = s.product.name
            else:
                what = f"Any {s.product_line.name} product"
            group = groups[key] = {
                "what": what,
                "who": s.contact.full_name if s.contact_id else "Whole company",
                "reasons": [],
                "until": s.until,
                "indefinite": False,
                "do_not_contact": False,
                "items": [],
            }
        group["items"].append(s)
        label = s.get_reason_display()
        if label not in group["reasons"]:
            group["reasons"].append(label)
        group["do_not_contact"] |= s.reason == SuppressionReason.DO_NOT_CONTACT
        if s.until is None:
            group["indefinite"] = True
        elif group["until"] is None or s.until > group["until"]:
            group["until"] = s.until
    return sorted(
        groups.values(),
        key=lambda g: (
            not g["do_not_contact"],
            not g["indefinite"],
            -(g["until"].toordinal() if g["until"] else 0),
            g["what"],
        ),
    )


# --- call-list jobs ----------------------------------------------------------------------------
def call_list_jobs_visible_to(user) -> QuerySet:
    """Call-list jobs a person may open: their own; an administrator's, everyone's."""
    from suppressions.models import CallListJob

    jobs = CallListJob.objects.select_related("owner")
    if user.role == Role.ADMIN:
        return jobs
    return jobs.filter(owner=user)


def call_list_jobs_of_token(token) -> QuerySet:
    """Call-list jobs an API token sent: only its own."""
    from suppressions.models import CallListJob

    return CallListJob.objects.filter(api_token=token)
