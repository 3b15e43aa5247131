"""Creating and editing deals through the form, and the form's two autocomplete endpoints."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from customers.models import Contact
from opportunities import services
from opportunities.models import Competitor, Opportunity, Product, Stage, StageChange
from tests.factories import (
    CompanyFactory,
    CompetitorFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    ProductLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
CREATE = reverse("opportunities:create")
AUTOCOMPLETE = reverse("opportunities:company_autocomplete")
CONTACTS = reverse("opportunities:contact_options")


def edit_url(deal) -> str:
    return reverse("opportunities:edit", args=[deal.pk])


@pytest.fixture
def company():
    return CompanyFactory(name="Acme Widgets")


@pytest.fixture
def contact(company):
    return ContactFactory(company=company, full_name="Sam Buyer")


@pytest.fixture
def product():
    return ProductFactory(name="Ledger", line=ProductLineFactory(name="Finance"))


@pytest.fixture
def post_data(company, contact, product):
    """A valid deal form submission; tests change one thing at a time."""
    return {
        "company": company.pk,
        "company_name": company.name,
        "contact": contact.pk,
        "title": "  Ledger for Acme  ",
        "product": product.pk,
        "amount": "25000.00",
        "currency": "GBP",
        "stage": Stage.QUALIFICATION,
        "expected_close_date": (timezone.localdate() + datetime.timedelta(days=45)).isoformat(),
        "primary_competitor": "",
        "next_step": "Demo to finance",
        "next_step_due": (timezone.localdate() + datetime.timedelta(days=3)).isoformat(),
    }


def field_errors(response, field: str) -> list[str]:
    return response.context["form"].errors.get(field, [])


# --- create -------------------------------------------------------------------------------------
@pytest.mark.smoke
def test_rep_creates_a_deal_they_own_and_its_first_stage_is_recorded(rep_client, rep, post_data):
    response = rep_client.post(CREATE, post_data)
    deal = Opportunity.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("opportunities:detail", args=[deal.pk])
    assert (deal.owner, deal.title, deal.stage) == (rep, "Ledger for Acme", Stage.QUALIFICATION)
    change = StageChange.objects.get(opportunity=deal)
    assert (change.from_stage, change.to_stage, change.changed_by) == ("", "qualification", rep)
    follow = rep_client.get(response["Location"])
    assert "is in your pipeline" in follow.content.decode()


def test_htmx_create_redirects_the_browser_to_the_deal(rep_client, post_data):
    response = rep_client.post(CREATE, post_data, **HTMX)
    deal = Opportunity.objects.get()
    assert response["HX-Redirect"] == reverse("opportunities:detail", args=[deal.pk])


def test_htmx_create_with_errors_returns_only_the_form(rep_client, post_data):
    response = rep_client.post(CREATE, {**post_data, "amount": "-5"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="deal-form"' in html
    assert "Ensure this value is greater than or equal to 0." in html
    assert not Opportunity.objects.exists()


def test_create_refuses_negative_amount(rep_client, post_data):
    response = rep_client.post(CREATE, {**post_data, "amount": "-1"})
    assert field_errors(response, "amount") == ["Ensure this value is greater than or equal to 0."]
    assert Opportunity.objects.count() == 0


def test_create_refuses_contact_of_another_company(rep_client, post_data):
    stranger = ContactFactory(full_name="Someone Else")
    response = rep_client.post(CREATE, {**post_data, "contact": stranger.pk})
    assert field_errors(response, "contact") == [
        "Someone Else does not work at Acme Widgets. Pick one of Acme Widgets's contacts."
    ]
    assert Opportunity.objects.count() == 0


@pytest.mark.parametrize("stage", ["won", "bogus"])
def test_create_refuses_closed_or_unknown_stage(rep_client, post_data, stage):
    response = rep_client.post(CREATE, {**post_data, "stage": stage})
    assert field_errors(response, "stage")
    assert Opportunity.objects.count() == 0


def test_create_without_a_picked_company_asks_to_pick_one(rep_client, post_data):
    response = rep_client.post(CREATE, {**post_data, "company": ""})
    assert "Pick a company from the list" in response.content.decode()
    assert Opportunity.objects.count() == 0


def test_rep_cannot_forge_another_owner(rep_client, post_data, other_rep):
    response = rep_client.post(CREATE, {**post_data, "owner": other_rep.pk})
    assert field_errors(response, "owner") == [
        "You can only give deals to yourself or people in your teams."
    ]
    assert "You can only give deals to yourself" in response.content.decode()
    assert Opportunity.objects.count() == 0


def test_manager_cannot_give_a_deal_to_another_teams_rep(manager_client, post_data, other_rep):
    response = manager_client.post(CREATE, {**post_data, "owner": other_rep.pk})
    assert field_errors(response, "owner")
    assert Opportunity.objects.count() == 0


def test_other_manager_cannot_give_a_deal_to_north_rep(client, other_manager, rep, post_data):
    client.force_login(other_manager)
    response = client.post(CREATE, {**post_data, "owner": rep.pk})
    assert field_errors(response, "owner")
    assert Opportunity.objects.count() == 0


def test_manager_creates_a_deal_for_a_team_rep(manager_client, manager, teammate, post_data):
    manager_client.post(CREATE, {**post_data, "owner": teammate.pk})
    deal = Opportunity.objects.get()
    assert deal.owner == teammate
    assert StageChange.objects.get(opportunity=deal).changed_by == manager


def test_manager_is_offered_only_active_team_members(manager_client, rep, teammate, other_rep):
    gone = UserFactory(full_name="Gone Rep", team=rep.team, is_active=False)
    choices = {u.pk for u in manager_client.get(CREATE).context["form"].fields["owner"].queryset}
    assert rep.pk in choices and teammate.pk in choices
    assert other_rep.pk not in choices and gone.pk not in choices


def test_next_step_due_needs_a_next_step(rep_client, post_data):
    response = rep_client.post(CREATE, {**post_data, "next_step": "  "})
    assert field_errors(response, "next_step") == ["Say what the next step is, not only when."]
    assert Opportunity.objects.count() == 0


def test_retired_product_and_inactive_competitor_are_not_offered(rep_client, post_data):
    retired = ProductFactory(name="Old thing", active=False)
    gone = CompetitorFactory(name="Defunct Inc", active=False)
    form = rep_client.get(CREATE).context["form"]
    assert retired.name not in str(form["product"])
    assert gone not in form.fields["primary_competitor"].queryset
    response = rep_client.post(CREATE, {**post_data, "product": retired.pk})
    assert field_errors(response, "product") == ["Pick a product from the list."]
    assert Opportunity.objects.count() == 0


def test_products_are_grouped_by_line(rep_client, product):
    ProductFactory(name="Payslips", line=ProductLineFactory(name="Payroll"))
    html = rep_client.get(CREATE).content.decode()
    assert '<optgroup label="Finance">' in html and '<optgroup label="Payroll">' in html


def test_suppressed_pitch_is_refused_prominently(rep_client, post_data, monkeypatch):
    def refuse(**kwargs):
        raise ValidationError(
            "Acme declined Ledger on 1 May; not to be pitched until 1 August.", code="suppressed"
        )

    monkeypatch.setattr(services, "opportunity_create", refuse)
    response = rep_client.post(CREATE, post_data)
    html = response.content.decode()
    assert "opportunity-blocked" in html
    assert "This customer cannot be pitched this product now" in html
    assert "not to be pitched until 1 August" in html
    assert Opportunity.objects.count() == 0


def test_service_errors_land_on_their_fields(rep_client, post_data, monkeypatch):
    def refuse(**kwargs):
        raise ValidationError({"amount": "Too big for this product.", "company_id": "Odd."})

    monkeypatch.setattr(services, "opportunity_create", refuse)
    response = rep_client.post(CREATE, post_data)
    form = response.context["form"]
    assert form.errors["amount"] == ["Too big for this product."]
    assert form.non_field_errors() == ["Odd."]


def test_form_has_a_label_for_every_input(rep_client, company, contact):
    html = rep_client.get(CREATE).content.decode()
    for field_id in [
        "id_company_name",
        "id_contact",
        "id_title",
        "id_product",
        "id_amount",
        "id_currency",
        "id_stage",
        "id_expected_close_date",
        "id_primary_competitor",
        "id_next_step",
        "id_next_step_due",
    ]:
        assert f'for="{field_id}"' in html, field_id
    assert 'type="date"' in html


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_create_form_query_count_does_not_grow_with_catalogue(
    client, rep, manager, count_queries, persona
):
    client.force_login(rep if persona == "rep" else manager)

    def grow(n):
        line = ProductLineFactory()
        Product.objects.bulk_create(Product(line=line, name=f"P{i}") for i in range(n))
        start = Competitor.objects.count()
        Competitor.objects.bulk_create(Competitor(name=f"C{start + i}") for i in range(n))
        for i in range(n // 10):
            UserFactory(team=rep.team, role=Role.REP, email=f"m{n}-{i}@example.com")

    grow(50)
    with_50, _ = count_queries(lambda: client.get(CREATE))
    grow(450)
    with_500, response = count_queries(lambda: client.get(CREATE))
    assert response.status_code == 200
    # Session, user, products, competitors; a manager adds the owner choices and the
    # navigation's count of exception requests waiting for them.
    assert with_50 == with_500 == {"rep": 4, "manager": 6}[persona]


# --- edit ---------------------------------------------------------------------------------------
def test_editing_the_stage_records_a_stage_change(rep_client, rep, post_data):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    data = {
        **post_data,
        "company": deal.company_id,
        "contact": deal.contact_id,
        "stage": Stage.NEGOTIATION,
    }
    response = rep_client.post(edit_url(deal), data)
    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.stage == Stage.NEGOTIATION
    change = StageChange.objects.get(opportunity=deal)
    assert (change.from_stage, change.to_stage, change.changed_by) == (
        "proposal",
        "negotiation",
        rep,
    )


def test_editing_without_a_stage_change_records_none(rep_client, rep, post_data):
    deal = OpportunityFactory(owner=rep, stage=Stage.PROPOSAL)
    data = {
        **post_data,
        "company": deal.company_id,
        "contact": deal.contact_id,
        "stage": Stage.PROPOSAL,
        "amount": "999.00",
    }
    rep_client.post(edit_url(deal), data)
    deal.refresh_from_db()
    assert deal.amount == Decimal("999.00")
    assert not StageChange.objects.filter(opportunity=deal).exists()


def test_edit_form_starts_from_the_deal(rep_client, rep):
    deal = OpportunityFactory(owner=rep, title="Keep me")
    ContactFactory(full_name="Not Here")  # another company's contact is never offered
    html = rep_client.get(edit_url(deal)).content.decode()
    assert 'value="Keep me"' in html and f'value="{deal.company.name}"' in html
    assert deal.contact.full_name in html and "Not Here" not in html


def test_edit_keeps_a_retired_product_visible(rep_client, rep):
    deal = OpportunityFactory(owner=rep, product=ProductFactory(name="Vintage", active=False))
    assert "Vintage" in rep_client.get(edit_url(deal)).content.decode()


def test_closed_deal_cannot_be_edited(rep_client, rep, post_data):
    deal = OpportunityFactory(owner=rep, stage=Stage.WON, title="Done deal")
    response = rep_client.get(edit_url(deal), follow=True)
    assert "is closed (Won), so it cannot be edited" in response.content.decode()
    response = rep_client.post(edit_url(deal), {**post_data, "title": "Changed"})
    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.title == "Done deal"


def test_rep_cannot_edit_other_teams_deal(rep_client, other_rep, post_data):
    deal = OpportunityFactory(owner=other_rep)
    assert rep_client.get(edit_url(deal)).status_code == 404
    assert rep_client.post(edit_url(deal), post_data).status_code == 404


def test_other_manager_cannot_edit_north_deal(client, other_manager, rep, post_data):
    client.force_login(other_manager)
    deal = OpportunityFactory(owner=rep, title="Untouched")
    assert client.get(edit_url(deal)).status_code == 404
    assert client.post(edit_url(deal), {**post_data, "title": "Hijacked"}).status_code == 404
    deal.refresh_from_db()
    assert deal.title == "Untouched"


def test_manager_reassigns_a_team_deal(manager_client, rep, teammate, post_data):
    deal = OpportunityFactory(owner=rep)
    data = {
        **post_data,
        "company": deal.company_id,
        "contact": deal.contact_id,
        "owner": teammate.pk,
    }
    assert manager_client.post(edit_url(deal), data).status_code == 302
    deal.refresh_from_db()
    assert deal.owner == teammate


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_edit_form_query_count_does_not_grow_with_contacts(
    client, rep, manager, count_queries, persona
):
    client.force_login(rep if persona == "rep" else manager)
    deal = OpportunityFactory(owner=rep)

    def add_contacts(n):
        start = Contact.objects.count()
        Contact.objects.bulk_create(
            Contact(company=deal.company, full_name=f"Person {start + i}") for i in range(n)
        )

    add_contacts(50)
    with_50, _ = count_queries(lambda: client.get(edit_url(deal)))
    add_contacts(100)
    with_150, response = count_queries(lambda: client.get(edit_url(deal)))
    assert response.status_code == 200
    # Session, user, deal, products, contacts, competitors; a manager adds team ids, the
    # can-act-for check, the owner choices and the navigation's count of requests waiting.
    assert with_50 == with_150 == {"rep": 6, "manager": 9}[persona]


# --- autocomplete ---------------------------------------------------------------------------------
def test_autocomplete_endpoints_require_login(client, company):
    assert client.get(AUTOCOMPLETE, {"q": "Acme"}).status_code == 302
    assert client.get(CONTACTS, {"company": company.pk}).status_code == 302


def test_company_autocomplete_returns_nothing_for_an_empty_query(rep_client, company):
    response = rep_client.get(AUTOCOMPLETE, {"q": "  "})
    assert response.status_code == 200
    assert response.content.decode().strip() == ""


def test_company_autocomplete_lists_at_most_ten_matches(rep_client, count_queries):
    for i in range(12):
        CompanyFactory(name=f"Acme {i:02d}")
    queries, response = count_queries(lambda: rep_client.get(AUTOCOMPLETE, {"q": "acme"}))
    assert response.content.decode().count("data-company-id=") == 10
    assert queries <= 3


def test_company_autocomplete_reads_the_forms_input_name(rep_client, company):
    response = rep_client.get(AUTOCOMPLETE, {"company_name": "widg"})
    assert f'data-company-id="{company.pk}"' in response.content.decode()


def test_company_autocomplete_says_when_nothing_matches(rep_client):
    assert "No company matches" in rep_client.get(AUTOCOMPLETE, {"q": "zzz"}).content.decode()


def test_contact_options_are_the_companys_contacts(rep_client, company, contact):
    ContactFactory(full_name="Elsewhere Person")
    html = rep_client.get(CONTACTS, {"company": company.pk}).content.decode()
    assert f'<option value="{contact.pk}">Sam Buyer' in html
    assert "Elsewhere Person" not in html
    assert '<option value="">No contact yet</option>' in html


@pytest.mark.parametrize("company_param", ["", "abc", "999999"])
def test_contact_options_without_a_valid_company_offer_no_contacts(rep_client, company_param):
    ContactFactory()
    html = rep_client.get(CONTACTS, {"company": company_param}).content.decode()
    assert html.count("<option") == 1
