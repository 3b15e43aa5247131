"""
The fast paths of the suppression checks against plain reference implementations: the single
check's one narrow query against the ORM query it replaced, and check_many's decisions on
tuples (and what it carries from batch to batch of a file) against candidates built from model
instances and described with describe().
"""

import datetime

import pytest
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suppressions import decisions
from suppressions import services as suppressions_services
from suppressions.models import Suppression, SuppressionReason, SuppressionRule, SuppressionScope
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
)

pytestmark = pytest.mark.django_db
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DAY = datetime.date(2026, 6, 15)


@pytest.fixture
def world(rep):
    """Three companies with two contacts each, three products in two lines, two past deals."""
    payments = ProductLineFactory(name="Payments")
    analytics = ProductLineFactory(name="Analytics")
    products = [
        ProductFactory(line=payments, name="Card Terminal"),
        ProductFactory(line=payments, name="Online Checkout"),
        ProductFactory(line=analytics, name="Dashboards"),
    ]
    companies = []
    for i in range(3):
        company = CompanyFactory(name=f"Company {i}", domain=f"company{i}.example")
        contacts = [
            ContactFactory(
                company=company,
                full_name=f"Person {i}{j}",
                email=f"p{i}{j}@company{i}.example",
                phone=f"020 7946 0{i}{j}0",
            )
            for j in range(2)
        ]
        companies.append((company, contacts))
    deals = [
        OpportunityFactory(
            owner=rep, company=companies[0][0], contact=companies[0][1][0], product=products[0]
        ),
        OpportunityFactory(
            owner=rep, company=companies[1][0], contact=companies[1][1][1], product=products[2]
        ),
    ]
    return {
        "companies": companies,
        "products": products,
        "deals": deals,
        "rules": list(SuppressionRule.objects.order_by("id")),
    }


def _spec():
    """A suppression, as indexes into the world; dates as day offsets from DAY."""
    return st.fixed_dictionaries(
        {
            "company": st.integers(0, 2),
            "contact": st.one_of(st.none(), st.integers(0, 1)),
            "scope": st.sampled_from(SuppressionScope.values),
            "product": st.integers(0, 2),
            "reason": st.sampled_from(SuppressionReason.values),
            "starts": st.integers(-60, 3),
            # Few distinct lengths, so that ties on the end date happen.
            "length": st.one_of(st.none(), st.sampled_from([0, 10, 30, 30, 90])),
            "lifted": st.booleans(),
            "deal": st.one_of(st.none(), st.integers(0, 1)),
            "rule": st.booleans(),
            "note": st.sampled_from(["", "Asked not to be called"]),
        }
    )


def _create(world, specs) -> list[Suppression]:
    created = []
    for spec in specs:
        company, contacts = world["companies"][spec["company"]]
        product = world["products"][spec["product"]]
        scope = spec["scope"]
        starts_on = DAY + datetime.timedelta(days=spec["starts"])
        length = spec["length"]
        lifted = spec["lifted"]
        created.append(
            Suppression.objects.create(
                company=company,
                contact=None if spec["contact"] is None else contacts[spec["contact"]],
                scope=scope,
                product=product if scope == SuppressionScope.PRODUCT else None,
                product_line=product.line if scope == SuppressionScope.PRODUCT_LINE else None,
                reason=spec["reason"],
                note=spec["note"],
                source_opportunity=None if spec["deal"] is None else world["deals"][spec["deal"]],
                rule=world["rules"][spec["company"]] if spec["rule"] else None,
                starts_on=starts_on,
                until=None if length is None else starts_on + datetime.timedelta(days=length),
                lifted_at=timezone.now() if lifted else None,
                lift_reason="Customer asked" if lifted else "",
            )
        )
    return created


def _rank(s: Suppression) -> tuple:
    """The documented order: do-not-contact, longest-lasting, newest start, newest id."""
    return (
        s.reason != SuppressionReason.DO_NOT_CONTACT,
        s.until is not None,
        -(s.until.toordinal() if s.until else 0),
        -s.starts_on.toordinal(),
        -s.pk,
    )


def _covers(s: Suppression, product) -> bool:
    return product is None or (
        s.scope == SuppressionScope.ALL
        or (s.scope == SuppressionScope.PRODUCT and s.product_id == product.pk)
        or (s.scope == SuppressionScope.PRODUCT_LINE and s.product_line_id == product.line_id)
    )


