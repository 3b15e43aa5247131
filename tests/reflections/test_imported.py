"""
Reflections imported from another CRM: labelled wherever they show, never passed off as the
importing admin's own answers, never amended, and their deals can be reopened.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from insights import selectors as insight_selectors
from opportunities.models import Stage
from reflections import services
from reflections.models import Answer, Origin, QuestionKind, Reflection
from tests.factories import OpportunityFactory, imported_close
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(admin_user, rep, defaults):
    """A lost deal of Riley's, imported by Ada (the admin) with Price as its main reason."""
    return imported_close(
        importer=admin_user,
        owner=rep,
        outcome="lost",
        closed_date=_days_ago(90),
        reason="Price",
        title="Old Harbour renewal",
    )


def _days_ago(days):
    return timezone.localdate() - datetime.timedelta(days=days)


def _with_text(reflection, text):
    """An imported reflection that (unusually) carries free text."""
    Answer.objects.create(
        reflection=reflection,
        question=reflection.prompt_set.questions.get(kind=QuestionKind.SHORT_TEXT),
        text=text,
    )


# --- labels ------------------------------------------------------------------------------------
def test_deal_page_labels_the_imported_reflection_and_its_importer(rep_client, history):
    page = rep_client.get(reverse("opportunities:detail", args=[history.opportunity_id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Imported from another CRM" in html
    assert "imported by Ada Admin" in html
    assert "Price" in html  # its main reason
    assert reverse("reflections:amend", args=[history.pk]) not in html


def test_deal_page_of_an_answered_reflection_has_no_imported_label(rep_client, rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    close(rep, deal, lost_answers(lost_set))
    html = rep_client.get(reverse("opportunities:detail", args=[deal.pk])).content.decode()
    assert "Imported from another CRM" not in html and "imported by" not in html


def test_reflection_detail_says_imported_by_never_by(admin_client_, history):
    html = admin_client_.get(reverse("reflections:detail", args=[history.pk])).content.decode()
    assert "Imported from another CRM" in html
    assert "Imported by Ada Admin" in html
    assert "By Ada Admin" not in html
    assert "Nobody answered its questions in Debrief" in html
    assert reverse("reflections:amend", args=[history.pk]) not in html


# --- amending ----------------------------------------------------------------------------------
def test_the_importer_cannot_amend_an_imported_reflection(admin_user, history, lost_set):
    assert services.can_amend(admin_user, history) is False
    with pytest.raises(ValidationError, match="imported from another CRM"):
        services.reflection_amend(actor=admin_user, reflection=history, answers=[])
    history.refresh_from_db()
    assert history.edited_at is None and history.revisions.count() == 0


def test_amend_page_refuses_an_imported_reflection_with_a_clear_message(
    admin_client_, history, lost_set
):
    url = reverse("reflections:amend", args=[history.pk])
    response = admin_client_.post(url, lost_answers(lost_set), follow=True)
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("reflections:detail", args=[history.pk])
    assert "nobody answered it in Debrief, so it cannot be amended" in html
    assert history.answers.get().reason.label == "Price"  # unchanged
    assert not history.revisions.exists()


def test_an_answered_reflection_can_still_be_amended(rep, lost_set):
    deal = OpportunityFactory(owner=rep)
    reflection = close(rep, deal, lost_answers(lost_set))
    assert reflection.origin == Origin.ANSWERED
    assert services.can_amend(rep, reflection) is True


# --- my reflections ----------------------------------------------------------------------------
def test_my_reflections_leaves_out_what_the_admin_imported(admin_client_, admin_user, history):
    _with_text(history, "Old CRM note: went with the incumbent")
    assert not insight_selectors.my_lessons(admin_user).exists()
    html = admin_client_.get(reverse("insights:my_reflections")).content.decode()
    assert "Old CRM note" not in html


def test_my_reflections_still_lists_the_admins_own_answered_lessons(admin_user, history, lost_set):
    deal = OpportunityFactory(owner=admin_user)
    close(admin_user, deal, lost_answers(lost_set))
    lessons = list(insight_selectors.my_lessons(admin_user))
    assert [row["body"] for row in lessons] == ["Bring finance in earlier."]


# --- reopening ---------------------------------------------------------------------------------
def test_the_owner_can_reopen_an_imported_deal_and_its_reflection_becomes_history(
    rep_client, rep, history
):
    deal = history.opportunity
    response = rep_client.post(reverse("reflections:reopen", args=[deal.pk]), follow=True)
    assert response.status_code == 200
    deal.refresh_from_db()
    history.refresh_from_db()
    assert deal.is_open and deal.stage == Stage.NEGOTIATION and deal.closed_date is None
    assert history.current is False and history.origin == Origin.IMPORTED
    html = response.content.decode()
    assert "is open again" in html
    assert "Imported from another CRM" in html and "the deal was reopened after this" in html
    # Closing it again asks the rep for a reflection of their own.
    assert Reflection.objects.filter(opportunity=deal, current=True).count() == 0
