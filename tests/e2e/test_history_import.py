"""
An admin brings in a year of closed deals from Salesforce in a real browser: uploads the
opportunity report (tests/imports/fixtures, its dates moved so the newest close was
yesterday), sees each reason text of the file with its count and a suggested reason, changes
one, skips one, saves and checks, imports, and sees the summary. axe-core finds nothing serious
on the upload, mapping, check and summary screens.
"""

import pytest
from django.conf import settings

from imports.models import HistoryImport, ImportedDeal, ImportStatus
from reflections.models import Answer, Origin, Reflection
from tests.e2e.conftest import axe_violations, shot
from tests.factories import ProductFactory, ProductLineFactory
from tests.imports.conftest import export

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def admin_login(page, email: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def selected(select) -> str:
    return select.evaluate("s => s.options[s.selectedIndex].text")


def note(page, select) -> str:
    """The note under a select (why it starts where it does), which describes it."""
    described_by = select.get_attribute("aria-describedby")
    return page.locator(f"#{described_by}").inner_text()


def test_admin_imports_a_salesforce_report_through_the_mapping_screen(
    axe_page, admin_user, rep, teammate, defaults, settings, tmp_path, embedded_default
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    ProductFactory(name="Analytics Suite", line=ProductLineFactory(name="Analytics"))
    ProductFactory(name="Data Connector", line=ProductLineFactory(name="Integration"))
    page = axe_page
    admin_login(page, admin_user.email)

    # The admin index leads to the imports; "Add" opens the upload page.
    page.click("#content-main a:has-text('History imports') >> nth=0")
    page.click("a.addlink >> nth=0")
    page.wait_for_url("**/imports/historyimport/upload/")
    assert "What each kind of export needs" in page.inner_text("#content")
    assert axe_violations(page) == []
    shot(page, "history-import-upload")

    page.set_input_files(
        "#id_file",
        files=[
            {
                "name": "salesforce_opportunities.csv",
                "mimeType": "text/csv",
                "buffer": export("salesforce").encode(),
            }
        ],
    )
    page.select_option("#id_preset", "salesforce")
    page.select_option("#id_date_format", "dmy")
    # Jordan left long ago: Riley takes the deals of owners nobody here matches.
    page.select_option("#id_default_owner", label="Riley Rep (riley@example.com)")
    page.select_option("#id_segment", "software")
    page.select_option("#id_size_band", "mid")
    page.select_option("#id_region", "uk")
    page.click("input[type=submit][value=Upload]")

    # The mapping screen: each text, its count (most frequent first), a suggested reason.
    page.wait_for_url("**/values/")
    lost = page.locator("#values-reason-lost")
    counts = [int(c) for c in lost.locator("tbody td.num").all_inner_texts()]
    assert counts == sorted(counts, reverse=True) and counts[0] == 2
    exact = lost.get_by_label("Lost to competitor", exact=True)
    assert selected(exact) == "Lost to competitor"
    assert note(page, exact) == "suggested: exact match"
    too_high = lost.get_by_label("Price too high", exact=True)
    assert selected(too_high) == "Price"
    assert note(page, too_high).endswith("% similar")
    # Every text starts at a suggestion: nothing is left blank.
    assert page.locator("select").evaluate_all("ss => ss.filter(s => !s.value).length") == 0
    captions = page.locator("table.import-values caption").all_text_contents()
    assert captions == [
        "Reasons given for lost deals",
        "Reasons given for won deals",
        "Reasons given for no decision deals",
        "Products",
    ]
    assert axe_violations(page) == []
    shot(page, "history-import-values")

    # Change one suggestion; skip the lost deal that gives no reason.
    lost.get_by_label("Too expensive", exact=True).select_option(label="Budget")
    lost.get_by_label("(no reason given)", exact=True).select_option(label="Skip these deals")
    page.click("input[name=_check]")

    # The check: what would be created, and the button.
    page.wait_for_url("**/check/")
    content = page.inner_text("#content")
    assert "Deals to create\t15" in content or "Deals to create 15" in content
    assert "row problem" not in content
    assert axe_violations(page) == []
    shot(page, "history-import-check")
    page.click("input[type=submit][value='Import 15 deals']")

    # The import's page: progress while it runs, then the summary.
    page.wait_for_selector("#import-progress h2:has-text('Imported')", timeout=30_000)
    summary = page.inner_text("#import-progress")
    assert "15 deals imported from Salesforce" in summary
    assert axe_violations(page) == []
    shot(page, "history-import-summary")

    history_import = HistoryImport.objects.get()
    assert history_import.status == ImportStatus.DONE
    assert history_import.rows_skipped == 3  # two open deals and the skipped text
    assert ImportedDeal.objects.count() == 15
    assert set(Reflection.objects.values_list("origin", flat=True)) == {Origin.IMPORTED}
    # The changed meaning is what the deals say.
    litware = ImportedDeal.objects.get(external_id="0065g00000KZt1E").opportunity
    assert Answer.objects.filter(reflection__opportunity=litware, reason__label="Budget").exists()

    page.click("a:has-text('See the imported deals')")
    assert "0065g00000KZt1E" in page.inner_text("#result_list")


def test_a_large_files_check_shows_its_progress_and_then_its_result(
    axe_page, admin_user, rep, defaults, settings, tmp_path
):
    """More rows than are checked in the request: the check page polls the job's progress."""
    from django.utils import timezone

    from imports import services
    from tests.imports.conftest import create, salesforce_csv, sf_row

    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = 5
    settings.DEBRIEF_IMPORT_BATCH_ROWS = 4
    ProductFactory(name="Analytics Suite", line=ProductLineFactory(name="Analytics"))
    history_import = create(admin_user, salesforce_csv([sf_row(n) for n in range(1, 13)]))
    # The job was queued and has read 4 of the 12 rows (its worker is another process).
    HistoryImport.objects.filter(pk=history_import.pk).update(
        status=ImportStatus.CHECKING, checked_rows=4, heartbeat_at=timezone.now()
    )
    page = axe_page
    admin_login(page, admin_user.email)
    page.goto(f"/admin/imports/historyimport/{history_import.pk}/check/")
    status = page.get_by_role("status")
    assert "Checking: 4 of 12 rows" in status.inner_text()
    assert page.locator("progress#import-bar").get_attribute("value") == "4"
    assert page.locator("input[value^='Import']").count() == 0
    assert axe_violations(page) == []
    shot(page, "history-import-check-progress")

    # The job ends; the page, polling every second, shows the result by itself.
    services.history_import_check_run(import_id=history_import.pk)
    page.wait_for_selector("input[type=submit][value='Import 12 deals']", timeout=10_000)
    assert "Checked" in page.inner_text("#content")
    assert axe_violations(page) == []