def _candidates(world, pitch: decisions.Pitch, products) -> list[Suppression] | None:
    """Every active suppression that applies to the pitch (None: nobody known), from models."""
    targets = set()
    for company, contacts in world["companies"]:
        for contact in contacts:
            if pitch.email == contact.email or pitch.phone == contact.phone_normalized:
                targets.add((contact.pk, company.pk))
        if pitch.domain == company.domain:
            targets.add((None, company.pk))
    if not targets:
        return None
    by_name = {p.name.lower(): p for p in products}
    product = by_name.get(pitch.product.strip().lower()) if pitch.product else None
    active = Suppression.objects.filter(decisions.active_on(DAY)).select_related(
        "company", "contact", "product", "product_line", "rule", "source_opportunity__owner"
    )
    return [
        s
        for s in active
        if any(
            s.company_id == company_id and s.contact_id in (None, contact_id)
            for contact_id, company_id in targets
        )
        and _covers(s, product)
    ]


def _pitches(world):
    people = [c for _, contacts in world["companies"] for c in contacts]
    email = st.one_of(
        st.just(""), st.just("stranger@nowhere.example"), st.sampled_from([c.email for c in people])
    )
    phone = st.one_of(st.just(""), st.sampled_from([c.phone_normalized for c in people]))
    domain = st.one_of(
        st.just(""),
        st.just("nowhere.example"),
        st.sampled_from([c.domain for c, _ in world["companies"]]),
    )
    product = st.one_of(
        st.just(""),
        st.just("Not A Product"),
        st.sampled_from([" card terminal", "ONLINE CHECKOUT", "Dashboards"]),
    )
    return st.builds(decisions.Pitch, email=email, phone=phone, domain=domain, product=product)


def test_check_many_decides_and_explains_like_the_reference(world):
    @PROPERTY
    @given(specs=st.lists(_spec(), max_size=8), pitches=st.lists(_pitches(world), min_size=1))
    def check(specs, pitches):
        with transaction.atomic():
            _create(world, specs)
            expected = []
            for pitch in pitches:
                candidates = _candidates(world, pitch, world["products"])
                if candidates is None:
                    expected.append(decisions.Result(suppressed=False, matched=False))
                elif not candidates:
                    expected.append(decisions.Result(suppressed=False))
                else:
                    best = min(candidates, key=_rank)
                    reason = decisions.describe(best)
                    expected.append(decisions.Result(True, reason, best.until, kind=best.reason))
            assert decisions.check_many(pitches, on=DAY) == expected
            # Batch by batch with what earlier batches read, as a call list does; and with a
            # cache that forgets after every batch.
            forgetful = decisions.Lookups()
            forgetful.MAX_HELD = 1
            for lookups in (decisions.Lookups(), forgetful):
                results = []
                for start in range(0, len(pitches), 3):
                    batch = pitches[start : start + 3]
                    results += decisions.check_many(batch, on=DAY, lookups=lookups)
                assert results == expected
            transaction.set_rollback(True)

    check()


