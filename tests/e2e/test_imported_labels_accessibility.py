"""axe-core on the pages that label imported history: no serious or critical violations."""

import datetime

import pytest
from django.utils import timezone

from insights import services
from tests.e2e.conftest import axe_violations, login, shot
from tests.factories import CompanyFactory, ProductFactory, imported_close

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_imported_labels_have_no_serious_accessibility_violations(
    axe_page, rep, admin_user, defaults, settings
):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 1
    company = CompanyFactory(name="Harbour Freight")
    product = ProductFactory(name="Fleet tracking")
    today = timezone.localdate()
    made = [
        imported_close(
            importer=admin_user,
            owner=rep,
            company=company,
            product=product,
            outcome="lost" if i % 2 else "won",
            closed_date=today - datetime.timedelta(days=i),
            reason=None if i % 2 else "Product fit",
        )
        for i in range(3)
    ]
    services.insights_rebuild()
    page = axe_page
    login(page, rep.email, settings.DEBRIEF_DEMO_PASSWORD)
    pages = {
        "deal": f"/opportunities/{made[0].opportunity_id}/",
        "reflection": f"/reflections/{made[0].pk}/",
        "company": f"/companies/{company.pk}/",
        "insights": "/insights/",
        "my-reflections": "/me/reflections/",
    }
    found = {}
    for name, path in pages.items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert "Imported" in page.content(), name
        found[name] = axe_violations(page)
        if found[name]:
            shot(page, f"axe-imported-{name}")
    problems = {name: v for name, v in found.items() if v}
    assert not problems, problems
