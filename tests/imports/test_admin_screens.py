"""
The admin's screens of a history import: upload, columns, values (the mapping screen), check,
start, progress, cancel and the reports switch. Only admins reach them; an id out of reach is
a 404; every form keeps the admin's CSRF check.
"""

import datetime
import re
from html import unescape

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from imports import views
from imports.forms import value_field_name
from imports.models import (
    HistoryImport,
    ImportedDeal,
    ImportStatus,
    MappingAction,
    MappingKind,
    ValueMapping,
)
from reflections.models import Reason
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = (
    "Opportunity ID,Opportunity Name,Account Name,Website,Product Name,Owner Email,Amount,"
    "Opportunity Currency,Stage,Created Date,Close Date,Main Competitor(s),Win/Loss Reason"
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def slashed(day: datetime.date) -> str:
    return day.strftime("%d/%m/%Y")


def salesforce_csv(rows: list[dict], header: str = HEADER) -> bytes:
    """A Salesforce opportunity report with the given rows (dates from today, dd/mm/yyyy)."""
    today = timezone.localdate()
    lines = [header]
    for n, row in enumerate(rows, start=1):
        closed = today - datetime.timedelta(days=row.get("days_ago", 400))
        created = closed - datetime.timedelta(days=60)
        lines.append(
            ",".join(
                [
                    row.get("id", f"006A{n:05d}"),
                    f"Deal {n}",
                    row.get("company", f"Company {n}"),
                    "",
                    row.get("product", "Analytics Suite"),
                    row.get("owner", "riley@example.com"),
                    row.get("amount", "12000"),
                    "GBP",
                    row.get("stage", "Closed Lost"),
                    slashed(created),
                    slashed(closed),
                    "",
                    row.get("reason", "Too expensive"),
                ]
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def the_file(content: bytes, name: str = "opportunities.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def url(name: str, history_import: HistoryImport | int | None = None) -> str:
    args = []
    if history_import is not None:
        args = [getattr(history_import, "pk", history_import)]
    return reverse(f"admin:imports_historyimport_{name}", args=args)


def upload_data(content: bytes, **overrides) -> dict:
    data = {
        "file": the_file(content),
        "preset": "salesforce",
        "system": "",
        "date_format": "dmy",
        "default_currency": "GBP",
        "default_owner": "",
        "segment": "software",
        "size_band": "mid",
        "region": "uk",
    }
    data.update(overrides)
    return data


def texts_of(response) -> str:
    """The page's text, tags dropped and entities resolved, spaces collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def stored_import(admin_user, *, status=ImportStatus.RUNNING, **fields) -> HistoryImport:
    """An import row in a given state, for the pages that only show one."""
    if status == ImportStatus.RUNNING:
        fields.setdefault("heartbeat_at", timezone.now())  # a running import's worker beats
    history_import = HistoryImport(
        system="Salesforce",
        preset="salesforce",
        file_name="old.csv",
        created_by=admin_user,
        status=status,
        rows_total=fields.pop("rows_total", 10),
        **fields,
    )
    history_import.file.save("old.csv", ContentFile(salesforce_csv([{}])), save=False)
    history_import.save()
    return history_import


@pytest.fixture
def catalogue(defaults):
    """The products the file names, and the default reasons (from the data migration)."""
    return {"analytics": ProductFactory(name="Analytics Suite")}


@pytest.fixture
def uploaded(admin_client_, admin_user, rep, catalogue):
    """A Salesforce file uploaded through the page: 3× “Too expensive”, 1× “Price”, 1× won."""
    content = salesforce_csv(
        [
            {"reason": "Too expensive"},
            {"reason": "Too expensive"},
            {"reason": "too  EXPENSIVE"},
            {"reason": "Price"},
            {"reason": "Great fit", "stage": "Closed Won"},
        ]
    )
    response = admin_client_.post(url("upload"), upload_data(content))
    assert response.status_code == 302, texts_of(response)
    return HistoryImport.objects.get()


def select_of(response, text: str) -> str:
    """The <select> labelled by `text` on the mapping screen, as HTML."""
    html = response.content.decode()
    label = re.search(rf'<label for="(id_v_[0-9a-f]+)">{re.escape(text)}</label>', html)
    assert label, f"no select labelled {text!r}"
    found = re.search(rf'<select name="[^"]+"[^>]*id="{label[1]}"[^>]*>(.*?)</select>', html, re.S)
    assert found, f"no select with id {label[1]}"
    return found[0]


def chosen(select_html: str) -> str:
    found = re.search(r'<option value="([^"]*)"[^>]* selected>', select_html)
    return found[1] if found else ""


def decisions_posted(response) -> dict[str, str]:
    """The mapping form as the page would post it (every select at its preselected choice)."""
    form = response.context["form"]
    return {name: form[name].value() or "" for name in form.fields}


# --- Upload ------------------------------------------------------------------------------------
def test_add_in_the_admin_opens_the_upload_page(admin_client_):
    response = admin_client_.get(reverse("admin:imports_historyimport_add"))
    assert response.status_code == 302
    assert response["Location"] == url("upload")


def test_upload_page_shows_the_form_and_what_each_preset_expects(admin_client_, rep):
    response = admin_client_.get(url("upload"))
    assert response.status_code == 200
    text = texts_of(response)
    for label in ("CSV file", "Kind of export", "Imported from", "Default owner", "Date format"):
        assert label in text
    # The presets' documented headers, taken from imports.presets.
    assert "Salesforce opportunity report" in text and "“Close Date” (Closed date)" in text
    assert "“Deal - Status”" in text  # Pipedrive
    assert "“Closed Lost Reason”" in text  # HubSpot
    html = response.content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert "csrfmiddlewaretoken" in html
    assert rep.email in html  # a choice of default owner


def test_uploading_a_salesforce_report_stores_it_and_opens_the_values(
    admin_client_, admin_user, rep, catalogue
):
    response = admin_client_.post(
        url("upload"),
        upload_data(salesforce_csv([{}, {}]), default_owner=str(rep.pk), default_currency="EUR"),
    )
    history_import = HistoryImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("values", history_import)
    assert history_import.system == "Salesforce"  # prefilled from the preset
    assert history_import.preset == "salesforce"
    assert history_import.default_owner == rep
    assert history_import.default_currency == "EUR"
    assert history_import.created_by == admin_user
    assert history_import.rows_total == 2
    assert history_import.options["date_format"] == "dmy"
    assert history_import.options["segment"] == "software"
    assert history_import.options["region"] == "uk"


def test_a_file_missing_a_presets_column_is_refused_in_the_form(admin_client_, catalogue):
    header = HEADER.replace("Close Date", "Closed Date")
    response = admin_client_.post(url("upload"), upload_data(salesforce_csv([{}], header=header)))
    assert response.status_code == 200
    text = texts_of(response)
    assert "Close Date" in text and "Closed Date" in text  # names the column and its look-alike
    assert response.context["form"].errors["file"]
    assert not HistoryImport.objects.exists()


def test_upload_form_says_what_is_missing_and_saves_nothing(admin_client_):
    response = admin_client_.post(
        url("upload"), {"preset": "generic", "system": "", "date_format": "dmy"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) >= {"file", "system", "segment", "size_band", "region"}
    assert "Name the CRM this file comes from" in texts_of(response)
    assert not HistoryImport.objects.exists()


def test_a_generic_file_goes_to_the_columns_first(admin_client_, catalogue):
    content = (
        b"Deal Ref,Customer,Item,Value,Result,Closed On,Why\r\n"
        b"D-1,Kestrel Ltd,Analytics Suite,1000,Lost,2020-01-31,Price\r\n"
    )
    response = admin_client_.post(
        url("upload"), upload_data(content, preset="generic", system="Zoho")
    )
    history_import = HistoryImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("columns", history_import)
    assert history_import.system == "Zoho"


# --- Columns -----------------------------------------------------------------------------------
@pytest.fixture
def generic(admin_client_, catalogue):
    content = (
        b"Opportunity ID,Customer,Product,Value,Stage,Close Date,Why\r\n"
        b"D-1,Kestrel Ltd,Analytics Suite,1000,Closed Lost,2020-01-31,Price\r\n"
    )
    admin_client_.post(url("upload"), upload_data(content, preset="generic", system="Zoho"))
    return HistoryImport.objects.get()


def test_columns_page_lists_the_headers_prefilled_and_marks_required_fields(admin_client_, generic):
    response = admin_client_.get(url("columns", generic))
    assert response.status_code == 200
    form = response.context["form"]
    assert form["external_id"].value() == "Opportunity ID"  # a name a preset knows
    assert form["closed_date"].value() == "Close Date"
    html = response.content.decode()
    assert '<label for="id_company_name" class="required">' in html
    assert '<option value="Customer">Customer</option>' in html


def test_saving_columns_sets_them_and_opens_the_values(admin_client_, generic):
    data = {
        "external_id": "Opportunity ID",
        "company_name": "Customer",
        "product": "Product",
        "amount": "Value",
        "stage": "Stage",
        "closed_date": "Close Date",
        "reason": "Why",
    }
    response = admin_client_.post(url("columns", generic), data)
    assert response.status_code == 302
    assert response["Location"] == url("values", generic)
    generic.refresh_from_db()
    assert generic.columns == data


def test_a_required_field_without_a_column_is_an_error(admin_client_, generic):
    before = dict(generic.columns)
    response = admin_client_.post(
        url("columns", generic),
        {"external_id": "Opportunity ID", "product": "Product", "amount": "Value"},
    )
    assert response.status_code == 200
    assert "Choose the column that holds the company name" in texts_of(response)
    generic.refresh_from_db()
    assert generic.columns == before


def test_a_header_the_file_lacks_is_not_a_choice(admin_client_, generic):
    response = admin_client_.post(
        url("columns", generic), {"external_id": "Opportunity ID", "company_name": "Nope"}
    )
    assert response.status_code == 200
    assert "Nope" in str(response.context["form"].errors["company_name"])


# --- Values (the mapping screen) ---------------------------------------------------------------
def test_mapping_screen_lists_texts_by_outcome_with_counts_and_suggestions(admin_client_, uploaded):
    response = admin_client_.get(url("values", uploaded))
    assert response.status_code == 200
    text = texts_of(response)
    assert "Reasons given for lost deals" in text and "Reasons given for won deals" in text
    assert "Products" in text
    lost = response.context["sections"][0]
    assert [(i["row"].text, i["row"].count) for i in lost["rows"]] == [
        ("Too expensive", 3),  # the spelling that occurs most; most frequent first
        ("Price", 1),
    ]
    price = Reason.objects.get(outcome="lost", label="Price")
    select = select_of(response, "Price")
    assert chosen(select) == str(price.pk)
    assert "suggested: exact match" in text
    # The outcome's reasons, then "Unknown" and "Skip".
    assert "Unknown / not sure" in select and "Skip these deals" in select
    assert "Speed of delivery" not in select  # a won reason
    product_select = select_of(response, "Analytics Suite")
    assert "Unknown / not sure" not in product_select


def test_saving_the_mapping_keeps_each_decision_for_the_next_file(admin_client_, uploaded):
    page = admin_client_.get(url("values", uploaded))
    data = decisions_posted(page)
    timing = Reason.objects.get(outcome="lost", label="Timing")
    data[value_field_name(MappingKind.REASON, "lost", "too expensive")] = str(timing.pk)
    data[value_field_name(MappingKind.REASON, "lost", "price")] = "skip"
    data[value_field_name(MappingKind.REASON, "won", "great fit")] = "unknown"
    response = admin_client_.post(url("values", uploaded), {**data, "_save": "Save"})
    assert response.status_code == 302
    saved = {(m.kind, m.outcome, m.text): m for m in ValueMapping.objects.all()}
    assert saved[("reason", "lost", "too expensive")].reason == timing
    assert saved[("reason", "lost", "price")].action == MappingAction.SKIP
    assert saved[("reason", "won", "great fit")].action == MappingAction.UNKNOWN
    assert saved[("product", "", "analytics suite")].action == MappingAction.MAP
    # Shown again as saved.
    again = admin_client_.get(url("values", uploaded))
    assert chosen(select_of(again, "Too expensive")) == str(timing.pk)
    assert "saved" in texts_of(again)


def test_a_meaning_saved_for_an_earlier_file_is_offered_again(
    admin_client_, admin_user, rep, catalogue
):
    budget = Reason.objects.get(outcome="lost", label="Budget")
    ValueMapping.objects.create(
        kind="reason",
        outcome="lost",
        text="no money left",
        action="map",
        reason=budget,
        updated_by=admin_user,
        updated_at=timezone.now() - datetime.timedelta(days=30),
    )
    admin_client_.post(url("upload"), upload_data(salesforce_csv([{"reason": "No money LEFT"}])))
    response = admin_client_.get(url("values", HistoryImport.objects.get()))
    assert chosen(select_of(response, "No money LEFT")) == str(budget.pk)
    assert "saved from an earlier import" in texts_of(response)


def test_save_and_check_runs_the_dry_run(admin_client_, uploaded):
    page = admin_client_.get(url("values", uploaded))
    response = admin_client_.post(
        url("values", uploaded), {**decisions_posted(page), "_check": "Save and check"}
    )
    assert response.status_code == 302
    assert response["Location"] == url("check", uploaded)
    uploaded.refresh_from_db()
    assert uploaded.status == ImportStatus.CHECKED
    assert uploaded.deals_created == 5


def test_a_text_left_without_a_choice_saves_nothing(admin_client_, uploaded):
    page = admin_client_.get(url("values", uploaded))
    data = decisions_posted(page)
    data[value_field_name(MappingKind.REASON, "lost", "price")] = ""
    response = admin_client_.post(url("values", uploaded), {**data, "_save": "Save"})
    assert response.status_code == 422
    assert "Choose what this means here, or skip these deals." in texts_of(response)
    assert "Nothing was saved" in texts_of(response)
    assert not ValueMapping.objects.exists()


def test_a_reason_of_another_outcome_is_not_a_choice(admin_client_, uploaded):
    page = admin_client_.get(url("values", uploaded))
    data = decisions_posted(page)
    won_reason = Reason.objects.get(outcome="won", label="Speed of delivery")
    data[value_field_name(MappingKind.REASON, "lost", "price")] = str(won_reason.pk)
    response = admin_client_.post(url("values", uploaded), {**data, "_save": "Save"})
    assert response.status_code == 422
    assert not ValueMapping.objects.exists()


def test_unknown_is_not_a_choice_for_a_product(admin_client_, uploaded):
    page = admin_client_.get(url("values", uploaded))
    data = decisions_posted(page)
    data[value_field_name(MappingKind.PRODUCT, "", "analytics suite")] = "unknown"
    response = admin_client_.post(url("values", uploaded), {**data, "_save": "Save"})
    assert response.status_code == 422
    assert not ValueMapping.objects.exists()


def test_many_texts_are_shown_a_page_at_a_time(admin_client_, uploaded, monkeypatch):
    monkeypatch.setattr(views, "VALUES_PER_PAGE", 2)
    first = admin_client_.get(url("values", uploaded))
    assert [i["row"].text for s in first.context["sections"] for i in s["rows"]] == [
        "Too expensive",
        "Price",
    ]
    assert "Texts 1–2 of 4" in texts_of(first)
    second = admin_client_.get(url("values", uploaded) + "?page=2")
    assert [i["row"].text for s in second.context["sections"] for i in s["rows"]] == [
        "Great fit",
        "Analytics Suite",
    ]
    # Saving a page saves its texts only, then opens the next page.
    response = admin_client_.post(
        url("values", uploaded), {**decisions_posted(first), "_save": "Save"}
    )
    assert response["Location"] == url("values", uploaded) + "?page=2"
    assert ValueMapping.objects.count() == 2


def test_mapping_screen_query_count_does_not_grow_with_the_texts(
    admin_client_, uploaded, django_assert_num_queries
):
    with django_assert_num_queries(8):
        response = admin_client_.get(url("values", uploaded))
    assert len(response.context["form"].fields) == 4
    many = salesforce_csv([{"reason": f"Reason number {n}"} for n in range(60)])
    admin_client_.post(url("upload"), upload_data(many))
    bigger = HistoryImport.objects.latest("pk")
    with django_assert_num_queries(8):
        response = admin_client_.get(url("values", bigger))
    assert len(response.context["form"].fields) == 61


# --- Check -------------------------------------------------------------------------------------
def _save_and_check(client, history_import, **choices):
    page = client.get(url("values", history_import))
    data = {**decisions_posted(page), **choices, "_check": "Save and check"}
    return client.post(url("values", history_import), data)


def test_a_passing_check_shows_the_counts_and_the_import_button(admin_client_, uploaded):
    _save_and_check(admin_client_, uploaded)
    response = admin_client_.get(url("check", uploaded))
    assert response.status_code == 200
    text = texts_of(response)
    assert "Deals to create 5" in text
    assert "Companies to add 5" in text
    html = response.content.decode()
    assert 'value="Import 5 deals"' in html
    assert url("start", uploaded) in html


def test_a_check_with_bad_rows_names_row_and_column_and_offers_no_import(
    admin_client_, admin_user, rep, catalogue
):
    content = salesforce_csv([{}, {"amount": "12.5x"}])
    admin_client_.post(url("upload"), upload_data(content))
    history_import = HistoryImport.objects.get()
    _save_and_check(admin_client_, history_import)
    response = admin_client_.get(url("check", history_import))
    text = texts_of(response)
    assert "1 row problem" in text
    assert "Row 3, column “Amount”: “12.5x” is not an amount" in text
    assert "changed since this check" not in text  # the problems are the reason, not a change
    assert url("start", history_import) not in response.content.decode()


def test_a_check_made_stale_by_a_new_mapping_asks_for_another(admin_client_, uploaded):
    _save_and_check(admin_client_, uploaded)
    timing = Reason.objects.get(outcome="lost", label="Timing")
    page = admin_client_.get(url("values", uploaded))
    data = decisions_posted(page)
    data[value_field_name(MappingKind.REASON, "lost", "price")] = str(timing.pk)
    admin_client_.post(url("values", uploaded), {**data, "_save": "Save"})
    response = admin_client_.get(url("check", uploaded))
    text = texts_of(response)
    assert "have changed since this check" in text
    assert url("start", uploaded) not in response.content.decode()
    # Checking again brings the button back.
    admin_client_.post(url("check", uploaded))
    assert url("start", uploaded) in admin_client_.get(url("check", uploaded)).content.decode()


# --- Start, progress, cancel, reports ----------------------------------------------------------
def test_starting_a_checked_import_runs_it_and_shows_the_summary(
    admin_client_, uploaded, django_capture_on_commit_callbacks, embedded_default
):
    _save_and_check(admin_client_, uploaded)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(url("start", uploaded))
    assert response.status_code == 302
    assert response["Location"] == url("change", uploaded)
    uploaded.refresh_from_db()
    assert uploaded.status == ImportStatus.DONE
    assert ImportedDeal.objects.filter(history_import=uploaded).count() == 5
    page = admin_client_.get(url("change", uploaded))
    text = texts_of(page)
    assert "5 deals imported from Salesforce" in text
    assert "See the imported deals" in text and "Open the insights" in text
    assert 'value="Leave this import out of reports"' in page.content.decode()
    # The deals link lists this import's deals.
    deals = admin_client_.get(page.context["deals_url"])
    assert deals.status_code == 200
    assert "006A00001" in deals.content.decode()
    # Imported deals: searched by their id in the other CRM, each linked to its deal.
    found = admin_client_.get(reverse("admin:imports_importeddeal_changelist"), {"q": "006A00002"})
    assert found.context["cl"].result_count == 1
    deal = ImportedDeal.objects.get(external_id="006A00002").opportunity
    change = reverse("admin:opportunities_opportunity_change", args=[deal.pk])
    assert f'href="{change}"' in found.content.decode()
    imported = ImportedDeal.objects.get(external_id="006A00002")
    one = admin_client_.get(reverse("admin:imports_importeddeal_change", args=[imported.pk]))
    assert one.status_code == 200
    assert 'name="_save"' not in one.content.decode()  # read-only


def test_start_refuses_an_unchecked_import(admin_client_, uploaded):
    response = admin_client_.post(url("start", uploaded), follow=True)
    uploaded.refresh_from_db()
    assert uploaded.status == ImportStatus.UPLOADED
    assert response.redirect_chain[0][0] == url("check", uploaded)
    assert not ImportedDeal.objects.exists()


def test_start_is_a_post(admin_client_, uploaded):
    assert admin_client_.get(url("start", uploaded)).status_code == 405


def test_progress_page_polls_while_running(admin_client_, admin_user):
    running = stored_import(admin_user, status=ImportStatus.RUNNING, rows_done=4, rows_total=10)
    response = admin_client_.get(url("change", running))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' in html
    assert '<progress id="import-bar" max="10" value="4">' in html
    assert "vendor/htmx-2.0.11.min.js" in html
    assert url("cancel", running) in html
    assert "<script>" not in html  # CSP: scripts are files only


def test_progress_fragment_for_htmx(admin_client_, admin_user, django_assert_num_queries):
    running = stored_import(admin_user, status=ImportStatus.RUNNING, rows_done=4, rows_total=10)
    with django_assert_num_queries(3):
        response = admin_client_.get(url("change", running), headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="import-progress"')
    assert "Importing: 4 of 10 rows" in html
    assert "<html" not in html


def test_progress_fragment_stops_polling_when_finished(admin_client_, admin_user):
    done = stored_import(admin_user, status=ImportStatus.DONE, rows_done=10, deals_created=9)
    response = admin_client_.get(url("change", done), headers={"HX-Request": "true"})
    assert response.status_code == 286
    html = response.content.decode()
    assert "hx-trigger" not in html
    assert "9 deals imported from Salesforce" in texts_of(response)


def test_cancel_stops_a_running_import(admin_client_, admin_user):
    running = stored_import(admin_user, status=ImportStatus.RUNNING, rows_done=2)
    response = admin_client_.post(url("cancel", running))
    assert response.status_code == 302
    running.refresh_from_db()
    assert running.status == ImportStatus.CANCELLED


def test_reports_switch_leaves_an_import_out_and_back_in(
    admin_client_, uploaded, django_capture_on_commit_callbacks, embedded_default
):
    _save_and_check(admin_client_, uploaded)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(url("start", uploaded))
    response = admin_client_.post(url("reports", uploaded), {"in_reports": "false"})
    assert response.status_code == 302
    uploaded.refresh_from_db()
    assert uploaded.in_reports is False
    page = texts_of(admin_client_.get(url("change", uploaded)))
    assert "The insights leave these 5 deals out" in page
    admin_client_.post(url("reports", uploaded), {"in_reports": "true"})
    uploaded.refresh_from_db()
    assert uploaded.in_reports is True


def test_reports_switch_refuses_a_value_it_does_not_know(admin_client_, admin_user):
    done = stored_import(admin_user, status=ImportStatus.DONE)
    admin_client_.post(url("reports", done), {"in_reports": "maybe"})
    done.refresh_from_db()
    assert done.in_reports is True


def test_steps_before_the_start_are_closed_once_it_started(admin_client_, admin_user):
    running = stored_import(admin_user, status=ImportStatus.RUNNING)
    for step in ("columns", "values", "check"):
        response = admin_client_.get(url(step, running))
        assert response.status_code == 302
        assert response["Location"] == url("change", running)


# --- Lists -------------------------------------------------------------------------------------
def test_imports_list_shows_file_system_status_and_counts(admin_client_, admin_user):
    stored_import(admin_user, status=ImportStatus.DONE, deals_created=7)
    response = admin_client_.get(reverse("admin:imports_historyimport_changelist"))
    text = texts_of(response)
    assert "old.csv" in text and "Salesforce" in text and "Imported" in text
    assert "Ada Admin" in text


def test_value_mappings_can_be_corrected_in_the_admin(admin_client_, admin_user, defaults):
    timing = Reason.objects.get(outcome="lost", label="Timing")
    price = Reason.objects.get(outcome="lost", label="Price")
    won_price = Reason.objects.get(outcome="won", label="Price")
    mapping = ValueMapping.objects.create(
        kind="reason",
        outcome="lost",
        text="too dear",
        action="map",
        reason=price,
        updated_by=UserFactory(),
    )
    listing = admin_client_.get(
        reverse("admin:imports_valuemapping_changelist"), {"q": "dear", "kind": "reason"}
    )
    assert "too dear" in texts_of(listing)
    change = reverse("admin:imports_valuemapping_change", args=[mapping.pk])
    refused = admin_client_.post(change, {"action": "map", "reason": won_price.pk})
    assert refused.status_code == 200
    assert "Choose a reason for lost deals" in texts_of(refused)
    admin_client_.post(change, {"action": "map", "reason": timing.pk})
    mapping.refresh_from_db()
    assert mapping.reason == timing
    assert mapping.updated_by == admin_user
    admin_client_.post(change, {"action": "unknown", "reason": timing.pk})
    mapping.refresh_from_db()
    assert (mapping.action, mapping.reason) == ("unknown", None)


# --- Who may open them -------------------------------------------------------------------------
PAGES = [
    ("upload", "get", False),
    ("columns", "get", True),
    ("values", "get", True),
    ("check", "get", True),
    ("check", "post", True),
    ("start", "post", True),
    ("cancel", "post", True),
    ("reports", "post", True),
    ("change", "get", True),
]


@pytest.mark.parametrize("persona", ["rep", "manager"])
@pytest.mark.parametrize(("name", "method", "with_id"), PAGES)
def test_only_admins_reach_the_import_pages(
    client, request, admin_user, persona, name, method, with_id
):
    history_import = stored_import(admin_user, status=ImportStatus.UPLOADED)
    client.force_login(request.getfixturevalue(persona))
    target = url(name, history_import if with_id else None)
    response = getattr(client, method)(target)
    # The admin's own answer to a non-staff user: its login page.
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    history_import.refresh_from_db()
    assert history_import.status == ImportStatus.UPLOADED


def test_anonymous_visitors_get_the_admin_login(client, admin_user):
    history_import = stored_import(admin_user)
    response = client.get(url("change", history_import))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize(("name", "method", "with_id"), [p for p in PAGES if p[2]])
def test_a_forged_import_id_is_not_found(admin_client_, admin_user, name, method, with_id):
    stored_import(admin_user)
    missing = HistoryImport.objects.order_by("-pk").first().pk + 1000
    response = getattr(admin_client_, method)(url(name, missing))
    assert response.status_code == 404


def test_the_forms_keep_the_admins_csrf_check(admin_user, uploaded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    for target in (url("upload"), url("values", uploaded), url("check", uploaded)):
        assert client.post(target, {}).status_code == 403
    for name in ("start", "cancel", "reports"):
        assert client.post(url(name, uploaded), {}).status_code == 403
    uploaded.refresh_from_db()
    assert uploaded.status == ImportStatus.UPLOADED


def test_admin_index_lists_history_imports(admin_client_):
    response = admin_client_.get(reverse("admin:index"))
    text = texts_of(response)
    assert "History imports" in text
    assert "Value mappings" in text and "Imported deals" in text
