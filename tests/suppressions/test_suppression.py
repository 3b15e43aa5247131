import datetime
import zoneinfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportunities import services as opportunity_services
from opportunities.models import Stage
from reflections import services as reflection_services
from reflections.models import Outcome
from suppressions import decisions
from suppressions import services as suppressions_services
from suppressions.models import (
    OverrideStatus,
    Suppression,
    SuppressionReason,
    SuppressionRule,
    SuppressionScope,
)
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
)
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

pytestmark = pytest.mark.django_db
LONDON = zoneinfo.ZoneInfo("Europe/London")


@pytest.fixture
def line(db):
    return ProductLineFactory(name="Payments")


@pytest.fixture
def product(line):
    return ProductFactory(line=line, name="Card Terminal")


@pytest.fixture
def sibling(line):
    return ProductFactory(line=line, name="Online Checkout")


@pytest.fixture
def elsewhere(db):
    return ProductFactory(line=ProductLineFactory(name="Analytics"), name="Dashboards")


@pytest.fixture
def company(db):
    return CompanyFactory(name="Brightwater Foods")


@pytest.fixture
def contact(company):
    return ContactFactory(company=company, full_name="Dana Buyer", email="dana@bright.example")


@pytest.fixture
def colleague(company):
    return ContactFactory(company=company, full_name="Colm Colleague")


def verdict(company, contact, product, on=None, **kw):
    return decisions.check(
        company_id=company.pk,
        contact_id=contact.pk if contact else None,
        product_id=product.pk,
        product_line_id=product.line_id,
        on=on,
        **kw,
    )


def closed(rep, company, contact, product, outcome, data):
    deal = OpportunityFactory(owner=rep, company=company, contact=contact, product=product)
    close(rep, deal, data, outcome=outcome)
    deal.refresh_from_db()
    return deal


def won_data():
    from reflections import selectors
    from reflections.models import QuestionKind, Reason

    won = selectors.prompt_set_for(Outcome.WON, None)
    primary = won.questions.get(kind=QuestionKind.PRIMARY_REASON)
    return {
        f"q_{primary.pk}": str(Reason.objects.get(outcome="won", label="Product fit").pk),
        f"q_{primary.pk}_source": "customer",
    }


def no_decision_data():
    from reflections import selectors
    from reflections.models import QuestionKind, Reason

    nd = selectors.prompt_set_for(Outcome.NO_DECISION, None)
    primary = nd.questions.get(kind=QuestionKind.PRIMARY_REASON)
    yes_no = nd.questions.get(kind=QuestionKind.YES_NO)
    return {
        f"q_{primary.pk}": str(Reason.objects.get(outcome="no_decision", label="Timing").pk),
        f"q_{primary.pk}_source": "rep",
        f"q_{yes_no.pk}": "1",
    }


# --- triggers and scopes ------------------------------------------------------------------------


def test_default_rules_exist():
    rules = {(r.trigger_outcome, r.scope, r.target, r.days) for r in SuppressionRule.objects.all()}
    assert rules == {
        ("lost", "product", "contact", 90),
        ("won", "product_line", "company", 180),
        ("no_decision", "product", "contact", 30),
    }


def test_lost_suppresses_that_product_for_that_contact_only(
    rep, lost_set, company, contact, colleague, product, sibling
):
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    assert verdict(company, contact, product).blocked
    assert not verdict(company, contact, sibling).suppressed
    assert not verdict(company, colleague, product).suppressed
    assert not verdict(company, None, product).suppressed
    s = Suppression.objects.get()
    assert (s.reason, s.scope, s.contact, s.product) == ("declined", "product", contact, product)


def test_won_suppresses_the_whole_line_for_the_whole_company(
    rep, company, contact, colleague, product, sibling, elsewhere
):
    closed(rep, company, contact, product, Outcome.WON, won_data())
    assert verdict(company, colleague, sibling).blocked
    assert verdict(company, None, product).blocked
    assert not verdict(company, contact, elsewhere).suppressed
    assert Suppression.objects.get().reason == SuppressionReason.BOUGHT


def test_no_decision_suppresses_product_for_contact_for_30_days(rep, company, contact, product):
    deal = closed(rep, company, contact, product, Outcome.NO_DECISION, no_decision_data())
    s = Suppression.objects.get()
    assert s.until == deal.closed_date + datetime.timedelta(days=29)
    assert verdict(company, contact, product).blocked


def test_the_message_names_reason_source_deal_rule_and_end(
    rep, lost_set, company, contact, product
):
    deal = closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    message = verdict(company, contact, product).message
    assert "Dana Buyer declined" in message
    assert deal.title in message and rep.full_name in message
    assert "Lost: leave the contact alone" in message
    until = deal.closed_date + datetime.timedelta(days=89)
    assert f"until {until.day} {until:%b %Y} (inclusive)" in message


