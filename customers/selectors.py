"""Reads of customer records. Companies and contacts are shared across the organisation."""

from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404

from customers.models import Company, Contact


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


def contacts_of(company: Company | int) -> QuerySet[Contact]:
    company_id = company.pk if isinstance(company, Company) else company
    return Contact.objects.filter(company_id=company_id).order_by("full_name")
