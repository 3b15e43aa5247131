"""CSV import of companies and contacts in the admin: preview, confirm, all or nothing."""

import re
from html import unescape

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from customers.models import Company, Contact
from customers.resources import CompanyResource, ContactResource, import_problems
from opportunities.models import StageChange
from tests.factories import (
    CompanyFactory,
    CompetitorFactory,
    ContactFactory,
    OpportunityFactory,
    ProductFactory,
    StageChangeFactory,
)

pytestmark = pytest.mark.django_db

COMPANIES_CSV = """name,domain,segment,size_band,region
Kestrel Systems Ltd,https://www.Kestrel.example,software,mid,uk
Harbour Health,harbour.example,Healthcare,large,Continental Europe
"""
CONTACTS_CSV = """company_domain,full_name,title,email,phone
kestrel.example,Ann Archer,CFO,Ann.Archer@Kestrel.example,020 7946 0123
www.kestrel.example,Bo Brown,,bo@kestrel.example,+44 7700 900123
"""


def upload(text: str, name: str = "import.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def preview(client, model: str, text: str):
    """The first admin step: upload the file and get the dry-run preview."""
    return client.post(
        reverse(f"admin:customers_{model}_import"),
        {"resource": "0", "format": "0", "import_file": upload(text)},
    )


def problems_shown(response) -> list[str]:
    """The problems the import page writes out, one per line, as the admin reads them."""
    html = response.content.decode()
    found = re.search(r'<ul class="errorlist import-problems">(.*?)</ul>', html, re.S)
    assert found, "no list of problems on the page"
    return [unescape(item.strip()) for item in re.findall(r"<li>(.*?)</li>", found[1], re.S)]


def confirm(client, model: str, preview_response):
    """The second admin step: confirm the previewed file."""
    form = preview_response.context["confirm_form"]
    return client.post(reverse(f"admin:customers_{model}_process_import"), form.initial)


def test_admin_pages_render_for_every_customer_and_pipeline_model(admin_client_):
    company = CompanyFactory()
    ContactFactory(company=company)
    deal = OpportunityFactory(company=company)
    StageChangeFactory(opportunity=deal)
    CompetitorFactory()
    for name in ("company", "contact"):
        for view in ("changelist", "add", "import", "export"):
            url = reverse(f"admin:customers_{name}_{view}")
            assert admin_client_.get(url).status_code == 200, url
    objects = {
        "customers_company": company,
        "customers_contact": company.contacts.first(),
        "opportunities_opportunity": deal,
        "opportunities_product": deal.product,
        "opportunities_productline": deal.product.line,
        "opportunities_competitor": CompetitorFactory(),
        "opportunities_stagechange": deal.stage_changes.get(),
    }
    for name, obj in objects.items():
        url = reverse(f"admin:{name}_changelist")
        assert admin_client_.get(url).status_code == 200, url
        assert admin_client_.get(url, {"q": "x"}).status_code == 200, url
        url = reverse(f"admin:{name}_change", args=[obj.pk])
        assert admin_client_.get(url).status_code == 200, url


def test_admin_is_for_administrators_only(rep_client):
    response = rep_client.get(reverse("admin:customers_company_import"))
    assert response.status_code == 302


def test_opportunity_admin_shows_stage_history_read_only(admin_client_):
    deal = OpportunityFactory()
    StageChangeFactory(opportunity=deal)
    html = admin_client_.get(reverse("admin:opportunities_opportunity_change", args=[deal.pk]))
    content = html.content.decode()
    assert "Stage changes" in content or "stage change" in content.lower()
    assert 'name="stage"' not in content  # moves go through the pipeline, not the admin


def test_opportunity_added_in_admin_starts_its_stage_history(admin_client_, admin_user, rep):
    contact = ContactFactory()
    product = ProductFactory()
    response = admin_client_.post(
        reverse("admin:opportunities_opportunity_add"),
        {
            "title": "Admin deal",
            "company": contact.company.pk,
            "contact": contact.pk,
            "product": product.pk,
            "owner": rep.pk,
            "amount": "5000",
            "currency": "GBP",
            "expected_close_date": "2030-01-31",
            "next_step": "",
            "next_step_due": "",
            "stage_changes-TOTAL_FORMS": "0",
            "stage_changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    change = StageChange.objects.get(opportunity__title="Admin deal")
    assert (change.from_stage, change.to_stage, change.changed_by) == (
        "",
        "prospecting",
        admin_user,
    )


def test_opportunity_admin_refuses_a_contact_from_another_company(admin_client_, rep):
    contact = ContactFactory()
    response = admin_client_.post(
        reverse("admin:opportunities_opportunity_add"),
        {
            "title": "Mismatch",
            "company": CompanyFactory().pk,
            "contact": contact.pk,
            "product": ProductFactory().pk,
            "owner": rep.pk,
            "amount": "5000",
            "currency": "GBP",
            "expected_close_date": "2030-01-31",
            "stage_changes-TOTAL_FORMS": "0",
            "stage_changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "works at" in str(response.context["adminform"].form.errors["contact"])


@pytest.mark.smoke
def test_company_import_previews_without_saving_then_imports_on_confirm(admin_client_):
    response = preview(admin_client_, "company", COMPANIES_CSV)
    assert response.status_code == 200
    assert response.context["result"].totals["new"] == 2
    assert "confirm_form" in response.context
    assert not Company.objects.exists()  # the preview is a dry run

    response = confirm(admin_client_, "company", response)
    assert response.status_code == 302
    assert sorted(Company.objects.values_list("domain", "segment", "region")) == [
        ("harbour.example", "healthcare", "europe"),
        ("kestrel.example", "software", "uk"),
    ]


def test_reimporting_companies_updates_by_domain_instead_of_duplicating(admin_client_):
    CompanyFactory(name="Old name", domain="kestrel.example", segment="retail")
    response = preview(admin_client_, "company", COMPANIES_CSV)
    assert response.context["result"].totals["update"] == 1
    confirm(admin_client_, "company", response)
    assert Company.objects.count() == 2
    kestrel = Company.objects.get(domain="kestrel.example")
    assert (kestrel.name, kestrel.segment) == ("Kestrel Systems Ltd", "software")


def test_bad_company_rows_are_named_by_row_and_column_and_nothing_is_imported(admin_client_):
    text = COMPANIES_CSV + (
        "Rocket Co,rocket.example,spaceflight,mid,uk\n"  # file row 4: unknown segment
        ",nameless.example,retail,small,uk\n"  # file row 5: missing name
    )
    response = preview(admin_client_, "company", text)
    result = response.context["result"]
    assert "confirm_form" not in response.context
    invalid = {row.number: row.error_dict for row in result.invalid_rows}
    assert set(invalid) == {3, 4}
    assert '"spaceflight" is not a known segment' in invalid[3]["segment"][0]
    assert "name is missing" in invalid[4]["name"][0]
    # Written out in the page, not only in the table's hover box.
    assert problems_shown(response) == [
        'Row 4, segment: "spaceflight" is not a known segment. Use one of: software, '
        "manufacturing, healthcare, finance, retail, public, education, logistics, media, energy.",
        "Row 5, name: The company name is missing; this column cannot be empty.",
    ]
    assert not Company.objects.exists()


def test_contact_import_matches_companies_by_domain_and_normalises(admin_client_):
    kestrel = CompanyFactory(name="Kestrel", domain="kestrel.example")
    ContactFactory(company=kestrel, full_name="Old Ann", email="ann.archer@kestrel.example")
    response = preview(admin_client_, "contact", CONTACTS_CSV)
    assert response.context["result"].totals == {
        "new": 1, "update": 1, "delete": 0, "skip": 0, "error": 0, "invalid": 0,
    }  # fmt: skip
    confirm(admin_client_, "contact", response)
    contacts = Contact.objects.filter(company=kestrel).order_by("email")
    assert [(c.full_name, c.email, c.phone_normalized) for c in contacts] == [
        ("Ann Archer", "ann.archer@kestrel.example", "+442079460123"),
        ("Bo Brown", "bo@kestrel.example", "+447700900123"),
    ]


def test_bad_contact_rows_are_named_by_row_and_column_and_nothing_is_imported(admin_client_):
    CompanyFactory(domain="kestrel.example")
    text = CONTACTS_CSV + (
        "nowhere.example,Cy Cole,,cy@nowhere.example,\n"  # data row 3: unknown company
        "kestrel.example,Di Dee,,not-an-email,\n"  # data row 4: bad e-mail
    )
    response = preview(admin_client_, "contact", text)
    invalid = {row.number: row.error_dict for row in response.context["result"].invalid_rows}
    assert 'No company has the domain "nowhere.example"' in invalid[3]["company_domain"][0]
    assert '"not-an-email" is not a valid e-mail address' in invalid[4]["email"][0]
    assert "confirm_form" not in response.context
    assert not Contact.objects.exists()


def test_confirm_imports_nothing_when_a_row_fails_after_the_preview(admin_client_):
    # The file was fine when previewed, but a company went away before the confirm.
    CompanyFactory(domain="kestrel.example")
    gone = CompanyFactory(domain="gone.example")
    text = CONTACTS_CSV + "gone.example,Cy Cole,,cy@gone.example,\n"
    response = preview(admin_client_, "contact", text)
    assert "confirm_form" in response.context
    gone.delete()
    response = confirm(admin_client_, "contact", response)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:customers_contact_import")
    assert not Contact.objects.exists()
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("Nothing was imported" in m and "Row 4, company_domain" in m for m in messages), (
        messages
    )


def test_resource_import_is_all_or_nothing_outside_the_admin_too():
    CompanyFactory(domain="kestrel.example")
    dataset = tablib.Dataset().load(CONTACTS_CSV + "kestrel.example,,,x@kestrel.example,\n")
    result = ContactResource().import_data(dataset, dry_run=False)
    assert result.has_validation_errors()
    assert import_problems(result) == [
        "Row 4, full_name: The name is missing; this column cannot be empty."
    ]
    assert not Contact.objects.exists()


def test_company_rows_need_a_domain_to_be_matched():
    dataset = tablib.Dataset().load(
        "name,domain,segment,size_band,region\nNo Domain,,retail,mid,uk\n"
    )
    result = CompanyResource().import_data(dataset, dry_run=False)
    assert import_problems(result) == [
        "Row 2, domain: The domain is missing. Companies are matched by their domain, so every "
        "row needs one, e.g. example.com."
    ]
    assert not Company.objects.exists()


@pytest.mark.parametrize(
    "header, shown",
    [
        (
            "name,domain,segment,size_band",
            "The file has no “region” column. The first line of the file must name the columns "
            "name, domain, segment, size_band, region: correct it and import the file again.",
        ),
        (
            "name,domian,segment,size_band,region",
            "The file has no “domain” column. “domian” is not a column this import knows. Did you "
            "mean “domain”? The first line of the file must name the columns name, domain, "
            "segment, size_band, region: correct it and import the file again.",
        ),
        (
            "name,domain,segment,size_band,region,notes",
            "“notes” is not a column this import knows. The first line of the file must name "
            "the columns name, domain, segment, size_band, region: correct it and import the file "
            "again.",
        ),
    ],
    ids=["missing", "misspelt", "unknown"],
)
def test_a_wrong_company_header_is_named_in_the_page_before_any_row(admin_client_, header, shown):
    values = ["Kestrel", "kestrel.example", "software", "mid", "uk", "A note"]
    row = ",".join(values[: header.count(",") + 1])
    response = preview(admin_client_, "company", f"{header}\n{row}\n")
    assert response.status_code == 200
    assert problems_shown(response) == [shown]
    assert "Traceback" not in response.content.decode()
    assert "cannot be blank" not in response.content.decode()  # no row was read
    assert "confirm_form" not in response.context
    assert not Company.objects.exists()


def test_column_names_are_read_without_case_or_spaces(admin_client_):
    text = "\ufeffName, Domain ,SEGMENT,Size band,Region\nKestrel,kestrel.example,software,mid,uk\n"
    response = preview(admin_client_, "company", text)
    assert "confirm_form" in response.context, problems_shown(response)
    confirm(admin_client_, "company", response)
    assert Company.objects.get().domain == "kestrel.example"


def test_contacts_may_leave_out_title_and_phone_but_not_misspell_them(admin_client_):
    CompanyFactory(domain="kestrel.example")
    response = preview(
        admin_client_,
        "contact",
        "company_domain,full_name,email\nkestrel.example,Ann,a@kestrel.example\n",
    )
    assert "confirm_form" in response.context
    response = preview(
        admin_client_,
        "contact",
        "company_domain,full_name,titel,email\nkestrel.example,Ann,CFO,a@kestrel.example\n",
    )
    assert problems_shown(response) == [
        "“titel” is not a column this import knows. Did you mean “title”? The first line of the "
        "file must name the columns company_domain, full_name, email, and if you have them "
        "title, phone: correct it and import the file again."
    ]
    assert not Contact.objects.exists()
