"""The pre-call brief after an import: the company's closed history, imported closes labelled."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import CompanyFactory, OpportunityFactory, ProductFactory, imported_close
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(db):
    return CompanyFactory(name="Harbour Freight")


def _ago(days: int) -> datetime.date:
    return timezone.localdate() - datetime.timedelta(days=days)


def _brief(client, company) -> str:
    response = client.get(reverse("customers:company_detail", args=[company.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _past_outcomes(html: str) -> str:
    return html.split('id="past-reflections"', 1)[1].split("</section>", 1)[0]


def test_brief_shows_an_imported_close_with_outcome_date_reason_and_label(
    rep_client, rep, admin_user, company, defaults
):
    closed = _ago(400)
    imported_close(
        importer=admin_user,
        owner=rep,
        company=company,
        product=ProductFactory(name="Fleet tracking"),
        outcome="lost",
        closed_date=closed,
        reason="Price",
        title="Fleet renewal 2025",
    )
    section = _past_outcomes(_brief(rep_client, company))
    assert "Fleet renewal 2025" in section
    assert "Lost" in section and "Fleet tracking" in section
    assert closed.strftime("%-d %b %Y") in section
    assert "Price" in section  # the main reason
    assert "Imported from another CRM" in section


def test_brief_labels_only_the_imported_closes(
    rep_client, rep, admin_user, company, lost_set, defaults
):
    close(
        rep,
        OpportunityFactory(owner=rep, company=company, title="Answered deal"),
        lost_answers(lost_set),
    )
    imported_close(
        importer=admin_user,
        owner=rep,
        company=company,
        outcome="won",
        closed_date=_ago(30),
        reason=None,
        title="Imported win",
    )
    section = _past_outcomes(_brief(rep_client, company))
    answered, imported = section.split("Answered deal", 1)[1], section.split("Imported win", 1)[1]
    assert "Imported from another CRM" not in answered.split("</article>", 1)[0]
    assert "Imported from another CRM" in imported.split("</article>", 1)[0]
    assert "Unknown / not sure" in imported.split("</article>", 1)[0]
    # Newest first: the answered deal closed today, the imported one a month ago.
    assert section.index("Answered deal") < section.index("Imported win")


def test_brief_query_count_does_not_grow_with_imported_history(
    rep_client, rep, admin_user, company, defaults
):
    def add(count, start):
        for i in range(count):
            imported_close(
                importer=admin_user,
                owner=rep,
                company=company,
                outcome="lost" if i % 2 else "won",
                closed_date=_ago(start + 30 * i),
                reason=None if i % 3 == 0 else ("Price" if i % 2 else "Product fit"),
            )

    def count() -> int:
        _brief(rep_client, company)  # warm the session and caches
        with CaptureQueriesContext(connection) as queries:
            _brief(rep_client, company)
        return len(queries.captured_queries)

    add(2, 10)
    before = count()
    add(20, 100)
    assert count() == before
    section = _past_outcomes(_brief(rep_client, company))
    assert section.count("Imported from another CRM") == 10  # the latest ten closes
