"""
The change log and the pull feed (GET /api/suppressions/changes): every write path records
its changes in its own transaction, ends are reported on the day they pass, and the feed
serves every change exactly once across pages, also while writers commit out of order
(PostgreSQL, real concurrent transactions).
"""

import datetime
import threading

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.tokens import api_token_create, api_token_revoke
from reflections.models import Outcome
from reflections.services import opportunity_reopen
from suppressions import feed
from suppressions import services as suppressions_services
from suppressions.models import (
    ChangeKind,
    Suppression,
    SuppressionChange,
    SuppressionRule,
    WebhookDelivery,
)
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
)
from tests.reflections.conftest import lost_answers
from tests.suppressions.test_suppression import closed

pytestmark = pytest.mark.django_db
URL = reverse("api_suppression_changes")


@pytest.fixture
def token(db):
    return api_token_create(name="Dialler")[1]


@pytest.fixture
def dana(db):
    company = CompanyFactory(name="Brightwater Foods", domain="brightwater.example")
    return ContactFactory(
        company=company,
        full_name="Dana Buyer",
        email="dana@brightwater.example",
        phone="020 7946 0018",
    )


def get(client, token=None, **params):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get(URL, params, **headers)


def kinds(suppression):
    return sorted(
        SuppressionChange.objects.filter(suppression_id=suppression.pk).values_list(
            "kind", flat=True
        )
    )


def dnc(actor, contact, note="Asked not to be called"):
    return suppressions_services.do_not_contact_add(
        actor=actor, company=contact.company, contact=contact, note=note
    )


# --- recording ---------------------------------------------------------------------------------


def test_a_lost_close_reports_its_suppression_with_a_snapshot(rep, lost_set, dana):
    product = ProductFactory(name="Card Terminal", line=ProductLineFactory(name="Payments"))
    deal = closed(rep, dana.company, dana, product, Outcome.LOST, lost_answers(lost_set))
    suppression = Suppression.objects.get(source_opportunity=deal)
    change = SuppressionChange.objects.get(suppression=suppression)
    assert change.kind == ChangeKind.STARTED
    assert feed.event(change) == {
        "id": change.pk,
        "kind": "started",
        "occurred_at": change.occurred_at.isoformat(),
        "suppression": {
            "id": suppression.pk,
            "reason": "declined",
            "scope": "product",
            "product": "Card Terminal",
            "product_line": None,
            "starts_on": suppression.starts_on.isoformat(),
            "until": suppression.until.isoformat(),
            "company": {"id": dana.company_id, "domain": "brightwater.example"},
            "contact": {
                "id": dana.pk,
                "email": "dana@brightwater.example",
                "phone": "+442079460018",
            },
        },
    }


def test_reopening_reports_the_deals_suppressions_lifted(rep, lost_set, dana):
    deal = closed(rep, dana.company, dana, ProductFactory(), Outcome.LOST, lost_answers(lost_set))
    opportunity_reopen(actor=rep, opportunity=deal)
    suppression = Suppression.objects.get(source_opportunity=deal)
    assert kinds(suppression) == ["lifted", "started"]


def test_do_not_contact_and_its_lift_are_reported_once(manager, dana):
    suppression = dnc(manager, dana)
    suppressions_services.suppression_lift(actor=manager, suppression=suppression, reason="Asked")
    with pytest.raises(ValidationError):
        suppressions_services.suppression_lift(
            actor=manager, suppression=suppression, reason="Again"
        )
    assert kinds(suppression) == ["lifted", "started"]


def test_refused_input_records_no_change(manager, dana):
    stranger = ContactFactory()
    with pytest.raises(ValidationError):
        suppressions_services.do_not_contact_add(
            actor=manager, company=dana.company, contact=stranger, note="Asked"
        )
    with pytest.raises(ValidationError):
        dnc(manager, dana, note="   ")
    assert not SuppressionChange.objects.exists()


