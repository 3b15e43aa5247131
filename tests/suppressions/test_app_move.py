"""
The suppression models moved from the customers app to this one with their tables: the
migrations change only Django's bookkeeping (and relabel the content types that permissions
and the audit log point at), both ways, and keep every row.
"""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from suppressions import services
from suppressions.models import Suppression, SuppressionOverride, SuppressionRule
from tests.factories import CompanyFactory, ContactFactory

BEFORE = [("customers", "0007_mend_do_not_contact"), ("suppressions", None)]
TABLES = ("customers_suppressionrule", "customers_suppression", "customers_suppressionoverride")


def _counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 (fixed names)
            counts[table] = cursor.fetchone()[0]
    return counts


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_moving_back_and_forth_keeps_every_row_and_content_type(defaults, rep):
    company = CompanyFactory()
    for _ in range(3):
        services.do_not_contact_add(
            actor=rep, company=company, contact=ContactFactory(company=company), note="Asked"
        )
    before = _counts()
    assert before["customers_suppression"] == 3 and before["customers_suppressionrule"] >= 3
    moved = ContentType.objects.get_for_model(Suppression)
    assert moved.app_label == "suppressions"

    _migrate(BEFORE)
    assert _counts() == before
    ContentType.objects.clear_cache()
    old = ContentType.objects.get(pk=moved.pk)
    assert (old.app_label, old.model) == ("customers", "suppression")

    _migrate(_leaves())
    assert _counts() == before
    ContentType.objects.clear_cache()
    assert ContentType.objects.get(pk=moved.pk).app_label == "suppressions"
    assert Suppression.objects.count() == 3
    assert SuppressionRule.objects.count() == before["customers_suppressionrule"]
    assert SuppressionOverride.objects.count() == 0
