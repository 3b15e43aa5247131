"""axe-core on the main pages: no serious or critical accessibility violations."""

import pytest
from django.conf import settings

from tests.e2e.conftest import axe_violations, login, shot
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_main_pages_have_no_serious_accessibility_violations(axe_page, rep, defaults):
    company = CompanyFactory(name="Brightwater Foods")
    contact = ContactFactory(company=company)
    deal = OpportunityFactory(owner=rep, company=company, contact=contact, next_step="Call back")
    page = axe_page
    page.goto("/accounts/login/")
    found = {"login": axe_violations(page)}
    page.goto("/accounts/password/reset/")
    found["password-reset"] = axe_violations(page)
    login(page, rep.email, settings.DEBRIEF_DEMO_PASSWORD)
    pages = {
        "plan": "/plan/",
        "pipeline": "/opportunities/",
        "board": "/opportunities/board/",
        "deal": f"/opportunities/{deal.pk}/",
        "deal-form": "/opportunities/new/",
        "close-form": f"/opportunities/{deal.pk}/close/lost/",
        "company": f"/companies/{company.pk}/",
        "insights": "/insights/",
        "call-list": "/suppressions/check/",
        "exceptions": "/suppressions/exceptions/",
        "companies": "/companies/",
        "new-company": "/companies/new/",
        "debriefs": f"/companies/{company.pk}/debriefs/",
        "my-reflections": "/me/reflections/",
        "my-team": f"/teams/{rep.team_id}/",
        "password-change": "/accounts/password/change/",
    }
    for name, path in pages.items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found[name] = axe_violations(page)
        if found[name]:
            shot(page, f"axe-{name}")
    # The close form also opens inline on the deal page.
    page.goto(f"/opportunities/{deal.pk}/")
    page.click("a:has-text('Lost')")
    page.wait_for_selector("#modal .modal")
    found["close-dialog"] = axe_violations(page)
    # And a page that carries a success message (the live region around the list).
    page.keyboard.press("Escape")
    page.goto(f"/opportunities/{deal.pk}/edit/")
    page.click("main form button[type=submit]")
    page.wait_for_selector(".messages .message")
    found["after-a-message"] = axe_violations(page)
    problems = {name: v for name, v in found.items() if v}
    assert not problems, problems


def test_history_import_screens_have_no_serious_accessibility_violations(
    axe_page, admin_user, rep, defaults, settings, tmp_path
):
    """The admin's import screens in the states the journey does not reach (columns of a
    generic file, a check that found bad rows, a running import); the journey itself checks
    the upload, the mapping, a passing check and the summary (test_history_import.py)."""
    from django.core.files.base import ContentFile
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imports import services
    from imports.models import HistoryImport, ImportStatus

    settings.MEDIA_ROOT = str(tmp_path / "media")

    def uploaded(content: str, preset: str):
        return services.history_import_create(
            actor=admin_user,
            uploaded_file=SimpleUploadedFile("deals.csv", content.encode()),
            system="Zoho",
            preset=preset,
        )

    generic = uploaded(
        "Ref,Customer,Item,Value,Result,Closed,Why\nD-1,Acme,X,1,Lost,,Price\n", "generic"
    )
    invalid = uploaded(
        "Opportunity ID,Account Name,Product Name,Amount,Stage,Close Date,Win/Loss Reason\n"
        "A-1,Acme,Nothing we sell,12.5x,Closed Lost,not a date,Price\n",
        "salesforce",
    )
    services.history_import_check(history_import=invalid)
    running = HistoryImport(
        system="Salesforce",
        preset="salesforce",
        file_name="big.csv",
        created_by=admin_user,
        status=ImportStatus.RUNNING,
        rows_total=10_000,
        rows_done=4_000,
    )
    running.file.save("big.csv", ContentFile(b"Opportunity ID\n1\n"), save=False)
    running.save()

    page = axe_page
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", admin_user.email)
    page.fill("#id_password", settings.DEBRIEF_DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    base = "/admin/imports/historyimport"
    pages = {
        "imports-index": "/admin/imports/",
        "imports-list": f"{base}/",
        "import-upload": f"{base}/upload/",
        "import-columns": f"{base}/{generic.pk}/columns/",
        "import-check-with-problems": f"{base}/{invalid.pk}/check/",
        "import-running": f"{base}/{running.pk}/change/",
        "value-mappings": "/admin/imports/valuemapping/",
    }
    found = {}
    for name, path in pages.items():
        page.goto(path)
        found[name] = axe_violations(page)
        if found[name]:
            shot(page, f"axe-{name}")
    # A refused upload shows its errors in the form.
    page.goto(f"{base}/upload/")
    page.click("input[type=submit][value=Upload]")
    page.wait_for_selector(".errornote")
    found["import-upload-errors"] = axe_violations(page)
    problems = {name: v for name, v in found.items() if v}
    assert not problems, problems