def test_a_failed_transaction_leaves_neither_suppression_nor_change(manager, dana):
    with pytest.raises(RuntimeError), transaction.atomic():
        dnc(manager, dana)
        raise RuntimeError("the surrounding operation failed")
    assert not Suppression.objects.exists()
    assert not SuppressionChange.objects.exists()


def test_many_do_not_contacts_are_reported_in_one_statement(manager, django_assert_num_queries):
    contacts = ContactFactory.create_batch(3)
    # its savepoint, the bulk insert, the flags, the changes, the release
    with django_assert_num_queries(5):
        created = suppressions_services.do_not_contact_add_many(
            actor=manager, contacts=contacts, note="Imported list"
        )
    assert SuppressionChange.objects.filter(kind="started").count() == 3
    assert {c.suppression_id for c in SuppressionChange.objects.all()} == {s.pk for s in created}


def test_a_close_pays_one_query_for_its_changes(rep, lost_set, dana, django_assert_num_queries):
    deal = OpportunityFactory(owner=rep, company=dana.company, contact=dana)
    # the rules, the suppressions' bulk insert, their changes
    with django_assert_num_queries(3):
        suppressions_services.derive_for_close(
            opportunity=deal, outcome=Outcome.LOST, closed_on=timezone.localdate()
        )
    assert SuppressionChange.objects.count() == 1


def test_history_derivation_reports_what_it_created(rep, defaults, dana):
    deals = [OpportunityFactory(owner=rep, company=dana.company, contact=dana) for _ in range(3)]
    today = timezone.localdate()
    created = suppressions_services.derive_for_history(
        [(deal, Outcome.LOST, today - datetime.timedelta(days=5)) for deal in deals]
        + [(OpportunityFactory(), Outcome.LOST, today - datetime.timedelta(days=400))]
    )
    assert len(created) == 3
    assert sorted(SuppressionChange.objects.values_list("suppression_id", flat=True)) == sorted(
        s.pk for s in created
    )


def test_a_rule_rebuild_reports_withdrawn_and_new_suppressions(rep, lost_set, dana, manager):
    deal = closed(rep, dana.company, dana, ProductFactory(), Outcome.LOST, lost_answers(lost_set))
    old = Suppression.objects.get(source_opportunity=deal)
    rule = old.rule
    rule.days = 30
    rule.save()
    assert suppressions_services.rule_rebuild(rule=rule) == 1
    new = Suppression.objects.get(source_opportunity=deal)
    assert not Suppression.objects.filter(pk=old.pk).exists()
    # The deleted one is reported withdrawn; the change keeps its snapshot.
    withdrawn = SuppressionChange.objects.get(suppression_id=old.pk, kind="lifted")
    assert withdrawn.contact_email == "dana@brightwater.example"
    assert kinds(new) == ["started"]


def test_a_rebuild_does_not_withdraw_what_already_ended(rep, lost_set, dana):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        deal = closed(
            rep, dana.company, dana, ProductFactory(), Outcome.LOST, lost_answers(lost_set)
        )
    old = Suppression.objects.get(source_opportunity=deal)
    with time_machine.travel(start + datetime.timedelta(days=95), tick=False):
        assert feed.changes_record_ended() == 1
        suppressions_services.rule_rebuild(rule=SuppressionRule.objects.get(pk=old.rule_id))
    assert kinds(old) == ["ended", "started"]


# --- ends --------------------------------------------------------------------------------------


def test_an_end_is_reported_on_the_day_after_the_last_day_and_once(rep, lost_set, dana, manager):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        deal = closed(
            rep, dana.company, dana, ProductFactory(), Outcome.LOST, lost_answers(lost_set)
        )
        lifted = dnc(manager, ContactFactory(company=dana.company))
        suppressions_services.suppression_lift(actor=manager, suppression=lifted, reason="Asked")
    suppression = Suppression.objects.get(source_opportunity=deal)
    last_day = suppression.until
    with time_machine.travel(start + (last_day - timezone.localdate(start)), tick=False):
        assert timezone.localdate() == last_day
        assert feed.changes_record_ended() == 0
    with time_machine.travel(
        start + (last_day - timezone.localdate(start)) + datetime.timedelta(days=1), tick=False
    ):  # noqa: E501
        assert feed.changes_record_ended() == 1
        assert feed.changes_record_ended() == 0
    assert kinds(suppression) == ["ended", "started"]
    assert kinds(lifted) == ["lifted", "started"]