def _old_check_winner(company_id, contact_id, product, day):
    """The single check's ORM query before it was narrowed (the reference)."""
    people = Q(contact__isnull=True)
    if contact_id is not None:
        people |= Q(contact_id=contact_id)
    scope = (
        Q(scope=SuppressionScope.ALL)
        | Q(scope=SuppressionScope.PRODUCT, product_id=product.pk)
        | Q(scope=SuppressionScope.PRODUCT_LINE, product_line_id=product.line_id)
    )
    return (
        Suppression.objects.filter(company_id=company_id)
        .filter(decisions.active_on(day), people, scope)
        .order_by(
            Case(
                When(reason=SuppressionReason.DO_NOT_CONTACT, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ).asc(),
            F("until").desc(nulls_first=True),
            F("id").desc(),
        )
        .first()
    )


def test_single_check_picks_what_the_old_query_picked(world):
    @PROPERTY
    @given(
        specs=st.lists(_spec(), max_size=8),
        company=st.integers(0, 2),
        contact=st.one_of(st.none(), st.integers(0, 1)),
        product=st.integers(0, 2),
    )
    def check(specs, company, contact, product):
        with transaction.atomic():
            _create(world, specs)
            company, contacts = world["companies"][company]
            contact_id = None if contact is None else contacts[contact].pk
            product = world["products"][product]
            old = _old_check_winner(company.pk, contact_id, product, DAY)
            verdict = decisions.check(
                company_id=company.pk,
                contact_id=contact_id,
                product_id=product.pk,
                product_line_id=product.line_id,
                on=DAY,
            )
            assert verdict.suppressed is (old is not None)
            if old is not None:
                assert verdict.suppression.pk == old.pk and verdict.until == old.until
                # The winner's sentence first; the others that apply follow it.
                assert verdict.sentences[0] == decisions.describe(old)
                assert verdict.message.startswith(decisions.describe(old))
                # Where check_many sees the same single target, it agrees on the outcome.
                pitch = decisions.Pitch(
                    email=contacts[contact].email if contact is not None else "",
                    domain="" if contact is not None else company.domain,
                    product=product.name,
                )
                many = decisions.check_many([pitch], on=DAY)[0]
                assert many.suppressed and many.until == old.until
            transaction.set_rollback(True)

    check()


def test_message_is_read_once_in_one_query(world):
    company, (dana, _) = world["companies"][0]
    s = suppressions_services.do_not_contact_add(
        actor=world["deals"][0].owner, company=company, contact=dana, note="Asked"
    )
    product = world["products"][0]
    verdict = decisions.check(
        company_id=company.pk,
        contact_id=dana.pk,
        product_id=product.pk,
        product_line_id=product.line_id,
    )
    with CaptureQueriesContext(connection) as queries:
        assert verdict.message == verdict.message == decisions.describe(s)
    assert len(queries) == 1


def test_describe_many_says_what_describe_says(world):
    specs = [
        {"company": 0, "contact": 0, "scope": "product", "product": 0, "reason": "declined"},
        {"company": 1, "contact": None, "scope": "product_line", "product": 2, "reason": "bought"},
        {"company": 2, "contact": 1, "scope": "all", "product": 0, "reason": "no_decision"},
        {"company": 0, "contact": None, "scope": "all", "product": 0, "reason": "do_not_contact"},
    ]
    for i, spec in enumerate(specs):
        spec.update(
            starts=-i,
            length=None if spec["reason"] == "do_not_contact" else 30,
            lifted=False,
            deal=i % 2 if i < 3 else None,
            rule=i < 2,
            note="Asked not to be called" if i == 3 else "",
        )
    created = _create(world, specs)
    texts = decisions.describe_many(s.pk for s in created)
    assert texts == {s.pk: decisions.describe(s) for s in created}
    assert "Person 00 declined in “Deal" in texts[created[0].pk]
    assert texts[created[3].pk].endswith("(Asked not to be called).")


def test_a_later_batch_reads_only_what_is_new(world):
    company, (dana, colm) = world["companies"][0]
    suppressions_services.do_not_contact_add(
        actor=world["deals"][0].owner, company=company, contact=dana, note="Asked"
    )
    lookups = decisions.Lookups()
    first = [decisions.Pitch(email=dana.email), decisions.Pitch(domain=company.domain)]
    with CaptureQueriesContext(connection) as queries:
        results = decisions.check_many(first, lookups=lookups, products={})
    assert [r.suppressed for r in results] == [True, False]
    assert len(queries) == 3  # people, domains, suppressions (no deal to read)
    with CaptureQueriesContext(connection) as queries:
        again = decisions.check_many(first, lookups=lookups, products={})
    assert again == results and len(queries) == 0
    with CaptureQueriesContext(connection) as queries:
        colm_result = decisions.check_many(
            [decisions.Pitch(email=colm.email)], lookups=lookups, products={}
        )
    assert not colm_result[0].suppressed and len(queries) == 1  # only the new person


def test_any_of_matches_exactly_the_values_given(db):
    from customers.models import Contact

    odd = ['quo"te@x.example', "back\\slash@x.example", "com,ma@x.example", "{br}@x.example"]
    odd += ["null", "naïve@x.example", "sp ace@x.example", "'single'@x.example"]
    company = CompanyFactory()
    contacts = [ContactFactory(company=company, email=email) for email in odd]
    ContactFactory(company=company, email="other@x.example")
    found = Contact.objects.filter(decisions.AnyOf(F("email"), set(odd) | {"", "x"}))
    assert sorted(found.values_list("email", flat=True)) == sorted(odd)
    ids = {c.pk for c in contacts} | {2**40}
    assert set(Contact.objects.filter(decisions.AnyOf(F("id"), ids))) == set(contacts)
    mixed = Contact.objects.filter(decisions.AnyOf(F("email"), {odd[0], 5}))
    assert list(mixed.values_list("email", flat=True)) == [odd[0]]