# --- the boundary day, in the organisation's time zone --------------------------------------


@pytest.fixture
def summer_loss(rep, lost_set, company, contact, product):
    """Lost on 1 June 2026: a 90-day rule covers 1 June to 29 August, both included."""
    with time_machine.travel(datetime.datetime(2026, 6, 1, 12, tzinfo=LONDON)):
        closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    s = Suppression.objects.get()
    assert (s.starts_on, s.until) == (datetime.date(2026, 6, 1), datetime.date(2026, 8, 29))
    return s


@pytest.mark.parametrize(
    "moment, blocked",
    [
        (datetime.datetime(2026, 8, 29, 0, 0, tzinfo=LONDON), True),
        (datetime.datetime(2026, 8, 29, 23, 59, 59, tzinfo=LONDON), True),
        (datetime.datetime(2026, 8, 30, 0, 0, 1, tzinfo=LONDON), False),
        # 23:30 UTC on the 29th is already 00:30 on the 30th in London: the local day counts.
        (datetime.datetime(2026, 8, 29, 23, 30, tzinfo=datetime.UTC), False),
        (datetime.datetime(2026, 5, 31, 23, 59, tzinfo=LONDON), False),
    ],
    ids=["last-day-start", "last-day-end", "day-after", "utc-evening", "day-before-start"],
)
def test_boundary_days(summer_loss, company, contact, product, moment, blocked):
    with time_machine.travel(moment):
        assert verdict(company, contact, product).blocked is blocked


# --- enforcement when creating, editing and reopening -------------------------------------------


def _create(rep, company, contact, product):
    return opportunity_services.opportunity_create(
        actor=rep,
        owner=rep,
        company=company,
        contact=contact,
        product=product,
        title="Try again",
        amount=1000,
        expected_close_date=timezone.localdate() + datetime.timedelta(days=30),
    )


def test_creating_a_suppressed_pitch_is_refused_with_the_reason(
    rep, lost_set, company, contact, product, colleague
):
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    with pytest.raises(ValidationError, match="Dana Buyer declined") as exc:
        _create(rep, company, contact, product)
    assert [error.code for error in exc.value.error_list] == ["suppressed"]
    assert _create(rep, company, colleague, product).contact == colleague


def test_editing_into_a_suppressed_pitch_is_refused(
    rep, lost_set, company, contact, colleague, product
):
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    deal = _create(rep, company, colleague, product)
    with pytest.raises(ValidationError, match="declined"):
        opportunity_services.opportunity_update(actor=rep, opportunity=deal, contact=contact)
    deal.refresh_from_db()
    assert deal.contact == colleague


def test_reopening_lifts_the_deals_own_suppressions(rep, lost_set, company, contact, product):
    deal = closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    reflection_services.opportunity_reopen(actor=rep, opportunity=deal)
    s = Suppression.objects.get()
    assert s.lifted_at is not None and s.lift_reason == "The deal was reopened."
    assert not verdict(company, contact, product).suppressed


def test_reopening_is_refused_while_another_deal_suppresses_it(
    rep, teammate, lost_set, company, contact, product
):
    old = OpportunityFactory(owner=rep, company=company, contact=contact, product=product)
    close(rep, old, lost_answers(lost_set))
    old.refresh_from_db()
    suppressions_services.do_not_contact_add(
        actor=teammate, company=company, contact=contact, note="Asked"
    )
    with pytest.raises(ValidationError, match="do-not-contact"):
        reflection_services.opportunity_reopen(actor=rep, opportunity=old)
    old.refresh_from_db()
    assert old.stage == Stage.LOST
    assert Suppression.objects.filter(source_opportunity=old, lifted_at__isnull=True).exists()


# --- do-not-contact ----------------------------------------------------------------------------


def test_do_not_contact_blocks_everything_indefinitely_and_lifting_needs_a_reason(
    rep, manager, company, contact, product, elsewhere
):
    s = suppressions_services.do_not_contact_add(
        actor=rep, company=company, contact=contact, note="Asked not to be called"
    )
    contact.refresh_from_db()
    assert contact.do_not_contact and s.until is None
    assert verdict(company, contact, elsewhere, on=datetime.date(2040, 1, 1)).blocked
    with pytest.raises(PermissionDenied):
        suppressions_services.suppression_lift(actor=rep, suppression=s, reason="Changed mind")
    with pytest.raises(ValidationError):
        suppressions_services.suppression_lift(actor=manager, suppression=s, reason="  ")
    suppressions_services.suppression_lift(
        actor=manager, suppression=s, reason="Asked us to call back"
    )
    contact.refresh_from_db()
    s.refresh_from_db()
    assert not contact.do_not_contact and s.lift_reason == "Asked us to call back"
    assert not verdict(company, contact, product).suppressed


