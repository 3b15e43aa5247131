import datetime

import pytest
from django.urls import reverse

from reflections.models import Outcome
from suppressions.models import OverrideStatus, Suppression, SuppressionOverride
from tests.factories import CompanyFactory, ContactFactory, ProductFactory
from tests.reflections.conftest import lost_answers
from tests.suppressions.test_suppression import closed

pytestmark = pytest.mark.django_db


@pytest.fixture
def pitch(rep, lost_set):
    company = CompanyFactory(name="Brightwater")
    contact = ContactFactory(company=company, full_name="Dana Buyer")
    product = ProductFactory(name="Card Terminal")
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    return company, contact, product


def status_url(company, contact, product):
    return (
        reverse("suppressions:pitch_status")
        + f"?company={company.pk}&contact={contact.pk}&product={product.pk}"
    )


def test_live_status_names_the_suppression_and_offers_an_exception(rep_client, pitch):
    response = rep_client.get(status_url(*pitch), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"Suppressed" in response.content and b"Dana Buyer declined" in response.content
    assert b"Ask a manager for an exception" in response.content


def test_live_status_is_clear_for_another_product(rep_client, pitch):
    company, contact, _ = pitch
    response = rep_client.get(status_url(company, contact, ProductFactory()))
    assert b"No suppression" in response.content


def test_live_status_is_empty_until_company_and_product_are_picked(rep_client):
    response = rep_client.get(reverse("suppressions:pitch_status") + "?company=abc")
    assert response.status_code == 200 and response.content.strip() == b""


def _request(client, company, contact, product, text="Their new CFO asked us to come back."):
    return client.post(
        reverse("suppressions:override_request"),
        {
            "company": company.pk,
            "contact": contact.pk,
            "product": product.pk,
            "justification": text,
        },
    )


def test_rep_requests_and_manager_approves(rep_client, client, manager, pitch):
    response = _request(rep_client, *pitch)
    assert response.status_code == 302
    override = SuppressionOverride.objects.get()
    assert override.status == OverrideStatus.PENDING
    listing = rep_client.get(reverse("suppressions:override_list"))
    assert b"Waiting for a manager" in listing.content
    client.force_login(manager)
    assert b"Approve" in client.get(reverse("suppressions:override_list")).content
    response = client.post(
        reverse("suppressions:override_decide", args=[override.pk]), {"decision": "approve"}
    )
    assert response.status_code == 302
    override.refresh_from_db()
    assert override.status == OverrideStatus.APPROVED and override.decided_by == manager


def test_short_justification_is_refused(rep_client, pitch):
    response = _request(rep_client, *pitch, text="pls")
    assert response.status_code == 422
    assert not SuppressionOverride.objects.exists()


def test_rep_cannot_decide_their_own_request(rep_client, pitch):
    _request(rep_client, *pitch)
    override = SuppressionOverride.objects.get()
    url = reverse("suppressions:override_decide", args=[override.pk])
    assert rep_client.post(url, {"decision": "approve"}).status_code == 404
    override.refresh_from_db()
    assert override.status == OverrideStatus.PENDING


def test_other_teams_manager_cannot_see_or_decide(rep_client, client, other_manager, pitch):
    _request(rep_client, *pitch)
    override = SuppressionOverride.objects.get()
    client.force_login(other_manager)
    assert b"Brightwater" not in client.get(reverse("suppressions:override_list")).content
    url = reverse("suppressions:override_decide", args=[override.pk])
    assert client.post(url, {"decision": "approve"}).status_code == 404


def test_rep_cannot_lift_a_suppression(rep_client, pitch):
    s = Suppression.objects.get()
    url = reverse("suppressions:suppression_lift", args=[s.pk])
    assert rep_client.get(url).status_code == 404
    assert rep_client.post(url, {"reason": "I want to"}).status_code == 404


def test_manager_lifts_with_a_reason(manager_client, pitch):
    s = Suppression.objects.get()
    url = reverse("suppressions:suppression_lift", args=[s.pk])
    assert manager_client.post(url, {"reason": ""}).status_code == 422
    response = manager_client.post(url, {"reason": "Customer called us back"})
    assert response.status_code == 302
    s.refresh_from_db()
    assert s.lifted_at is not None and s.lift_reason == "Customer called us back"


def test_anyone_can_record_do_not_contact(rep_client, pitch):
    company, contact, _ = pitch
    url = reverse("suppressions:do_not_contact", args=[company.pk])
    assert rep_client.post(url, {"contact": contact.pk, "note": ""}).status_code == 422
    response = rep_client.post(url, {"contact": contact.pk, "note": "Asked not to be called"})
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.do_not_contact


def test_do_not_contact_refuses_a_contact_of_another_company(rep_client, pitch):
    company, _, _ = pitch
    stranger = ContactFactory()
    url = reverse("suppressions:do_not_contact", args=[company.pk])
    response = rep_client.post(url, {"contact": stranger.pk, "note": "x"})
    assert response.status_code == 422
    assert not Suppression.objects.filter(reason="do_not_contact").exists()


def test_override_list_query_count_is_constant(
    rep_client, rep, pitch, django_assert_max_num_queries
):
    company, contact, product = pitch
    for i in range(5):
        SuppressionOverride.objects.create(
            suppression=Suppression.objects.get(),
            company=company,
            contact=contact,
            product=product,
            requested_by=rep,
            justification=f"Reason number {i}",
        )
    with django_assert_max_num_queries(4):
        rep_client.get(reverse("suppressions:override_list"))


def test_company_page_query_count_does_not_grow_with_suppressions(rep_client, rep):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from suppressions.models import SuppressionReason, SuppressionScope

    company = CompanyFactory()
    counts = []
    for n in (1, 12):
        for _ in range(n):
            # Company-wide (no contact): their description names the company.
            Suppression.objects.create(
                company=company,
                scope=SuppressionScope.ALL,
                reason=SuppressionReason.BOUGHT,
                starts_on=datetime.date(2026, 1, 1),
                until=datetime.date(2099, 1, 1),
            )
        with CaptureQueriesContext(connection) as queries:
            assert rep_client.get(f"/companies/{company.pk}/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