def test_the_daily_task_reports_ends(rep, lost_set, dana):
    from suppressions.tasks import record_ended

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        closed(rep, dana.company, dana, ProductFactory(), Outcome.LOST, lost_answers(lost_set))
    with time_machine.travel(start + datetime.timedelta(days=200), tick=False):
        assert record_ended.apply().get() == 1
        assert record_ended.apply().get() == 0


def test_the_daily_task_is_scheduled():
    from insights.schedules import SCHEDULES

    assert "suppressions.record_ended" in {s.task for s in SCHEDULES}


# --- the pull feed -----------------------------------------------------------------------------


# Committed: on PostgreSQL the feed holds back the changes of transactions still open,
# the test's own included.
@pytest.mark.django_db(transaction=True)
def test_pages_serve_every_change_once_in_order(client, token, manager):
    contacts = ContactFactory.create_batch(7)
    suppressions_services.do_not_contact_add_many(actor=manager, contacts=contacts, note="List")
    expected = list(SuppressionChange.objects.order_by("txid", "id").values_list("id", flat=True))
    seen, since, pages = [], None, []
    while True:
        params = {"limit": 3} | ({"since": since} if since else {})
        body = get(client, token, **params).json()
        pages.append((len(body["changes"]), body["has_more"]))
        seen += [c["id"] for c in body["changes"]]
        since = body["next"]
        if not body["has_more"]:
            break
    assert seen == expected
    assert pages == [(3, True), (3, True), (1, False)]
    # Nothing new: an empty page and the same cursor, to ask again later.
    again = get(client, token, since=since).json()
    assert again == {"changes": [], "next": since, "has_more": False}
    more = dnc(manager, ContactFactory())
    latest = get(client, token, since=since).json()
    assert [c["suppression"]["id"] for c in latest["changes"]] == [more.pk]


