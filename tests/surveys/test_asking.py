"""Asking a buyer: who may ask, who is never asked, and how the e-mail goes out."""

import datetime
import smtplib
import threading
from unittest import mock

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from customers.models import Contact
from reflections.models import Outcome
from suppressions import services as suppressions_services
from surveys import services, tasks
from surveys.models import SurveyOptOut, SurveyRequest, SurveyStatus, SurveyTemplate
from tests.factories import ContactFactory, OpportunityFactory, imported_close
from tests.surveys.conftest import ask_and_send, closed_lost


def _ask(client, deal):
    return client.post(f"/opportunities/{deal.pk}/survey/", follow=True)


def test_rep_asks_from_the_deal_page_and_the_buyer_gets_a_link(
    rep_client, lost_deal, mailoutbox, django_capture_on_commit_callbacks
):
    page = rep_client.get(f"/opportunities/{lost_deal.pk}/")
    assert "Ask Dana Buyer for feedback" in page.content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        response = _ask(rep_client, lost_deal)
    assert "A survey is on its way to Dana Buyer" in response.content.decode()
    survey = SurveyRequest.objects.get()
    assert survey.status == SurveyStatus.REQUESTED
    assert len(callbacks) == 1  # the send task, queued only after commit
    assert services.survey_send(request_id=survey.pk) == SurveyStatus.SENT
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [lost_deal.contact.email]
    assert services.link_for(survey) in message.body
    assert "98765" not in message.body and "Price" not in message.body
    page = rep_client.get(f"/opportunities/{lost_deal.pk}/").content.decode()
    assert "Sent" in page and "for feedback</button>" not in page


def test_sending_twice_sends_once(sent_survey, mailoutbox):
    assert services.survey_send(request_id=sent_survey.pk) == SurveyStatus.SENT
    assert len(mailoutbox) == 1


def test_other_team_cannot_ask_about_a_deal(client, other_rep, lost_deal, mailoutbox):
    client.force_login(other_rep)
    assert client.post(f"/opportunities/{lost_deal.pk}/survey/").status_code == 404
    assert not SurveyRequest.objects.exists()


def test_manager_of_the_team_may_ask(manager_client, lost_deal):
    _ask(manager_client, lost_deal)
    assert SurveyRequest.objects.get().requested_by.email == "maya@example.com"


def test_an_open_deal_cannot_be_surveyed(rep_client, rep):
    deal = OpportunityFactory(owner=rep)
    _ask(rep_client, deal)
    assert not SurveyRequest.objects.exists()


def _refused(client, deal, mailoutbox, words):
    page = client.get(f"/opportunities/{deal.pk}/").content.decode()
    assert words in page
    assert "for feedback</button>" not in page
    response = _ask(client, deal)
    assert words in response.content.decode()
    assert not SurveyRequest.objects.filter(opportunity=deal).exists()
    assert not mailoutbox


def test_do_not_contact_flag_refuses(rep_client, rep, lost_set, mailoutbox):
    deal = closed_lost(rep, lost_set)
    Contact.objects.filter(pk=deal.contact_id).update(do_not_contact=True)
    _refused(rep_client, deal, mailoutbox, "is marked do-not-contact")


def test_do_not_contact_suppression_refuses_even_without_the_flag(
    rep_client, rep, lost_set, mailoutbox
):
    deal = closed_lost(rep, lost_set)
    suppressions_services.do_not_contact_add(
        actor=rep, company=deal.company, contact=deal.contact, note="Asked us to stop"
    )
    Contact.objects.filter(pk=deal.contact_id).update(do_not_contact=False)
    _refused(rep_client, deal, mailoutbox, "is marked do-not-contact")


def test_opted_out_contact_refuses(rep_client, rep, lost_set, mailoutbox):
    deal = closed_lost(rep, lost_set)
    SurveyOptOut.objects.create(email=deal.contact.email)
    _refused(rep_client, deal, mailoutbox, "asked not to receive surveys")


def test_contact_asked_last_week_refuses_with_the_next_date(rep_client, rep, lost_set, mailoutbox):
    contact = ContactFactory(full_name="Dana Buyer")
    earlier = closed_lost(rep, lost_set, contact=contact)
    with time_machine.travel(timezone.now() - datetime.timedelta(days=7)):
        ask_and_send(rep, earlier)
    mailoutbox.clear()
    deal = closed_lost(rep, lost_set, contact=contact)
    again = timezone.localdate() - datetime.timedelta(days=7) + datetime.timedelta(days=90)
    _refused(rep_client, deal, mailoutbox, f"the next survey can go on {again:%-d %B %Y}")


def test_contact_asked_long_ago_may_be_asked_again(rep, lost_set, mailoutbox):
    contact = ContactFactory()
    earlier = closed_lost(rep, lost_set, contact=contact)
    with time_machine.travel(timezone.now() - datetime.timedelta(days=91)):
        ask_and_send(rep, earlier)
    deal = closed_lost(rep, lost_set, contact=contact)
    assert ask_and_send(rep, deal).status == SurveyStatus.SENT


def test_contact_without_email_refuses(rep_client, rep, lost_set, mailoutbox):
    deal = closed_lost(rep, lost_set)
    Contact.objects.filter(pk=deal.contact_id).update(email="")
    _refused(rep_client, deal, mailoutbox, "has no e-mail address")


