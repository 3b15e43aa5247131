"""Reads of customer records. Companies and contacts are shared across the organisation."""

from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404

from customers.models import Company, Contact
from customers.normalize import normalize_domain


def companies_matching(query: str, limit: int = 10) -> QuerySet[Company]:
    """Autocomplete: names starting with the query first, then names containing it."""
    query = query.strip()
    if not query:
        return Company.objects.none()
    return (
        Company.objects.filter(name__icontains=query)
        .annotate(
            starts=Case(
                When(name__istartswith=query, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("starts", Lower("name").asc())
        .only("id", "name", "domain", "segment")[:limit]
    )


def company_detail(company_id: int) -> Company:
    return get_object_or_404(Company, pk=company_id)


def company_for_brief(user, company_id: int) -> Company:
    """
    The company of the pre-call brief, or 404, with its contacts prefetched (the page lists
    every one and the debrief form offers them) and, for a rep, `user_owns_deal`: whether one
    of their deals is there, which lets them edit it (accounts.access.can_edit_company).
    """
    from accounts.models import Role

    companies = Company.objects.prefetch_related("contacts")
    if user.role == Role.REP:
        # The deal model through the reverse relation: customers does not import opportunities.
        deal = Company._meta.get_field("opportunities").related_model
        owned = deal.objects.filter(company=OuterRef("pk"), owner=user)
        companies = companies.annotate(user_owns_deal=Exists(owned))
    return get_object_or_404(companies, pk=company_id)


def contacts_of(company: Company | int) -> QuerySet[Contact]:
    company_id = company.pk if isinstance(company, Company) else company
    return Contact.objects.filter(company_id=company_id).order_by("full_name")


def overrides_visible_to(user) -> QuerySet:
    """Override requests: a rep's own, a manager's teams', all for admins."""
    from accounts import access
    from customers.models import SuppressionOverride

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
    Pending override requests this user may decide (as customers.suppression.can_decide): a
    manager's teams' requests, every request for an administrator, never their own; none for a
    rep. Oldest first: the one waiting longest is answered first. A single query (the teams
    are joined, not looked up first), so that the navigation can count it on every page.
    """
    from accounts.models import Role
    from customers.models import OverrideStatus, SuppressionOverride

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
    import datetime

    from customers.suppression import today

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


def companies_filtered(*, q: str = "", segment: str = "", region: str = "") -> QuerySet[Company]:
    """The company list: a search on name or domain, and segment and region filters."""
    # Ordered by Lower(name) so the company_name_lower_idx index serves the sort.
    companies = Company.objects.order_by(Lower("name"), "id")
    if q:
        match = Q(name__icontains=q)
        domain = normalize_domain(q)
        if domain:
            match |= Q(domain__icontains=domain)
        companies = companies.filter(match)
    if segment:
        companies = companies.filter(segment=segment)
    if region:
        companies = companies.filter(region=region)
    return companies


def group_suppressions(active: list) -> list[dict]:
    """
    A company's active suppressions (with their `description`) as one line per product (or
    line, or everything) and person (or the whole company), for the brief: what, who, why,
    until when (the latest end; none if any is indefinite), and the suppressions behind it.
    Do-not-contact lines first, then those lasting longest.
    """
    from customers.models import SuppressionReason, SuppressionScope

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