# Committed: on PostgreSQL the feed holds back the changes of transactions still open,
# the test's own included.
@pytest.mark.django_db(transaction=True)
def test_a_page_reads_the_token_and_the_changes(client, token, manager, django_assert_num_queries):
    suppressions_services.do_not_contact_add_many(
        actor=manager, contacts=ContactFactory.create_batch(5), note="List"
    )
    get(client, token)  # the token's use is recorded at most once a minute
    with django_assert_num_queries(2):  # the token, the page
        response = get(client, token, limit=1000)
    assert len(response.json()["changes"]) == 5
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("header", [None, "Bearer dbf_nope_nope", "Basic abc", "Bearer "])
def test_no_or_bad_token_is_refused(client, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get(URL, **headers)
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_refused(client):
    row, plain = api_token_create(name="Old dialler")
    api_token_revoke(token=row)
    assert get(client, plain).status_code == 401


@pytest.mark.parametrize(
    "since",
    ["", "abc", "12", "1_2_3", "-1_2", "01_2", "1_", "_1", "1_2 ", "１_２", "9" * 19 + "_1", "1.2"],
)
def test_a_bad_cursor_gets_a_clear_error(client, token, since):
    response = get(client, token, since=since)
    assert response.status_code == 400
    assert response.json()["error"].startswith("since is not a cursor this feed gave out")


@pytest.mark.parametrize("limit", ["", "0", "1001", "-1", "1.5", "ten", "99999", "١٠"])
def test_a_bad_limit_gets_a_clear_error(client, token, limit):
    response = get(client, token, limit=limit)
    assert response.status_code == 400
    assert "limit" in response.json()["error"]
    assert "1000" in response.json()["error"]


def test_a_nul_byte_in_the_cursor_is_refused_in_json(client, token):
    response = client.get(URL + "?since=1_2%00", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]


def test_other_methods_are_refused_in_json(client, token):
    response = client.post(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"] == "Use GET."


def test_the_openapi_document_describes_the_feed(client):
    paths = client.get(reverse("api_schema")).json()["paths"]
    assert set(paths) >= {"/api/suppressions/check", "/api/suppressions/changes"}


def test_a_change_reaches_no_webhook_when_none_is_set_up(
    manager, dana, django_capture_on_commit_callbacks
):  # noqa: E501
    with django_capture_on_commit_callbacks(execute=True):
        dnc(manager, dana)
    assert not WebhookDelivery.objects.exists()


# --- exactly once under concurrent writers (PostgreSQL) ----------------------------------------


def _in_thread(target):
    """Run `target` in a thread with its own connection, closed when it ends."""
    errors = []

    def run():
        try:
            target()
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _drain(client, token, since, seen, limit=2):
    while True:
        params = {"limit": limit} | ({"since": since} if since else {})
        response = get(client, token, **params)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [c["id"] for c in body["changes"]]
        since = body["next"]
        if not body["has_more"]:
            return since


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_committed_late_is_not_skipped(client, token, manager):
    """
    A takes its transaction id first, then B writes a change with a later id and commits
    while A is still open; then A writes and commits. An id cursor would skip whichever of
    the two commits after the other was served; the feed serves both, once.
    """
    company = CompanyFactory()
    a_contact, b_contact = ContactFactory(company=company), ContactFactory(company=company)
    a_has_xid, b_done, a_may_commit = threading.Event(), threading.Event(), threading.Event()

    def writer_a():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()")
            a_has_xid.set()
            assert b_done.wait(10)
            dnc(manager, a_contact)
            assert a_may_commit.wait(10)

    def writer_b():
        assert a_has_xid.wait(10)
        dnc(manager, b_contact)
        b_done.set()

    a, a_errors = _in_thread(writer_a)
    b, b_errors = _in_thread(writer_b)
    b.join(10)
    seen: list[int] = []
    since = _drain(client, token, None, seen)
    # B committed, but A (older) is still open: B's change waits behind it.
    assert seen == []
    a_may_commit.set()
    a.join(10)
    assert not (a_errors or b_errors), (a_errors, b_errors)
    _drain(client, token, since, seen)
    assert sorted(seen) == sorted(SuppressionChange.objects.values_list("id", flat=True))
    assert len(seen) == len(set(seen)) == 2


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_every_change_is_served_once_while_writers_run(client, token, manager):
    """
    Four writers each commit a dozen suppressions, some held open while others commit, while
    a reader pages through the feed two changes at a time; at the end every change has been
    seen exactly once.
    """
    contacts = [ContactFactory() for _ in range(48)]
    start = threading.Barrier(5)

    def writer(mine, hold):
        start.wait(10)
        for n, contact in enumerate(mine):
            with transaction.atomic():
                dnc(manager, contact)
                if n % 3 == hold:
                    # Held open: later transactions of other writers commit meanwhile.
                    threading.Event().wait(0.05)

    threads = [_in_thread(lambda n=n: writer(contacts[n::4], n % 3)) for n in range(4)]
    start.wait(10)
    seen: list[int] = []
    since = None
    polls = 0
    while any(thread.is_alive() for thread, _ in threads):
        since = _drain(client, token, since, seen)
        polls += 1
    for thread, errors in threads:
        thread.join(10)
        assert not errors, errors
    _drain(client, token, since, seen)
    everything = list(SuppressionChange.objects.values_list("id", flat=True))
    assert len(everything) == 48
    assert len(seen) == len(set(seen)), "a change was served twice"
    assert sorted(seen) == sorted(everything), "a change was never served"
    assert polls > 1  # the reader really ran while the writers did


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_with_a_lower_id_committed_late_is_not_skipped(client, token, manager):
    """
    B takes its transaction id first; A writes a change (the lower id) and stays open; B
    writes its change (a higher id) and commits, and is served; then A commits. Ordered by
    id, A's change would fall behind the cursor; ordered by transaction, it comes next.
    """
    company = CompanyFactory()
    a_contact, b_contact = ContactFactory(company=company), ContactFactory(company=company)
    b_has_xid, a_wrote, a_may_commit = threading.Event(), threading.Event(), threading.Event()

    def writer_a():
        assert b_has_xid.wait(10)
        with transaction.atomic():
            dnc(manager, a_contact)
            a_wrote.set()
            assert a_may_commit.wait(10)

    def writer_b():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()")
            b_has_xid.set()
            assert a_wrote.wait(10)
            dnc(manager, b_contact)

    a, a_errors = _in_thread(writer_a)
    b, b_errors = _in_thread(writer_b)
    b.join(10)
    seen: list[int] = []
    since = _drain(client, token, None, seen)
    b_change = SuppressionChange.objects.get(contact_pk=b_contact.pk).pk
    assert seen == [b_change]  # B is older than every open transaction: served
    a_may_commit.set()
    a.join(10)
    assert not (a_errors or b_errors), (a_errors, b_errors)
    _drain(client, token, since, seen)
    a_change = SuppressionChange.objects.get(contact_pk=a_contact.pk).pk
    assert a_change < b_change
    assert seen == [b_change, a_change]


def test_an_unknown_parameter_is_refused(client, token):
    """A misspelt `since` must not quietly read the feed from its beginning."""
    response = get(client, token, sinse="12_34")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Unknown query parameter(s): sinse.")


def test_the_migration_reports_running_suppressions_as_started(rep, manager, dana):
    """Installed on a database with history, the feed starts with what runs today."""
    from importlib import import_module

    from django.apps import apps

    running = dnc(manager, dana)
    lifted = dnc(manager, ContactFactory())
    suppressions_services.suppression_lift(actor=manager, suppression=lifted, reason="Asked")
    over = dnc(manager, ContactFactory())
    today = timezone.localdate()
    Suppression.objects.filter(pk=over.pk).update(
        starts_on=today - datetime.timedelta(days=30), until=today - datetime.timedelta(days=1)
    )
    SuppressionChange.objects.all().delete()
    import_module("suppressions.migrations.0002_change_feed").report_running_as_started(apps, None)
    [change] = SuppressionChange.objects.all()
    assert (change.suppression_id, change.kind) == (running.pk, "started")
    assert change.contact_email == "dana@brightwater.example"
    assert change.company_domain == "brightwater.example"


def test_a_suppression_added_in_the_admin_is_reported_and_cannot_be_changed_under_the_feed(
    admin_client_, admin_user
):
    contact = ContactFactory()
    today = timezone.localdate()
    response = admin_client_.post(
        reverse("admin:suppressions_suppression_add"),
        {
            "company": contact.company_id,
            "contact": contact.pk,
            "scope": "all",
            "reason": "do_not_contact",
            "note": "Asked on the phone",
            "starts_on": today.isoformat(),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    change = SuppressionChange.objects.get()
    assert (change.kind, change.contact_pk) == ("started", contact.pk)
    page = admin_client_.get(
        reverse("admin:suppressions_suppression_change", args=[change.suppression_id])
    ).content.decode()
    assert 'name="note"' in page
    assert 'name="until"' not in page and 'name="scope"' not in page


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_long_transaction_in_another_database_does_not_hold_the_feed(client, token, manager):
    """PostgreSQL numbers transactions server-wide; one open elsewhere on the server (a bulk
    load, a benchmark) cannot write here, so it does not delay the feed."""
    import psycopg

    settings = connection.settings_dict
    elsewhere = psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname="postgres",
    )
    try:
        with elsewhere.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()")  # open, and older than what follows
        suppression = dnc(manager, ContactFactory())
        body = get(client, token).json()
        assert [c["suppression"]["id"] for c in body["changes"]] == [suppression.pk]
    finally:
        elsewhere.rollback()
        elsewhere.close()
