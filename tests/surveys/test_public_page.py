"""The buyer's public page: a signed link is the only key, and a bad link saves nothing."""

import datetime

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from opportunities.models import Competitor
from reflections.models import Outcome, Reason
from surveys import tokens
from surveys.models import (
    SurveyAnswer,
    SurveyOptOut,
    SurveyQuestionKind,
    SurveyRequest,
    SurveyStatus,
)
from tests.surveys.conftest import ask_and_send, closed_lost


def _fields(survey):
    return {q.kind: f"q_{q.pk}" for q in survey.template.questions.all()}


def _answers(survey, *, main="Product fit", others=("Timing",), text="Your demo was great."):
    names = _fields(survey)
    reasons = {r.label: r for r in Reason.objects.filter(outcome=Outcome.LOST)}
    data = {
        "revision": str(survey.revision),
        names[SurveyQuestionKind.MAIN_REASON]: str(reasons[main].pk),
        names[SurveyQuestionKind.FREE_TEXT]: text,
    }
    data[names[SurveyQuestionKind.OTHER_REASONS]] = [str(reasons[o].pk) for o in others]
    return data


def test_link_opens_the_survey_without_login_and_shows_no_internal_data(client, link):
    response = client.get(link)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ledger Pro" in page
    assert "What was the main reason for your decision?" in page
    assert "It did not fit what we needed" in page  # the reason in the buyer's words
    # Nothing the rep wrote or the CRM knows internally: amount, plans, the rep's reasons.
    for internal in ("98765", "98,765", "Secret internal plan", "Bring finance in earlier"):
        assert internal not in page
    assert "Riley" not in page
    # The link is the secret: no other site ever sees it as a referrer. (no-referrer would
    # make browsers send "Origin: null" with the form, which CSRF rightly refuses.)
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "<script" not in page


def test_answering_saves_normalised_answers_with_the_buyer_as_source(client, link, sent_survey):
    response = client.post(link, _answers(sent_survey))
    assert response.status_code == 302
    assert response["Location"].endswith("/thanks/")
    sent_survey.refresh_from_db()
    assert sent_survey.status == SurveyStatus.ANSWERED
    assert sent_survey.revision == 1
    answers = {a.question.kind: a for a in SurveyAnswer.objects.filter(request=sent_survey)}
    assert answers[SurveyQuestionKind.MAIN_REASON].reason.label == "Product fit"
    assert answers[SurveyQuestionKind.OTHER_REASONS].reason.label == "Timing"
    assert answers[SurveyQuestionKind.FREE_TEXT].text == "Your demo was great."
    assert sent_survey.template.__class__.objects.get(pk=sent_survey.template_id).is_frozen
    thanks = client.get(response["Location"]).content.decode()
    assert "change your answers" in thanks


def test_buyer_may_change_answers_until_expiry(client, link, sent_survey):
    client.post(link, _answers(sent_survey))
    sent_survey.refresh_from_db()
    page = client.get(link).content.decode()
    assert "Your answers were saved" in page and "Save my changes" in page
    client.post(link, _answers(sent_survey, main="Timing", others=(), text=""))
    answers = SurveyAnswer.objects.filter(request=sent_survey)
    assert [a.reason.label for a in answers] == ["Timing"]


def test_a_form_sent_twice_saves_once(client, link, sent_survey):
    data = _answers(sent_survey)
    client.post(link, data)
    replay = client.post(link, _answers(sent_survey, main="Price") | {"revision": "0"})
    assert replay.status_code == 409
    assert "already saved" in replay.content.decode()
    main = SurveyAnswer.objects.get(
        request=sent_survey, question__kind=SurveyQuestionKind.MAIN_REASON
    )
    assert main.reason.label == "Product fit"
    assert SurveyRequest.objects.get(pk=sent_survey.pk).revision == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: token.replace(":", ":x", 1),
        lambda token: "not-a-token",
        lambda token: signing.dumps([1, "guess"], salt="some.other.salt"),
        lambda token: "x" * 500,
    ],
    ids=["signature", "payload", "garbage", "other-salt", "huge"],
)
def test_tampered_link_gets_a_kind_page_and_saves_nothing(client, sent_survey, mangle):
    token = mangle(tokens.make(sent_survey))
    url = f"/survey/{token}/"
    assert client.get(url).status_code == 404
    response = client.post(url, _answers(sent_survey))
    assert response.status_code == 404
    assert "This link does not work" in response.content.decode()
    assert not SurveyAnswer.objects.exists()
    assert client.post(f"/survey/{token}/opt-out/").status_code == 404
    assert not SurveyOptOut.objects.exists()


def test_expired_link_gets_a_kind_page_and_saves_nothing(client, link, sent_survey):
    SurveyRequest.objects.filter(pk=sent_survey.pk).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    response = client.post(link, _answers(sent_survey))
    assert response.status_code == 410
    assert "This survey has closed" in response.content.decode()
    assert not SurveyAnswer.objects.exists()
    assert SurveyRequest.objects.get(pk=sent_survey.pk).status == SurveyStatus.SENT


def test_link_expires_after_the_configured_days(client, link, sent_survey, settings):
    assert sent_survey.expires_at - sent_survey.sent_at == datetime.timedelta(
        days=settings.DEBRIEF_SURVEY_LINK_DAYS
    )


def test_withdrawn_survey_link_saves_nothing(client, link, sent_survey):
    SurveyRequest.objects.filter(pk=sent_survey.pk).update(status=SurveyStatus.WITHDRAWN)
    response = client.post(link, _answers(sent_survey))
    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()
    assert not SurveyAnswer.objects.exists()


