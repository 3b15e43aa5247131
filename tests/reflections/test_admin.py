import pytest
from django.db.models import ProtectedError
from django.urls import reverse

from reflections.models import Outcome, PromptSet, Reason
from tests.factories import OpportunityFactory
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

pytestmark = pytest.mark.django_db


def test_prompt_set_admin_shows_questions_inline(admin_client_, lost_set):
    response = admin_client_.get(reverse("admin:reflections_promptset_change", args=[lost_set.pk]))
    assert response.status_code == 200
    assert b"What would you do differently?" in response.content
    assert b'name="questions-0-label"' in response.content  # editable while not frozen


def test_frozen_prompt_set_is_read_only_in_admin(admin_client_, rep, lost_set):
    close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    url = reverse("admin:reflections_promptset_change", args=[lost_set.pk])
    response = admin_client_.get(url)
    assert b"frozen" in response.content
    assert b'name="questions-0-label"' not in response.content
    assert b'name="name"' not in response.content
    admin_client_.post(url, {"name": "Renamed", "active": "on"})
    lost_set.refresh_from_db()
    assert lost_set.name == "Why we lost"


def test_new_version_action_copies_questions_and_activates(admin_client_, lost_set):
    response = admin_client_.post(
        reverse("admin:reflections_promptset_changelist"),
        {"action": "new_version", "_selected_action": [lost_set.pk]},
        follow=True,
    )
    assert response.status_code == 200
    new = PromptSet.objects.get(family="default-lost", active=True)
    assert new.version == 2 and new.questions.count() == lost_set.questions.count()


def test_merge_action_retires_and_points_to_the_target(admin_client_):
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    budget = Reason.objects.get(outcome=Outcome.LOST, label="Budget")
    url = reverse("admin:reflections_reason_changelist")
    form = admin_client_.post(url, {"action": "merge", "_selected_action": [budget.pk]})
    assert form.status_code == 200 and b"Count these under" in form.content
    admin_client_.post(
        url,
        {"action": "merge", "_selected_action": [budget.pk], "apply": "1", "into": price.pk},
    )
    budget.refresh_from_db()
    assert budget.merged_into == price and not budget.active


def test_reason_in_use_cannot_be_deleted(rep, lost_set):
    close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    with pytest.raises(ProtectedError):
        Reason.objects.get(outcome=Outcome.LOST, label="Price").delete()


def test_reflection_admin_lists_and_shows_answers_read_only(admin_client_, rep, lost_set):
    reflection = close(rep, OpportunityFactory(owner=rep), lost_answers(lost_set))
    assert admin_client_.get(reverse("admin:reflections_reflection_changelist")).status_code == 200
    response = admin_client_.get(
        reverse("admin:reflections_reflection_change", args=[reflection.pk])
    )
    assert response.status_code == 200 and b"Bring finance in earlier." in response.content
