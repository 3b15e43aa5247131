"""
The call-list check as a rep preparing a campaign meets it in a real browser: "Check" shows
what the file holds (rows, who must not be called and why, rows that do not line up with the
header) without leaving the page, and the checked file downloads with the user's columns,
order and phone numbers as uploaded.
"""

import csv
import io

import pytest
from django.conf import settings

from reflections.models import Outcome
from suppressions import services as suppressions_services
from tests.e2e.conftest import axe_violations, login, shot
from tests.factories import CompanyFactory, ContactFactory, ProductFactory
from tests.suppressions.test_suppression import closed, won_data

PASSWORD = settings.DEBRIEF_DEMO_PASSWORD
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UPLOADED = (
    "name,email,phone,company_domain\r\n"
    "Dana Dee,dana@brightwater.example,,\r\n"  # row 2: asked not to be contacted
    'Nora North,,"+44 161 496 0123",\r\n'  # row 3: her company bought, found by phone
    "Cleo Clear,cleo@clear.example,+44 20 7946 0999,\r\n"  # row 4: nothing against her
    "Mo, the misaligned,mo@elsewhere.example,+44 20 7946 0555,\r\n"  # row 5: five values
)


@pytest.fixture
def campaign(rep, defaults):
    brightwater = CompanyFactory(name="Brightwater", domain="brightwater.example")
    dana = ContactFactory(
        company=brightwater, full_name="Dana Dee", email="dana@brightwater.example"
    )
    suppressions_services.do_not_contact_add(
        actor=rep, company=brightwater, contact=dana, note="Asked"
    )
    northwind = CompanyFactory(name="Northwind", domain="northwind.example")
    nora = ContactFactory(company=northwind, full_name="Nora North", phone="0161 496 0123")
    closed(rep, northwind, nora, ProductFactory(), Outcome.WON, won_data())


def test_check_shows_who_must_not_be_called_and_the_file_comes_back_as_uploaded(
    page, rep, campaign
):
    login(page, rep.email, PASSWORD)
    page.goto("/suppressions/check/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "spring.csv", "mimeType": "text/csv", "buffer": UPLOADED.encode()}],
    )
    page.click("button:has-text('Check'):not(:has-text('download'))")

    summary = page.locator(".call-list-summary")
    summary.wait_for()
    # Focus moves to the answer, so that a screen reader reads it next.
    page.wait_for_function("document.activeElement?.id === 'call-list-summary-title'")
    stats = {
        name: summary.locator(f"dt:has-text('{name}') + dd").inner_text()
        for name in ("Rows checked", "Must not be called", "Not suppressed", "Rows with problems")
    }
    assert stats == {
        "Rows checked": "4",
        "Must not be called": "2",
        "Not suppressed": "2",
        "Rows with problems": "1",
    }
    text = summary.inner_text()
    assert "Do not contact: 1" in text and "Bought: 1" in text
    assert "Declined" not in text  # only the reasons that suppressed a row
    assert "Row 5 has 5 values but the header has 4 columns" in text
    assert axe_violations(page) == []
    shot(page, "newcomer-call-list-result")

    # The file is still chosen: the summary's button downloads it checked.
    with page.expect_download() as info:
        page.click("button:has-text('Download the checked file')")
    download = info.value
    assert download.suggested_filename == "spring-checked.csv"
    with open(download.path(), encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(io.StringIO(handle.read())))
    assert rows[0] == [
        "name",
        "email",
        "phone",
        "company_domain",
        "suppressed",
        "reason",
        "until",
        "problem",
    ]
    assert [row[:4] for row in rows[1:4]] == [
        ["Dana Dee", "dana@brightwater.example", "", ""],
        ["Nora North", "", "+44 161 496 0123", ""],  # no apostrophe added
        ["Cleo Clear", "cleo@clear.example", "+44 20 7946 0999", ""],
    ]
    assert [row[4] for row in rows[1:]] == ["yes", "yes", "no", "no"]
    assert "do-not-contact" in rows[1][5] and rows[1][6] == "indefinite"
    assert "Northwind" in rows[2][5] and rows[2][6] != ""
    assert [row[7] for row in rows[1:4]] == ["", "", ""]
    # The misaligned row: its first four values under the header, the added cells under their
    # names, then the extra value, as uploaded.
    misaligned = rows[4]
    assert misaligned[:4] == ["Mo", " the misaligned", "mo@elsewhere.example", "+44 20 7946 0555"]
    assert misaligned[7].startswith("Row 5 has 5 values but the header has 4 columns")
    assert misaligned[8:] == [""]

    # Another file chosen: the summary of the previous one goes away.
    page.set_input_files(
        "#id_file",
        files=[{"name": "other.csv", "mimeType": "text/csv", "buffer": b"email\na@b.example\n"}],
    )
    assert page.locator(".call-list-summary").count() == 0


def test_a_file_without_a_usable_column_is_refused_in_place(page, rep):
    login(page, rep.email, PASSWORD)
    page.goto("/suppressions/check/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "names.csv", "mimeType": "text/csv", "buffer": b"name,city\nDana,Leeds\n"}],
    )
    page.click("button:has-text('Check'):not(:has-text('download'))")
    error = page.locator("#call-list-check .field-error")
    error.wait_for()
    assert "No usable column" in error.inner_text()
    assert page.locator(".call-list-summary").count() == 0
    assert axe_violations(page) == []


def test_the_result_fits_a_phone(page, rep, campaign):
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, rep.email, PASSWORD)
    page.goto("/suppressions/check/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "spring.csv", "mimeType": "text/csv", "buffer": UPLOADED.encode()}],
    )
    page.click("button:has-text('Check'):not(:has-text('download'))")
    page.locator(".call-list-summary").wait_for()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    shot(page, "newcomer-call-list-result-phone")