def test_an_imported_close_is_never_surveyed(rep_client, rep, admin_user, lost_set, mailoutbox):
    contact = ContactFactory(email="old.buyer@example.com")
    reflection = imported_close(
        importer=admin_user,
        outcome=Outcome.LOST,
        closed_date=timezone.localdate() - datetime.timedelta(days=10),
        owner=rep,
        company=contact.company,
        contact=contact,
    )
    _refused(rep_client, reflection.opportunity, mailoutbox, "imported from another CRM")
    with pytest.raises(ValidationError, match="imported from another CRM"):
        services.survey_request(actor=None, opportunity=reflection.opportunity)


def test_one_survey_per_close(rep, lost_deal, mailoutbox):
    ask_and_send(rep, lost_deal)
    with pytest.raises(ValidationError, match="already asked about this close"):
        services.survey_request(actor=rep, opportunity=lost_deal)
    assert SurveyRequest.objects.count() == 1


def test_contact_marked_do_not_contact_before_sending_is_never_emailed(rep, lost_deal, mailoutbox):
    survey = services.survey_request(actor=rep, opportunity=lost_deal)
    Contact.objects.filter(pk=lost_deal.contact_id).update(do_not_contact=True)
    assert services.survey_send(request_id=survey.pk) == SurveyStatus.WITHDRAWN
    assert not mailoutbox
    survey.refresh_from_db()
    assert "do-not-contact" in survey.status_note


def test_permanent_refusal_by_the_mail_server_is_a_bounce(rep, lost_deal, mailoutbox):
    survey = services.survey_request(actor=rep, opportunity=lost_deal)
    refused = smtplib.SMTPRecipientsRefused({survey.email: (550, b"No such mailbox")})
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=refused):
        assert services.survey_send(request_id=survey.pk) == SurveyStatus.BOUNCED
    survey.refresh_from_db()
    assert "refused" in survey.status_note and survey.sent_at is None


@pytest.fixture
def retries_run_inline(monkeypatch):
    """Eager retries run at once instead of raising (the worker's behaviour, without waits)."""
    from crm_site.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)


def test_transient_smtp_error_is_retried_then_sent(rep, lost_deal, mailoutbox, retries_run_inline):
    survey = services.survey_request(actor=rep, opportunity=lost_deal)
    calls = {"n": 0}
    real_send = services.EmailMultiAlternatives.send

    def flaky(message, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] < 3:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_send(message, *args, **kwargs)

    with mock.patch.object(services.EmailMultiAlternatives, "send", flaky):
        result = tasks.send_survey.apply(args=[survey.pk])
    assert result.get() == SurveyStatus.SENT
    assert calls["n"] == 3
    assert len(mailoutbox) == 1


def test_smtp_down_for_good_marks_the_survey_failed(rep, lost_deal, mailoutbox, retries_run_inline):
    survey = services.survey_request(actor=rep, opportunity=lost_deal)
    down = smtplib.SMTPConnectError(421, "Service not available")
    with mock.patch.object(services.EmailMultiAlternatives, "send", side_effect=down):
        assert tasks.send_survey.apply(args=[survey.pk]).get() == "failed"
    survey.refresh_from_db()
    assert survey.status == SurveyStatus.FAILED
    assert "Could not be sent" in survey.status_note


def test_transient_and_permanent_errors_are_told_apart():
    assert services.is_transient(smtplib.SMTPServerDisconnected())
    assert services.is_transient(smtplib.SMTPResponseException(451, b"Try later"))
    assert not services.is_transient(smtplib.SMTPResponseException(554, b"Rejected"))
    assert not services.is_transient(ValueError("bug"))


def test_rule_on_close_asks_automatically_after_commit(
    rep, lost_set, mailoutbox, django_capture_on_commit_callbacks
):
    SurveyTemplate.objects.filter(outcome=Outcome.LOST, active=True).update(send_on_close=True)
    with (
        mock.patch.object(tasks.send_survey, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        deal = closed_lost(rep, lost_set)
    survey = SurveyRequest.objects.get(opportunity=deal)
    assert survey.requested_by is None
    delay.assert_called_once_with(survey.pk)


def test_rule_is_off_by_default(rep, lost_set, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        closed_lost(rep, lost_set)
    assert not SurveyRequest.objects.exists()


def test_rule_on_close_never_asks_a_do_not_contact_contact(
    rep, lost_set, django_capture_on_commit_callbacks
):
    SurveyTemplate.objects.filter(outcome=Outcome.LOST, active=True).update(send_on_close=True)
    contact = ContactFactory(do_not_contact=True)
    with django_capture_on_commit_callbacks(execute=True):
        closed_lost(rep, lost_set, contact=contact)
    assert not SurveyRequest.objects.exists()


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_requests_for_one_contact_at_once_ask_once(rep, defaults, lost_set):
    contact = ContactFactory()
    deals = [closed_lost(rep, lost_set, contact=contact) for _ in range(2)]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def ask(deal):
        try:
            barrier.wait()
            with mock.patch.object(tasks.send_survey, "delay"):
                services.survey_request(actor=rep, opportunity=deal)
            results.append("asked")
        except ValidationError as exc:
            results.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(deal,)) for deal in deals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("asked") == 1, results
    (refused,) = [r for r in results if r != "asked"]
    assert "at most once every 90 days" in refused
    assert SurveyRequest.objects.count() == 1
