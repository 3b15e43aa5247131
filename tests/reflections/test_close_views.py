import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.models import Stage
from reflections import services
from reflections.models import Objection, Outcome, QuestionKind, Reason, Reflection
from tests.factories import CompetitorFactory, OpportunityFactory
from tests.reflections.conftest import lost_answers, question

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def close_url(deal, outcome="lost"):
    return reverse("reflections:close", args=[deal.pk, outcome])


@pytest.mark.smoke
def test_close_form_opens_inline_for_htmx_and_as_a_page_otherwise(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    fragment = rep_client.get(close_url(deal), **HTMX)
    assert fragment.status_code == 200
    assert b"<html" not in fragment.content
    assert b"What was the main reason we lost?" in fragment.content
    assert b"Unknown / not sure" in fragment.content
    page = rep_client.get(close_url(deal))
    assert page.status_code == 200 and b"<html" in page.content


@pytest.mark.smoke
def test_closing_through_htmx_redirects_to_the_deal(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    response = rep_client.post(
        close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set)}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("opportunities:detail", args=[deal.pk])
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST and Reflection.objects.get(opportunity=deal).current


def test_missing_answers_come_back_as_422_with_errors_and_nothing_saved(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    response = rep_client.post(close_url(deal), {"prompt_set": lost_set.pk}, **HTMX)
    assert response.status_code == 422
    assert b"This question needs an answer." in response.content
    deal.refresh_from_db()
    assert deal.is_open and not Reflection.objects.exists()


@pytest.mark.parametrize(
    "bad",
    ["unknown-reason", "wrong-outcome-reason", "empty-text", "foreign-question"],
)
def test_bad_answers_get_a_clear_error_and_save_nothing(rep_client, rep, lost_set, bad):
    deal = OpportunityFactory(owner=rep)
    primary = question(lost_set, QuestionKind.PRIMARY_REASON)
    text = question(lost_set, QuestionKind.SHORT_TEXT)
    overrides = {
        "unknown-reason": {f"q_{primary.pk}": "987654"},
        "wrong-outcome-reason": {
            f"q_{primary.pk}": str(Reason.objects.filter(outcome=Outcome.WON).first().pk)
        },
        "empty-text": {f"q_{text.pk}": ""},
        "foreign-question": {"q_987654": "1"},
    }[bad]
    response = rep_client.post(
        close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set, **overrides)}
    )
    assert response.status_code == 422
    assert b"field-error" in response.content or b"form-errors" in response.content
    deal.refresh_from_db()
    assert deal.is_open and not Reflection.objects.exists()


def test_a_changed_prompt_set_while_answering_is_explained(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    data = {"prompt_set": lost_set.pk, **lost_answers(lost_set)}
    services.prompt_set_revise(prompt_set=lost_set)
    response = rep_client.post(close_url(deal), data)
    assert response.status_code == 422
    assert b"questions for this outcome changed" in response.content
    deal.refresh_from_db()
    assert deal.is_open


def test_rep_cannot_close_another_reps_deal_by_forged_id(rep_client, teammate, lost_set):
    deal = OpportunityFactory(owner=teammate)
    assert rep_client.get(close_url(deal)).status_code == 404
    response = rep_client.post(
        close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set)}
    )
    assert response.status_code == 404
    deal.refresh_from_db()
    assert deal.is_open


def test_other_teams_manager_cannot_close(client, other_manager, rep, lost_set):
    client.force_login(other_manager)
    deal = OpportunityFactory(owner=rep)
    assert client.post(close_url(deal), lost_answers(lost_set)).status_code == 404


def test_unknown_outcome_is_404(rep_client, rep):
    assert rep_client.get(close_url(OpportunityFactory(owner=rep), "maybe")).status_code == 404


def test_closing_a_closed_deal_explains_and_goes_to_the_deal(rep_client, rep):
    deal = OpportunityFactory(owner=rep, stage=Stage.WON)
    response = rep_client.get(close_url(deal))
    assert response.status_code == 302
    assert response.url == reverse("opportunities:detail", args=[deal.pk])


def test_close_form_query_count_is_constant(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    counts = []
    for extra in (5, 50):
        for i in range(extra):
            Reason.objects.create(outcome=Outcome.LOST, label=f"Reason {extra}-{i}")
            Objection.objects.create(label=f"Objection {extra}-{i}")
            CompetitorFactory(name=f"Rival {extra}-{i}")
        with CaptureQueriesContext(connection) as queries:
            assert rep_client.get(close_url(deal), **HTMX).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_owner_reopens_and_reflection_stays_in_history(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    rep_client.post(close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set)})
    response = rep_client.post(reverse("reflections:reopen", args=[deal.pk]))
    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.is_open
    assert Reflection.objects.filter(opportunity=deal, current=False).count() == 1


def test_teammate_cannot_reopen(client, teammate, rep, lost_set):
    deal = OpportunityFactory(owner=rep, stage=Stage.LOST)
    client.force_login(teammate)
    assert client.post(reverse("reflections:reopen", args=[deal.pk])).status_code == 404
    deal.refresh_from_db()
    assert deal.stage == Stage.LOST


def _closed_by(client, user, lost_set):
    client.force_login(user)
    deal = OpportunityFactory(owner=user)
    client.post(close_url(deal), {"prompt_set": lost_set.pk, **lost_answers(lost_set)})
    return Reflection.objects.get(opportunity=deal)


def test_rep_cannot_read_or_amend_another_reps_reflection(client, rep, teammate, lost_set):
    reflection = _closed_by(client, teammate, lost_set)
    client.force_login(rep)
    assert client.get(reverse("reflections:detail", args=[reflection.pk])).status_code == 404
    assert client.get(reverse("reflections:amend", args=[reflection.pk])).status_code == 404


def test_author_amends_and_manager_reads_the_history(client, rep, manager, other_manager, lost_set):
    reflection = _closed_by(client, rep, lost_set)
    text = question(lost_set, QuestionKind.SHORT_TEXT)
    page = client.get(reverse("reflections:amend", args=[reflection.pk]))
    assert b"Bring finance in earlier." in page.content  # pre-filled
    response = client.post(
        reverse("reflections:amend", args=[reflection.pk]),
        lost_answers(lost_set, **{f"q_{text.pk}": "Meet the CFO in week one."}),
    )
    assert response.status_code == 302
    client.force_login(manager)
    detail = client.get(reverse("reflections:detail", args=[reflection.pk]))
    assert detail.status_code == 200
    assert b"Meet the CFO in week one." in detail.content
    assert b"Earlier versions" in detail.content and b"Bring finance in earlier." in detail.content
    assert client.get(reverse("reflections:amend", args=[reflection.pk])).status_code == 404
    client.force_login(other_manager)
    assert client.get(reverse("reflections:detail", args=[reflection.pk])).status_code == 404


def test_amend_with_bad_input_saves_nothing(client, rep, lost_set):
    reflection = _closed_by(client, rep, lost_set)
    scale_free = {f"q_{question(lost_set, QuestionKind.SHORT_TEXT).pk}": ""}
    response = client.post(
        reverse("reflections:amend", args=[reflection.pk]), lost_answers(lost_set, **scale_free)
    )
    assert response.status_code == 422
    assert not reflection.revisions.exists()
