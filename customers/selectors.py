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
