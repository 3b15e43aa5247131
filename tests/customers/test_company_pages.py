import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers import services
from customers.models import Company, Contact, Region, Segment, SizeBand
from opportunities.models import Opportunity, Stage
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def list_url(**params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return reverse("customers:company_list") + (f"?{query}" if query else "")


def detail_url(company: Company) -> str:
    return reverse("customers:company_detail", args=[company.pk])


def names_on(response) -> list[str]:
    return [company.name for company in response.context["page"].object_list]


def bulk_companies(n: int, prefix: str = "Bulk") -> None:
    Company.objects.bulk_create(
        Company(
            name=f"{prefix} {i:04d}",
            domain=f"{prefix.lower()}{i}.example",
            segment=Segment.SOFTWARE,
            size_band=SizeBand.MID,
            region=Region.UK,
        )
        for i in range(n)
    )


def add_related_rows(company: Company, *, owner, colleague, n: int) -> None:
    """n contacts, and n deals split between open and closed, owner and colleague."""
    contacts = Contact.objects.bulk_create(
        Contact(company=company, full_name=f"Person {i}", email=f"p{i}@{company.domain}")
        for i in range(n)
    )
    product = ProductFactory()
    today = timezone.localdate()
    deals = []
    for i in range(n):
        closed = i % 2 == 0
        deals.append(
            Opportunity(
                company=company,
                contact=contacts[i],
                product=product,
                owner=owner if i % 3 else colleague,
                title=f"Deal {i}",
                amount=Decimal("1000"),
                stage=Stage.WON if closed else Stage.PROPOSAL,
                expected_close_date=today,
                closed_date=today if closed else None,
                next_step="" if closed else "Call them",
                next_step_due=None if closed else today - datetime.timedelta(days=i % 3),
            )
        )
    Opportunity.objects.bulk_create(deals)


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


# --- company list ------------------------------------------------------------------------------
def test_company_list_needs_login(client):
    response = client.get(list_url())
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_company_list_is_ordered_by_name_ignoring_case_and_paginated(rep_client):
    bulk_companies(27)
    CompanyFactory(name="aardvark Ltd")
    first = rep_client.get(list_url())
    assert first.status_code == 200
    assert names_on(first)[0] == "aardvark Ltd"
    assert len(names_on(first)) == 25
    assert first.context["page"].paginator.count == 28
    second = rep_client.get(list_url(page=2))
    assert names_on(second) == ["Bulk 0024", "Bulk 0025", "Bulk 0026"]
    # A page past the end shows the last page instead of an error.
    assert names_on(rep_client.get(list_url(page=99))) == names_on(second)


def test_company_list_searches_name_and_domain(rep_client, acme):
    CompanyFactory(name="Widget Works", domain="widgets.example")
    CompanyFactory(name="Other plc", domain="acmeish.example")
    assert names_on(rep_client.get(list_url(q="widget"))) == ["Widget Works"]
    # A pasted web address matches on the domain.
    assert names_on(rep_client.get(list_url(q="https://www.widgets.example/"))) == ["Widget Works"]
    assert names_on(rep_client.get(list_url(q="ACME"))) == ["Acme Analytics Ltd", "Other plc"]


def test_company_list_filters_by_segment_and_region(rep_client):
    CompanyFactory(name="Bank UK", segment=Segment.FINANCE, region=Region.UK)
    CompanyFactory(name="Bank EU", segment=Segment.FINANCE, region=Region.EUROPE)
    CompanyFactory(name="Shop UK", segment=Segment.RETAIL, region=Region.UK)
    assert names_on(rep_client.get(list_url(segment="finance"))) == ["Bank EU", "Bank UK"]
    assert names_on(rep_client.get(list_url(segment="finance", region="uk"))) == ["Bank UK"]
    # Pager links keep the filters.
    response = rep_client.get(list_url(segment="finance", region="uk"))
    assert response.context["page_query"] == "segment=finance&region=uk&"


def test_company_list_ignores_unknown_filter_values(rep_client, acme):
    response = rep_client.get(list_url(segment="spaceflight"))
    assert response.status_code == 200
    assert names_on(response) == ["Acme Analytics Ltd"]


def test_company_list_says_when_nothing_matches(rep_client, acme):
    response = rep_client.get(list_url(q="zzz"))
    assert "No company matches these filters" in response.content.decode()


def test_company_list_htmx_request_gets_only_the_results_fragment(rep_client, acme):
    full = rep_client.get(list_url(q="acme"))
    fragment = rep_client.get(list_url(q="acme"), **HTMX)
    full_html, fragment_html = full.content.decode(), fragment.content.decode()
    assert "<html" in full_html and 'hx-push-url="true"' in full_html
    assert "<html" not in fragment_html and 'role="search"' not in fragment_html
    assert fragment_html.strip().startswith('<section id="company-results"')
    assert "Acme Analytics Ltd" in fragment_html
    assert "HX-Request" in fragment["Vary"]
    # A history restore (htmx cache miss) needs the whole page.
    restore = rep_client.get(list_url(q="acme"), HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)
    assert "<html" in restore.content.decode()


def test_company_list_pager_links_work_with_and_without_htmx(rep_client):
    bulk_companies(30)
    html = rep_client.get(list_url(q="bulk")).content.decode()
    assert 'href="/companies/?q=bulk&amp;page=2"' in html
    assert 'hx-get="/companies/?q=bulk&amp;page=2"' in html


def test_company_list_query_count_does_not_grow_with_companies(rep_client):
    bulk_companies(50, prefix="Few")
    few = count_queries(rep_client, list_url())
    bulk_companies(450, prefix="Many")
    many = count_queries(rep_client, list_url(page=3))
    # Session, user, count, page.
    assert few == many == 4


# --- company page (pre-call brief) ---------------------------------------------------------------
def test_company_page_shows_facts_and_contacts_with_do_not_contact_badge(rep_client, rep, acme):
    ContactFactory(company=acme, full_name="Dana Doe", title="CFO", email="dana@acme.example")
    ContactFactory(company=acme, full_name="Nick Never", do_not_contact=True)
    response = rep_client.get(detail_url(acme))
    html = response.content.decode()
    assert response.status_code == 200
    assert "acme.example" in html and "Software" in html
    assert "Dana Doe" in html and "CFO" in html and "mailto:dana@acme.example" in html
    assert "Nick Never" in html and "Do not contact" in html
    assert f"{reverse('opportunities:create')}?company={acme.pk}" in html
    # Editing is for whoever added it or sells to it (and managers): not yet this rep.
    edit = reverse("customers:company_edit", args=[acme.pk])
    assert edit not in html
    OpportunityFactory(owner=rep, company=acme)
    assert edit in rep_client.get(detail_url(acme)).content.decode()


def test_unknown_company_is_404(rep_client):
    assert rep_client.get(reverse("customers:company_detail", args=[999999])).status_code == 404


@pytest.mark.smoke
def test_rep_sees_own_open_deals_but_not_a_teammates(rep_client, rep, teammate, acme):
    mine = OpportunityFactory(company=acme, owner=rep, title="Mine", next_step="Send deck")
    OpportunityFactory(company=acme, owner=teammate, title="Teammate's")
    response = rep_client.get(detail_url(acme))
    assert response.context["open_deals"] == [mine]
    html = response.content.decode()
    assert reverse("opportunities:detail", args=[mine.pk]) in html
    assert "Send deck" in html
    assert "Teammate&#x27;s" not in html


def test_manager_sees_their_teams_open_deals_only(
    client, manager, other_manager, rep, teammate, other_rep, acme
):
    mine = OpportunityFactory(company=acme, owner=rep, title="Rep's")
    theirs = OpportunityFactory(company=acme, owner=teammate, title="Teammate's")
    south = OpportunityFactory(company=acme, owner=other_rep, title="South's")
    client.force_login(manager)
    assert set(client.get(detail_url(acme)).context["open_deals"]) == {mine, theirs}
    client.force_login(other_manager)
    assert client.get(detail_url(acme)).context["open_deals"] == [south]


def test_closed_history_is_org_wide_and_linked_only_where_visible(rep_client, rep, other_rep, acme):
    own = OpportunityFactory(company=acme, owner=rep, title="Our win", stage=Stage.WON)
    elsewhere = OpportunityFactory(
        company=acme, owner=other_rep, title="Their loss", stage=Stage.LOST
    )
    OpportunityFactory(company=acme, owner=other_rep, title="Open elsewhere")
    OpportunityFactory(owner=rep, title="Other company", stage=Stage.WON)
    response = rep_client.get(detail_url(acme))
    closed = {deal.title: deal for deal in response.context["closed_deals"]}
    assert set(closed) == {"Our win", "Their loss"}
    assert closed["Our win"].can_open and not closed["Their loss"].can_open
    html = response.content.decode()
    assert reverse("opportunities:detail", args=[own.pk]) in html
    assert reverse("opportunities:detail", args=[elsewhere.pk]) not in html
    assert "Their loss" in html and other_rep.full_name in html
    assert "badge-lost" in html and "badge-won" in html
    assert "Open elsewhere" not in html
    assert (response.context["won_count"], response.context["lost_count"]) == (1, 1)


def test_company_page_renders_the_brief_sections_of_later_apps(rep_client, acme):
    content = rep_client.get(detail_url(acme)).content.decode()
    for heading in (
        "Your open deals",
        "Closed deals",
        "Past outcomes and why",
        "Objection playbook",
    ):
        assert heading in content, heading
    assert "After a call" in content


@pytest.mark.parametrize("who", ["rep", "manager"])
def test_company_page_query_count_does_not_grow_with_contacts_and_deals(
    client, request, who, rep, teammate
):
    viewer = request.getfixturevalue(who)
    client.force_login(viewer)
    small = CompanyFactory(domain="small.example")
    large = CompanyFactory(domain="large.example")
    add_related_rows(small, owner=rep, colleague=teammate, n=50)
    add_related_rows(large, owner=rep, colleague=teammate, n=500)
    few = count_queries(client, detail_url(small))
    many = count_queries(client, detail_url(large))
    # Session, user, company (for a rep, with whether one of their deals is there: they may
    # edit it), its contacts, suppressions; deals: open, closed with the outcome counts;
    # reflections: pinned and latest debriefs together, past reflections, the debrief form's
    # objections (its contacts and deals are the page's); surveys: the company's deal ids,
    # then the buyers' own words among them (joined, PostgreSQL's plan walked every survey);
    # insights: the stored objection playbook (no objection heard here, so whether there are
    # open deals instead of quotes); a manager adds their team ids once, and the navigation's
    # count of exception requests waiting for them.
    assert few == many == {"rep": 14, "manager": 16}[who]
    # Nothing is cached: seen again, the page reads the same stored rows.
    assert count_queries(client, detail_url(large)) == many


def test_company_page_with_every_section_filled_keeps_its_query_count(
    client, rep, teammate, manager, acme
):
    """Suppressions (active, ended, lifted), debriefs with objections, deals, contacts."""
    from reflections.models import CallDebrief, Objection
    from suppressions.models import Suppression, SuppressionReason, SuppressionScope

    today = timezone.localdate()
    product = ProductFactory(name="Ledger Pro")
    price = Objection.objects.get(label="Price too high")
    ada = ContactFactory(company=acme, full_name="Ada Byrne")
    ContactFactory(company=acme, full_name="Zoe Quinn")
    ContactFactory(full_name="Elsewhere Person")
    mine = OpportunityFactory(company=acme, owner=rep, title="Renewal", product=product)
    OpportunityFactory(company=acme, owner=teammate, title="Upsell")
    for i in range(25):
        OpportunityFactory(
            company=acme,
            owner=teammate,
            stage=(Stage.WON, Stage.LOST, Stage.NO_DECISION)[i % 3],
            closed_date=today - datetime.timedelta(days=i),
        )
    common = {"company": acme, "scope": SuppressionScope.PRODUCT, "product": product}
    Suppression.objects.create(
        **common,
        contact=ada,
        reason=SuppressionReason.DECLINED,
        starts_on=today - datetime.timedelta(days=10),
        until=today + datetime.timedelta(days=80),
    )
    Suppression.objects.create(
        **common,
        reason=SuppressionReason.BOUGHT,
        starts_on=today - datetime.timedelta(days=60),
        until=today - datetime.timedelta(days=5),
    )
    Suppression.objects.create(
        **common,
        reason=SuppressionReason.DECLINED,
        starts_on=today - datetime.timedelta(days=20),
        until=today + datetime.timedelta(days=20),
        lifted_at=timezone.now(),
        lifted_by=manager,
        lift_reason="They asked us to call back.",
    )
    for i in range(14):
        debrief = CallDebrief.objects.create(
            company=acme,
            author=rep,
            contact=ada,
            call_date=today - datetime.timedelta(days=i),
            customer_said=f"Said {i}",
            high_card=i % 4 == 0,
        )
        debrief.objections.add(price)

    client.force_login(rep)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(detail_url(acme))
    # The count of the empty page (above), plus whoever lifted a suppression and the
    # debriefs' objections.
    assert len(queries) == 14 + 2
    html = response.content.decode()
    assert "Lifted" in html and "They asked us to call back." in html and manager.full_name in html
    assert "Ended " in html and "Ada Byrne" in html
    assert (response.context["won_count"], response.context["lost_count"]) == (9, 8)
    assert response.context["no_decision_count"] == 8
    assert len(response.context["closed_deals"]) == 20 and response.context["closed_hidden"] == 5
    # The debrief form offers this company's contacts by name and only the deals the rep may see.
    form = html[html.index('name="contact"') : html.index('name="customer_said"')]
    assert form.index("Ada Byrne") < form.index("Zoe Quinn") and "Elsewhere" not in form
    assert f'value="{mine.pk}">Renewal<' in form and "Upsell" not in form
    assert "Edit company" in html


# --- adding a contact --------------------------------------------------------------------------
def contact_url(company: Company) -> str:
    return reverse("customers:contact_create", args=[company.pk])


@pytest.mark.smoke
def test_add_contact_with_htmx_returns_the_refreshed_contacts_fragment(rep_client, acme):
    response = rep_client.post(
        contact_url(acme),
        {"full_name": " Erin Example ", "title": "COO", "email": "Erin@Acme.example ",
         "phone": "020 7946 0123"},
        **HTMX,
    )  # fmt: skip
    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<section id="contacts"')
    assert "<html" not in html
    assert "Erin Example was added." in html
    contact = Contact.objects.get(company=acme)
    assert (contact.full_name, contact.email, contact.phone_normalized) == (
        "Erin Example",
        "erin@acme.example",
        "+442079460123",
    )
    # The form comes back empty and closed, ready for the next person.
    assert (
        'value="Erin Example"' not in html
        and '<details id="contact-form" class="add-contact">' in html
    )


def test_add_contact_with_a_duplicate_email_rerenders_the_form_and_saves_nothing(rep_client, acme):
    ContactFactory(company=acme, full_name="Dana Doe", email="dana@acme.example")
    response = rep_client.post(
        contact_url(acme), {"full_name": "Dana Again", "email": "DANA@acme.example"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#contact-form"
    assert response["HX-Reswap"] == "outerHTML"
    assert html.strip().startswith('<details id="contact-form"')
    assert "Dana Doe at this company already has the e-mail address dana@acme.example" in html
    assert 'value="Dana Again"' in html
    assert Contact.objects.filter(company=acme).count() == 1


def test_add_contact_needs_a_name(rep_client, acme):
    response = rep_client.post(contact_url(acme), {"full_name": "  ", "email": "x@acme.example"})
    assert response.status_code == 200
    assert response.context["contact_form"].errors["full_name"]
    assert not Contact.objects.exists()


def test_add_contact_without_javascript_redirects_back_to_the_brief(rep_client, acme):
    response = rep_client.post(contact_url(acme), {"full_name": "Sam Plain"})
    assert response.status_code == 302
    assert response["Location"] == detail_url(acme) + "#contacts"
    assert Contact.objects.get().full_name == "Sam Plain"


def test_add_contact_is_post_only_and_404s_for_unknown_company(rep_client, acme):
    assert rep_client.get(contact_url(acme)).status_code == 405
    missing = reverse("customers:contact_create", args=[999999])
    assert rep_client.post(missing, {"full_name": "X"}).status_code == 404


# --- creating and editing a company ------------------------------------------------------------
COMPANY_DATA = {
    "name": "Kestrel Systems Ltd",
    "domain": "https://www.Kestrel.example/about",
    "segment": Segment.SOFTWARE,
    "size_band": SizeBand.LARGE,
    "region": Region.UK,
}


def test_create_company_normalises_the_domain_and_opens_its_page(rep_client):
    response = rep_client.post(reverse("customers:company_create"), COMPANY_DATA)
    company = Company.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(company)
    assert company.domain == "kestrel.example"


def test_create_company_with_a_taken_domain_names_the_owner_and_saves_nothing(rep_client, acme):
    response = rep_client.post(
        reverse("customers:company_create"), {**COMPANY_DATA, "domain": "www.ACME.example"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["domain"]
    assert errors == [
        "Acme Analytics Ltd already uses the domain acme.example. Open that company instead "
        "of adding it twice, or correct the domain."
    ]
    assert list(Company.objects.all()) == [acme]


def test_create_company_rejects_something_that_is_not_a_domain(rep_client):
    response = rep_client.post(
        reverse("customers:company_create"), {**COMPANY_DATA, "domain": "not a domain"}
    )
    assert "does not look like a web domain" in response.content.decode()
    assert not Company.objects.exists()


def test_new_company_page_renders(rep_client):
    response = rep_client.get(reverse("customers:company_create"))
    assert response.status_code == 200
    assert '<label for="id_domain">' in response.content.decode()


def test_edit_company_keeps_its_own_domain_but_not_anothers(rep_client, rep, acme):
    Company.objects.filter(pk=acme.pk).update(created_by=rep)  # the rep added it
    other = CompanyFactory(name="Other plc", domain="other.example")
    url = reverse("customers:company_edit", args=[acme.pk])
    assert rep_client.get(url).status_code == 200
    data = {**COMPANY_DATA, "name": "Acme Renamed", "domain": "acme.example"}
    assert rep_client.post(url, data).status_code == 302
    acme.refresh_from_db()
    assert acme.name == "Acme Renamed"
    response = rep_client.post(url, {**data, "domain": "other.example"})
    assert "Other plc already uses the domain other.example" in response.content.decode()
    # The heading keeps the saved name while the form shows what was typed.
    assert "Edit Acme Renamed" in response.content.decode()
    acme.refresh_from_db()
    assert acme.domain == "acme.example"
    assert other.domain == "other.example"


def test_company_services_refuse_a_taken_domain_and_email(acme):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as raised:
        services.company_create(
            name="Dup", domain="ACME.example", segment="software", size_band="mid", region="uk"
        )
    assert "Acme Analytics Ltd already uses" in raised.value.message_dict["domain"][0]
    services.contact_create(company=acme, full_name="Ann", email="ann@acme.example")
    with pytest.raises(ValidationError) as raised:
        services.contact_create(company=acme, full_name="Ann 2", email=" Ann@Acme.example")
    assert "Ann at this company already has" in raised.value.message_dict["email"][0]
    assert Company.objects.count() == 1 and Contact.objects.count() == 1
