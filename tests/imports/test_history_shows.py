"""After an import, the insights count the history (or leave it out when asked)."""

import re

import pytest
from django.urls import reverse

from imports import services
from insights import services as insight_services
from insights.periods import Period
from reflections.models import Reflection

from .conftest import check_and_run, create, export, map_fixture_texts

CLOSED_DEALS = re.compile(r"<dt>Closed deals</dt><dd class=\"stat\">([\d,]+)</dd>")


@pytest.fixture
def imported(world, sales_ops, django_capture_on_commit_callbacks):
    history_import = create(world, export("salesforce"), default_owner=sales_ops)
    map_fixture_texts(world, history_import)
    return check_and_run(world, history_import, django_capture_on_commit_callbacks)


def _closed_deals_on_dashboard(client, day) -> int:
    quarter = Period.containing("quarter", day)
    response = client.get(
        reverse("insights:dashboard"), {"kind": "quarter", "period": quarter.start.isoformat()}
    )
    assert response.status_code == 200
    html = response.content.decode()
    if "No closed deals with a reflection" in html:
        return 0
    return int(CLOSED_DEALS.search(html)[1].replace(",", ""))


def test_the_insights_count_imported_history_unless_left_out(
    imported, world, admin_client_, frozen_today, settings
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    newest = Reflection.objects.order_by("-closed_date").first().closed_date
    quarter = Period.containing("quarter", newest)
    in_quarter = Reflection.objects.filter(
        closed_date__gte=quarter.start, closed_date__lt=quarter.end
    ).count()
    assert in_quarter > 0
    insight_services.insights_rebuild()
    assert _closed_deals_on_dashboard(admin_client_, newest) == in_quarter

    services.history_import_set_in_reports(actor=world, history_import=imported, in_reports=False)
    insight_services.insights_rebuild()
    assert _closed_deals_on_dashboard(admin_client_, newest) == 0


def test_the_pre_call_brief_shows_imported_history(imported, admin_client_):
    from customers.models import Company

    contoso = Company.objects.get(name="Contoso Ltd")
    response = admin_client_.get(reverse("customers:company_detail", args=[contoso.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Contoso - Analytics upsell" in html  # a won deal of the file, with its reflection
    assert "Imported from another CRM" in html  # never shown as a rep's answer
