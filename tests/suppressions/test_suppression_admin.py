import pytest
from django.urls import reverse

from suppressions import services as suppressions_services
from suppressions.models import Suppression, SuppressionRule
from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dnc(rep):
    company = CompanyFactory()
    contact = ContactFactory(company=company)
    return suppressions_services.do_not_contact_add(
        actor=rep, company=company, contact=contact, note="Asked"
    )


def test_suppression_admin_pages_render(admin_client_, dnc):
    for name in ("suppression", "suppressionrule", "suppressionoverride"):
        assert (
            admin_client_.get(reverse(f"admin:suppressions_{name}_changelist")).status_code == 200
        )
    assert (
        admin_client_.get(
            reverse("admin:suppressions_suppression_change", args=[dnc.pk])
        ).status_code
        == 200
    )


def test_lift_action_asks_for_a_reason_then_lifts(admin_client_, admin_user, dnc):
    url = reverse("admin:suppressions_suppression_changelist")
    page = admin_client_.post(url, {"action": "lift", "_selected_action": [dnc.pk]})
    assert page.status_code == 200 and b"Why does it end early?" in page.content
    admin_client_.post(
        url, {"action": "lift", "_selected_action": [dnc.pk], "apply": "1", "reason": "Called back"}
    )
    dnc.refresh_from_db()
    assert dnc.lifted_by == admin_user and dnc.lift_reason == "Called back"
    dnc.contact.refresh_from_db()
    assert not dnc.contact.do_not_contact


def test_suppressions_cannot_be_deleted_in_admin(admin_client_, dnc):
    response = admin_client_.get(reverse("admin:suppressions_suppression_delete", args=[dnc.pk]))
    assert response.status_code == 403
    assert Suppression.objects.filter(pk=dnc.pk).exists()


def test_rebuild_action_runs(admin_client_):
    rule = SuppressionRule.objects.get(trigger_outcome="lost")
    response = admin_client_.post(
        reverse("admin:suppressions_suppressionrule_changelist"),
        {"action": "rebuild", "_selected_action": [rule.pk]},
        follow=True,
    )
    assert b"now derived from it" in response.content


def test_do_not_contact_flag_is_read_only_in_admin(admin_client_, dnc):
    page = admin_client_.get(reverse("admin:customers_contact_change", args=[dnc.contact_id]))
    assert b'name="do_not_contact"' not in page.content