def test_a_link_of_one_survey_never_opens_another(client, rep, lost_set, sent_survey):
    other = ask_and_send(rep, closed_lost(rep, lost_set))
    # The other survey's id with this survey's nonce, signed properly: still refused.
    forged = signing.dumps([other.pk, sent_survey.nonce], salt=tokens.SALT, compress=False)
    response = client.post(f"/survey/{forged}/", _answers(other))
    assert response.status_code == 404
    assert not SurveyAnswer.objects.exists()
    own = client.get(f"/survey/{tokens.make(other)}/")
    assert own.status_code == 200


def test_opt_out_is_one_click_and_stops_every_later_survey(client, link, sent_survey, rep):
    confirm = client.get(f"{link}opt-out/")
    assert "Don't ask me again" in confirm.content.decode()
    assert not SurveyOptOut.objects.exists()  # a GET (a mail scanner's prefetch) changes nothing
    done = client.post(f"{link}opt-out/")
    assert "You won't be asked again" in done.content.decode()
    assert SurveyOptOut.objects.get().email == sent_survey.email


def test_invalid_answers_are_refused_with_a_clear_message(client, link, sent_survey):
    names = _fields(sent_survey)
    won_reason = Reason.objects.filter(outcome=Outcome.WON).first()
    bad = _answers(sent_survey) | {names[SurveyQuestionKind.MAIN_REASON]: str(won_reason.pk)}
    response = client.post(link, bad)
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    missing = _answers(sent_survey)
    del missing[names[SurveyQuestionKind.MAIN_REASON]]
    assert client.post(link, missing).status_code == 422
    too_long = _answers(sent_survey, text="x" * 2001)
    assert client.post(link, too_long).status_code == 422
    assert not SurveyAnswer.objects.exists()


def test_a_retired_competitor_is_not_accepted(client, link, sent_survey, competitor):
    names = _fields(sent_survey)
    Competitor.objects.filter(pk=competitor.pk).update(active=False)
    data = _answers(sent_survey) | {names[SurveyQuestionKind.CHOSEN_INSTEAD]: str(competitor.pk)}
    assert client.post(link, data).status_code == 422


def test_rate_limited_per_link(client, link, sent_survey, settings):
    settings.DEBRIEF_SURVEY_RATE_PER_LINK = "3/h"
    for _ in range(3):
        assert client.get(link).status_code == 200
    response = client.post(link, _answers(sent_survey))
    assert response.status_code == 429
    assert "Please wait a little" in response.content.decode()
    assert not SurveyAnswer.objects.exists()


def test_rate_limited_per_address_across_links(client, sent_survey, settings):
    settings.DEBRIEF_SURVEY_RATE_PER_ADDRESS = "5/h"
    for n in range(5):
        client.get(f"/survey/guess-{n}/")
    assert client.get(f"/survey/{tokens.make(sent_survey)}/").status_code == 429


def test_public_page_query_budget(client, link, sent_survey, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        assert client.get(link).status_code == 200
    with django_assert_max_num_queries(22):
        assert client.post(link, _answers(sent_survey)).status_code == 302


def test_public_page_queries_do_not_grow_with_the_taxonomy(client, link, sent_survey):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            client.get(link)
        return len(ctx.captured_queries)

    before = count()
    for n in range(30):
        Reason.objects.create(outcome=Outcome.LOST, label=f"Reason {n}")
        Competitor.objects.create(name=f"Rival {n}")
    assert count() == before


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.dictionaries(
        st.sampled_from(["revision", "main", "other", "instead", "text", "junk"]),
        st.one_of(
            st.text(max_size=50),
            st.lists(st.text(max_size=10), max_size=3),
            st.integers().map(str),
        ),
    )
)
def test_public_form_never_answers_500(client, sent_survey, settings, data):
    settings.DEBRIEF_SURVEY_RATE_PER_LINK = settings.DEBRIEF_SURVEY_RATE_PER_ADDRESS = "10000/h"
    names = _fields(sent_survey)
    keys = {
        "main": names[SurveyQuestionKind.MAIN_REASON],
        "other": names[SurveyQuestionKind.OTHER_REASONS],
        "instead": names[SurveyQuestionKind.CHOSEN_INSTEAD],
        "text": names[SurveyQuestionKind.FREE_TEXT],
    }
    posted = {keys.get(k, k): v for k, v in data.items()}
    client.raise_request_exception = False
    response = client.post(f"/survey/{tokens.make(sent_survey)}/", posted)
    assert response.status_code in (302, 400, 409, 422, 429)


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_form_sent_twice_at_once_saves_once(rep, defaults, lost_set, mailoutbox):
    import threading

    from django.core.exceptions import ValidationError

    from surveys import services

    survey = ask_and_send(rep, closed_lost(rep, lost_set))
    questions = {q.kind: q for q in survey.template.questions.all()}
    reasons = {r.label: r for r in Reason.objects.filter(outcome=Outcome.LOST)}
    barrier = threading.Barrier(2)
    results: list[str] = []

    def send(label):
        try:
            barrier.wait()
            services.survey_answer(
                survey=survey,
                answers=[
                    services.BuyerAnswer(
                        questions[SurveyQuestionKind.MAIN_REASON], reason=reasons[label]
                    )
                ],
                revision=0,
            )
            results.append("saved")
        except ValidationError as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(label,)) for label in ("Price", "Timing")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["saved", "stale"]
    assert SurveyAnswer.objects.filter(request=survey).count() == 1
    assert SurveyRequest.objects.get(pk=survey.pk).revision == 1