def test_do_not_contact_needs_a_note(rep, company):
    with pytest.raises(ValidationError):
        suppressions_services.do_not_contact_add(actor=rep, company=company, note="")


def test_do_not_contact_cannot_be_overridden(rep, company, contact, product):
    suppressions_services.do_not_contact_add(
        actor=rep, company=company, contact=contact, note="Asked"
    )
    with pytest.raises(ValidationError, match="cannot be overridden"):
        suppressions_services.override_request(
            actor=rep,
            company=company,
            contact=contact,
            product=product,
            justification="They called us back about it",
        )


def test_database_refuses_a_lift_without_reason(rep, company):
    from django.db import IntegrityError, transaction

    s = suppressions_services.do_not_contact_add(actor=rep, company=company, note="Asked")
    with pytest.raises(IntegrityError), transaction.atomic():
        Suppression.objects.filter(pk=s.pk).update(lifted_at=timezone.now(), lift_reason="")


# --- overrides ---------------------------------------------------------------------------------


@pytest.fixture
def pending(rep, lost_set, company, contact, product):
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    return suppressions_services.override_request(
        actor=rep,
        company=company,
        contact=contact,
        product=product,
        justification="Their new CFO invited us to re-pitch next week.",
    )


def test_rep_cannot_approve_even_their_own_request(pending, rep, teammate):
    for user in (rep, teammate):
        with pytest.raises(PermissionDenied):
            suppressions_services.override_decide(actor=user, override=pending, approve=True)


def test_manager_of_another_team_cannot_approve(pending, other_manager):
    with pytest.raises(PermissionDenied):
        suppressions_services.override_decide(actor=other_manager, override=pending, approve=True)
    pending.refresh_from_db()
    assert pending.status == OverrideStatus.PENDING


def test_approved_override_lets_exactly_one_deal_through(
    pending, manager, rep, company, contact, product
):
    suppressions_services.override_decide(
        actor=manager, override=pending, approve=True, note="Fine"
    )
    deal = _create(rep, company, contact, product)
    pending.refresh_from_db()
    assert pending.opportunity == deal and pending.used_at is not None
    with pytest.raises(ValidationError, match="declined"):
        _create(rep, company, contact, product)
    # The deal it let through stays editable on the same pitch.
    opportunity_services.opportunity_update(actor=rep, opportunity=deal, title="Renamed")


def test_approval_is_for_the_requester_only(pending, manager, teammate, company, contact, product):
    suppressions_services.override_decide(actor=manager, override=pending, approve=True)
    with pytest.raises(ValidationError):
        _create(teammate, company, contact, product)


def test_declining_needs_a_note_and_keeps_the_block(
    pending, manager, rep, company, contact, product
):
    with pytest.raises(ValidationError):
        suppressions_services.override_decide(actor=manager, override=pending, approve=False)
    suppressions_services.override_decide(
        actor=manager, override=pending, approve=False, note="Too soon"
    )
    with pytest.raises(ValidationError):
        _create(rep, company, contact, product)


def test_deciding_twice_is_refused(pending, manager, admin_user):
    suppressions_services.override_decide(actor=manager, override=pending, approve=True)
    with pytest.raises(ValidationError, match="approved already"):
        suppressions_services.override_decide(
            actor=admin_user, override=pending, approve=False, note="x"
        )


def test_a_request_needs_a_suppression_and_a_justification(rep, company, contact, product):
    with pytest.raises(ValidationError, match="Nothing suppresses"):
        suppressions_services.override_request(
            actor=rep, company=company, contact=contact, product=product, justification="x" * 20
        )
    with pytest.raises(ValidationError):
        suppressions_services.override_request(
            actor=rep, company=company, contact=contact, product=product, justification="pls"
        )


# --- rules ----------------------------------------------------------------------------------


def test_a_rule_change_applies_to_future_closes_and_rebuild_applies_it_to_history(
    rep, lost_set, company, contact, product
):
    first = closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    rule = SuppressionRule.objects.get(trigger_outcome="lost")
    rule.days = 10
    rule.scope = SuppressionScope.ALL
    rule.save()
    old = Suppression.objects.get(source_opportunity=first)
    assert old.until == first.closed_date + datetime.timedelta(days=89)
    created = suppressions_services.rule_rebuild(rule=rule)
    assert created == 1
    rebuilt = Suppression.objects.get(source_opportunity=first)
    assert rebuilt.until == first.closed_date + datetime.timedelta(days=9)
    assert rebuilt.scope == SuppressionScope.ALL and rebuilt.product is None


