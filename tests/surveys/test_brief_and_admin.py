"""The buyer's words on the pre-call brief and the deal page; the surveys' admin."""

from reflections.models import Outcome, Reason
from surveys import services
from surveys.models import SurveyQuestionKind, SurveyTemplate
from tests.surveys.conftest import ask_and_send, closed_lost


def _answer(survey, main="Timing", text="We are reorganising; ask us again in spring."):
    questions = {q.kind: q for q in survey.template.questions.all()}
    reason = Reason.objects.get(outcome=Outcome.LOST, label=main)
    return services.survey_answer(
        survey=survey,
        answers=[
            services.BuyerAnswer(questions[SurveyQuestionKind.MAIN_REASON], reason=reason),
            services.BuyerAnswer(questions[SurveyQuestionKind.FREE_TEXT], text=text),
        ],
        revision=survey.revision,
    )


def test_company_brief_shows_the_buyers_own_words(rep_client, sent_survey, lost_deal):
    before = rep_client.get(f"/companies/{lost_deal.company_id}/").content.decode()
    assert "No buyer here has answered a survey yet" in before
    _answer(sent_survey)
    page = rep_client.get(f"/companies/{lost_deal.company_id}/").content.decode()
    assert "In the buyer's words" in page
    assert "“We are reorganising; ask us again in spring.”" in page
    assert "The timing was wrong for us" in page


def test_deal_page_shows_the_buyers_answers_next_to_the_reflection(
    manager_client, sent_survey, lost_deal
):
    _answer(sent_survey)
    page = manager_client.get(f"/opportunities/{lost_deal.pk}/").content.decode()
    assert "The buyer's view" in page and "Answered" in page
    assert "The timing was wrong for us" in page


def test_company_brief_query_count_does_not_grow_with_surveys(
    rep_client, rep, lost_set, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = closed_lost(rep, lost_set)
    _answer(ask_and_send(rep, first))

    def count():
        with CaptureQueriesContext(connection) as ctx:
            rep_client.get(f"/companies/{first.company_id}/")
        return len(ctx.captured_queries)

    before = count()
    for _ in range(6):
        deal = closed_lost(rep, lost_set, contact=None)
        deal.company = first.company
        deal.save()
        _answer(ask_and_send(rep, deal))
    assert count() == before


def test_admin_edits_templates_and_a_frozen_one_needs_a_new_version(admin_client_, sent_survey):
    template = sent_survey.template
    page = admin_client_.get(f"/admin/surveys/surveytemplate/{template.pk}/change/")
    assert page.status_code == 200 and "it is frozen" not in page.content.decode()
    _answer(sent_survey)
    page = admin_client_.get(f"/admin/surveys/surveytemplate/{template.pk}/change/")
    assert "it is frozen" in page.content.decode()
    admin_client_.post(
        "/admin/surveys/surveytemplate/",
        {"action": "new_version", "_selected_action": [template.pk]},
    )
    new = SurveyTemplate.objects.get(outcome=Outcome.LOST, active=True)
    assert new.version == 2 and not new.is_frozen
    assert new.questions.count() == template.questions.count()
    for url in ("surveyrequest", "surveyoptout", "surveytemplate"):
        assert admin_client_.get(f"/admin/surveys/{url}/").status_code == 200
    assert (
        admin_client_.get(f"/admin/surveys/surveyrequest/{sent_survey.pk}/change/").status_code
        == 200
    )


def test_default_templates_ask_three_or_four_questions_per_outcome(defaults):
    for outcome in Outcome.values:
        template = SurveyTemplate.objects.get(outcome=outcome, active=True)
        kinds = list(template.questions.values_list("kind", flat=True))
        assert 3 <= len(kinds) <= 4 and kinds[0] == SurveyQuestionKind.MAIN_REASON
        assert template.send_on_close is False
    lost = SurveyTemplate.objects.get(outcome=Outcome.LOST, active=True)
    assert SurveyQuestionKind.CHOSEN_INSTEAD in lost.questions.values_list("kind", flat=True)
