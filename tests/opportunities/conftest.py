"""Fixtures for the pipeline and deal-form tests: bulk deals and a fast query-count helper."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportunities.models import Opportunity, Stage
from tests.factories import CompanyFactory, ContactFactory, ProductFactory


@pytest.fixture
def bulk_deals(db):
    """
    Make `n` open deals for `owner` with one bulk insert (sharing one company, contact and
    product): enough rows to show that a page's query count does not grow with the data.
    """
    company = CompanyFactory(name="Bulk Ltd")
    contact = ContactFactory(company=company)
    product = ProductFactory()
    today = timezone.localdate()

    def make(owner, n: int, **overrides) -> list[Opportunity]:
        rows = [
            Opportunity(
                **{
                    "company": company,
                    "contact": contact,
                    "product": product,
                    "owner": owner,
                    "title": f"Bulk deal {i:04d}",
                    "amount": Decimal(1000 + i),
                    "stage": Stage.PROPOSAL,
                    "expected_close_date": today + datetime.timedelta(days=i % 90),
                    "next_step": "Call back" if i % 2 else "",
                    "next_step_due": today - datetime.timedelta(days=1) if i % 2 else None,
                    **overrides,
                }
            )
            for i in range(n)
        ]
        return Opportunity.objects.bulk_create(rows)

    return make


@pytest.fixture
def count_queries():
    """count_queries(fn) -> (number of queries fn ran, fn's return value)."""

    def run(fn):
        with CaptureQueriesContext(connection) as ctx:
            result = fn()
        return len(ctx.captured_queries), result

    return run
