"""
The extra-large scale of seed_demo (#16, #14) at a sliver of its size: the same demo rules, the
counts of the XL shape (ten contacts a company), and on PostgreSQL the rows written with COPY.
The full size is seeded by `make bench BENCH_ARGS="--scale xl"` into its own database.
"""

import pytest
from django.core.management import call_command
from django.db.models import Count, Exists, OuterRef, Q

from accounts import demo as accounts_demo
from bench.copyload import copy_bulk_create, copy_rows
from customers import demo as customers_demo
from customers.models import Company, Contact
from opportunities import demo as opportunities_demo
from opportunities.models import CLOSED_STAGES, Competitor, Opportunity
from reflections.models import Answer, Reflection
from suppressions.models import Suppression, SuppressionReason
from surveys.models import SurveyAnswer

FRACTION = 0.002  # 200 companies, 2,000 contacts, 2,000 deals


def _seed_xl_sliver(settings):
    settings.DEBUG = True
    call_command("seed_demo", "--scale", "xl", "--fraction", str(FRACTION))


def _assert_coherent():
    # The XL shape: its share of 100,000 companies, about ten contacts each, 1M deals' share.
    assert Company.objects.count() == 200
    per_company = Company.objects.annotate(n=Count("contacts")).values_list("n", flat=True)
    assert set(per_company) <= {8, 10, 12}
    assert 1800 <= Contact.objects.count() <= 2200
    assert Opportunity.objects.count() == 2000

    # Every closed deal has exactly one current reflection, by its owner, with answers.
    closed = Opportunity.objects.filter(stage__in=CLOSED_STAGES)
    assert closed.count() > 0
    current = Reflection.objects.filter(current=True)
    assert current.count() == closed.count()
    assert not closed.exclude(
        Exists(current.filter(opportunity=OuterRef("pk"), author=OuterRef("owner")))
    ).exists()
    assert not current.exclude(Exists(Answer.objects.filter(reflection=OuterRef("pk")))).exists()
    assert not Reflection.objects.exclude(opportunity__stage__in=CLOSED_STAGES).exists()

    # Suppressions by the rules, and do-not-contact flags that agree with their suppressions.
    assert Suppression.objects.exclude(reason=SuppressionReason.DO_NOT_CONTACT).exists()
    dnc = Suppression.objects.filter(
        reason=SuppressionReason.DO_NOT_CONTACT, lifted_at__isnull=True
    )
    flagged = Contact.objects.filter(do_not_contact=True)
    assert flagged.exists()
    assert set(flagged.values_list("pk", flat=True)) == set(
        dnc.values_list("contact_id", flat=True)
    )

    # Buyers' survey answers in proportion to the closed deals (about a third are surveyed).
    answered = SurveyAnswer.objects.values("request").distinct().count()
    assert 0 < answered < closed.count()


@pytest.mark.django_db
def test_xl_scale_seeds_coherent_data_and_forgets_itself(settings):
    _seed_xl_sliver(settings)
    _assert_coherent()
    # The scale is taught for the seeding only; the small and large scales are as they were.
    assert "xl" not in customers_demo.COMPANIES
    assert "xl" not in opportunities_demo.DEALS
    assert "xl" not in accounts_demo.REPS_PER_TEAM
    assert customers_demo.CONTACTS_PER_COMPANY == ([1, 2, 3], [35, 40, 25])


@pytest.mark.needs_postgres
@pytest.mark.django_db
def test_xl_scale_seeds_coherent_data_with_copy_on_postgresql(settings, monkeypatch):
    copied: list[str] = []
    real_copy_rows = copy_rows

    def recording_copy_rows(objs, *, using):
        if objs:
            copied.append(type(objs[0])._meta.label)
        return real_copy_rows(objs, using=using)

    monkeypatch.setattr("bench.copyload.copy_rows", recording_copy_rows)
    _seed_xl_sliver(settings)
    _assert_coherent()
    # The big tables went in with COPY, not INSERT.
    assert {
        "customers.Company",
        "customers.Contact",
        "suppressions.Suppression",
        "opportunities.Opportunity",
        "reflections.Reflection",
        "reflections.Answer",
    } <= set(copied)


@pytest.mark.needs_postgres
@pytest.mark.django_db
def test_copy_rows_assigns_ids_and_moves_the_sequence_past_them():
    with copy_bulk_create():
        made = Competitor.objects.bulk_create(
            [Competitor(name=f"Rival {n}", website="") for n in range(3)]
        )
    ids = [c.pk for c in made]
    assert None not in ids and ids == sorted(ids) and len(set(ids)) == 3
    assert set(
        Competitor.objects.filter(name__startswith="Rival ").values_list("pk", flat=True)
    ) == set(ids)
    # An ordinary insert afterwards does not collide with the copied rows.
    later = Competitor.objects.create(name="Rival later", website="")
    assert later.pk > max(ids)
    assert all(not c._state.adding for c in made)


@pytest.mark.needs_postgres
@pytest.mark.django_db
def test_copy_keeps_constraints_checked():
    from django.db import IntegrityError, transaction

    company = Company.objects.create(name="Acme Ltd", domain="acme.example")
    Contact.objects.create(company=company, full_name="Ann One", email="ann@acme.example")
    with pytest.raises(IntegrityError), transaction.atomic(), copy_bulk_create():
        Contact.objects.bulk_create(
            [Contact(company=company, full_name="Ann Again", email="ann@acme.example")]
        )
    assert Contact.objects.filter(company=company).count() == 1
    assert not Contact.objects.filter(Q(full_name="Ann Again")).exists()