def test_rebuild_keeps_lifted_suppressions(rep, manager, lost_set, company, contact, product):
    deal = closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    s = Suppression.objects.get(source_opportunity=deal)
    suppressions_services.suppression_lift(actor=manager, suppression=s, reason="Customer asked")
    rule = SuppressionRule.objects.get(trigger_outcome="lost")
    assert suppressions_services.rule_rebuild(rule=rule) == 0
    assert Suppression.objects.get().lift_reason == "Customer asked"


def test_inactive_rule_derives_nothing(rep, lost_set, company, contact, product):
    SuppressionRule.objects.filter(trigger_outcome="lost").update(active=False)
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    assert not Suppression.objects.exists()


# --- query budgets ----------------------------------------------------------------------------


def test_single_check_takes_at_most_three_queries(pending, manager, rep, company, contact, product):
    suppressions_services.override_decide(actor=manager, override=pending, approve=True)
    for _ in range(30):
        Suppression.objects.create(
            company=company,
            scope=SuppressionScope.ALL,
            reason=SuppressionReason.DECLINED,
            starts_on=datetime.date(2020, 1, 1),
            until=datetime.date(2020, 2, 1),
        )
    with CaptureQueriesContext(connection) as queries:
        result = verdict(company, contact, product, requester_id=rep.pk)
    assert result.suppressed and not result.blocked
    assert len(queries) <= 3, [q["sql"] for q in queries]
    unrelated = ProductFactory()
    with CaptureQueriesContext(connection) as queries:
        verdict(company, None, unrelated)
    assert len(queries) == 1


def test_check_many_uses_a_fixed_number_of_queries(rep, lost_set, company, contact, product):
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    index = decisions.product_index()
    for size in (10, 1000):
        pitches = [
            decisions.Pitch(
                email=f"x{i}@nowhere.example", phone=f"+4420794{i:05d}", domain=f"n{i}.example"
            )
            for i in range(size)
        ] + [decisions.Pitch(email="dana@bright.example", product="card terminal")]
        with CaptureQueriesContext(connection) as queries:
            results = decisions.check_many(pitches, products=index)
        assert len(queries) == 4
        assert results[-1].suppressed and "declined" in results[-1].reason
        assert not results[0].suppressed and not results[0].matched


def test_a_flag_without_a_suppression_is_mended_and_then_refused_everywhere(rep, db):
    """Data from before flag and suppression were kept in step: the migration mends both ways."""
    from importlib import import_module

    from django.db.migrations.loader import MigrationLoader

    from customers.models import Contact
    from suppressions.models import Suppression
    from tests.factories import CompanyFactory, ContactFactory, ProductFactory

    company = CompanyFactory()
    flagged_only = ContactFactory(company=company, do_not_contact=True)
    suppressed_only = ContactFactory(company=company)
    suppressions_services.do_not_contact_add(
        actor=rep, company=company, contact=suppressed_only, note="Asked us to stop"
    )
    Contact.objects.filter(pk=suppressed_only.pk).update(do_not_contact=False)
    product = ProductFactory()
    assert not decisions.check(
        company_id=company.pk,
        contact_id=flagged_only.pk,
        product_id=product.pk,
        product_line_id=product.line_id,
    ).suppressed  # the gap the migration closes
    # The models as they were when the migration was written (customers' own, then).
    node = ("customers", "0007_mend_do_not_contact")
    apps = MigrationLoader(connection).project_state(node).apps
    import_module("customers.migrations.0007_mend_do_not_contact").mend(apps, None)
    for contact in (flagged_only, suppressed_only):
        contact.refresh_from_db()
        assert contact.do_not_contact
        verdict = decisions.check(
            company_id=company.pk,
            contact_id=contact.pk,
            product_id=product.pk,
            product_line_id=product.line_id,
        )
        assert verdict.suppressed
    assert Suppression.objects.filter(contact=flagged_only, reason="do_not_contact").count() == 1


def test_adding_many_do_not_contacts_keeps_flag_and_suppression_in_step(rep, db):
    from customers.models import Contact
    from suppressions.models import Suppression
    from tests.factories import ContactFactory

    contacts = [ContactFactory() for _ in range(3)]
    suppressions_services.do_not_contact_add_many(actor=rep, contacts=contacts, note="Asked")
    assert Contact.objects.filter(do_not_contact=True).count() == 3
    assert Suppression.objects.filter(reason="do_not_contact", lifted_at__isnull=True).count() == 3
