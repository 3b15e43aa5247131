"""
What a hostile probe found beyond the faults (tests/test_faults.py): formula injection in the
admin's exports, reset links in production logs, a look-alike login, query strings in error
logs, an open redirect, private pages without Cache-Control, a chatty /healthz, unlimited
password resets, and renaming companies.
"""

import io
import logging

import pytest
from django.core import mail
from django.urls import reverse

from crm_site.csvsafe import safe_cell
from crm_site.logs import ScrubRequestFilter
from tests.crm_site.test_settings import PRODUCTION_ENV, _manage
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory

pytestmark = pytest.mark.django_db


# --- 6. formula injection in every CSV --------------------------------------------------------
@pytest.mark.parametrize(
    "cell, expected",
    [
        ('=HYPERLINK("http://evil.example")', '\'=HYPERLINK("http://evil.example")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("\tcmd", "'\tcmd"),
        ("+44 20 7946 0018", "+44 20 7946 0018"),  # a phone number stays as it was
        ("-12.50", "-12.50"),
        ("+1 (555) 010-9999", "+1 (555) 010-9999"),
        ("Brightwater", "Brightwater"),
        (None, ""),
        (12, 12),
    ],
)
def test_one_formula_guard_for_every_csv(cell, expected):
    assert safe_cell(cell) == expected


def _export(admin_client, model: str) -> str:
    url = reverse(f"admin:customers_{model}_export")
    fields = admin_client.get(url).context["form"].fields
    data = {"resource": "0", "format": "0"}
    data.update({name: "on" for name in fields if name.startswith(f"{model}resource_")})
    response = admin_client.post(url, data)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return response.content.decode()


def test_admin_company_and_contact_exports_escape_formulas(admin_client):
    company = CompanyFactory(name='=HYPERLINK("http://evil.example","Click")')
    ContactFactory(company=company, full_name="@SUM(1+1)", phone="+44 20 7946 0018")
    companies = _export(admin_client, "company")
    assert "'=HYPERLINK" in companies
    assert ",=HYPERLINK" not in companies and "\n=HYPERLINK" not in companies
    contacts = _export(admin_client, "contact")
    assert "'@SUM(1+1)" in contacts and ",@SUM" not in contacts
    assert "+44 20 7946 0018" in contacts and "'+44" not in contacts


# --- 7. no reset links in production logs -----------------------------------------------------
def test_production_without_a_mail_server_sends_nothing_and_logs_no_link(
    client, rep, settings, caplog
):
    settings.EMAIL_BACKEND = "crm_site.mail.NotConfiguredBackend"
    with caplog.at_level(logging.INFO):
        response = client.post(reverse("password_reset"), {"email": rep.email})
    assert response.status_code == 302
    assert "not set up" in caplog.text
    assert (
        "/password/reset/" not in caplog.text
        and "reset" not in caplog.text.lower().split("not set up")[0][-0:]
    )


def test_production_settings_pick_the_backend_that_sends_nothing():
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.EMAIL_BACKEND)",
        env={**PRODUCTION_ENV, "EMAIL_HOST": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("crm_site.mail.NotConfiguredBackend")


# --- 8. one login identifier --------------------------------------------------------------------
def test_a_look_alike_login_never_reaches_the_account(client, rep):
    rep.set_password("correct horse battery")
    rep.save()
    fake = rep.email.replace("i", "\u0131", 1)  # riley@ -> rıley@ (dotless ı)
    assert fake != rep.email
    response = client.post(
        reverse("login"), {"username": fake, "password": "correct horse battery"}
    )
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    ok = client.post(
        reverse("login"),
        {"username": f"  {rep.email.upper()} ", "password": "correct horse battery"},
    )
    assert ok.status_code == 302 and client.session["_auth_user_id"] == str(rep.pk)


def test_the_lockout_counts_what_the_lookup_matches(client, rep, settings):
    from axes.models import AccessAttempt

    variants = [rep.email, rep.email.upper(), f" {rep.email} ", "ＲＩＬＥＹ@example.com"]
    for name in variants:
        client.post(reverse("login"), {"username": name, "password": "wrong"})
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {rep.email}


# --- 9. no query strings in error logs ----------------------------------------------------------
def test_error_lines_carry_the_route_never_the_query_string(rf):
    from django.urls import resolve

    request = rf.get("/companies/?q=Dana+Buyer&email=dana@brightwater.example")
    request.resolver_match = resolve("/companies/")
    record = logging.LogRecord(
        "django.request",
        logging.ERROR,
        __file__,
        1,
        "Internal Server Error: %s",
        ("/companies/?q=Dana+Buyer",),
        None,
    )
    record.request = request
    assert ScrubRequestFilter().filter(record)
    from pythonjsonlogger.json import JsonFormatter

    line = JsonFormatter("%(message)s").format(record)
    assert "Dana" not in line and "brightwater" not in line
    assert "GET /companies/" in line


def _crash_line(client, handler) -> str:
    from unittest import mock

    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        with mock.patch("customers.views.selectors.companies_filtered", side_effect=RuntimeError):
            client.get("/companies/?q=Dana+Secret")
    finally:
        handler.setStream(previous)
    return stream.getvalue()


def test_a_crash_logs_no_query_string(rep_client):
    from pythonjsonlogger.json import JsonFormatter

    # The production line format: JSON carries every extra of a record, the request included.
    handler = next(h for h in logging.getLogger().handlers if h.filters)
    (scrub,) = handler.filters
    formatter = handler.formatter
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    rep_client.raise_request_exception = False
    try:
        handler.removeFilter(scrub)
        unscrubbed = _crash_line(rep_client, handler)
        handler.addFilter(scrub)
        line = _crash_line(rep_client, handler)
    finally:
        handler.setFormatter(formatter)
        if scrub not in handler.filters:
            handler.addFilter(scrub)
    assert "Dana" in unscrubbed  # what the line held before the filter
    assert "Internal Server Error" in line and "/companies/" in line
    assert "Dana" not in line and "Secret" not in line


# --- 10. no open redirect -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "target, lands",
    [
        ("https://evil.example/steal", "/plan/"),
        ("//evil.example/steal", "/plan/"),
        ("javascript:alert(1)", "/plan/"),
        ("/opportunities/?stage=proposal", "/opportunities/?stage=proposal"),
    ],
)
def test_the_next_step_form_only_returns_into_the_site(rep_client, rep, target, lands):
    deal = OpportunityFactory(owner=rep)
    response = rep_client.post(
        reverse("opportunities:next_step", args=[deal.pk]),
        {"next_step": "Call back", "next": target},
    )
    assert response.status_code == 302 and response["Location"] == lands


# --- 11. private pages, healthz, reset limits, company edits ------------------------------------
def test_signed_in_pages_and_exports_are_never_cached_by_others(rep_client):
    for url in ("/plan/", "/opportunities/", "/insights/", "/insights/export/summary.csv"):
        response = rep_client.get(url)
        assert "private" in response["Cache-Control"] and "no-store" in response["Cache-Control"]


def test_password_resets_are_limited_per_address_and_per_email(client, rep, settings):
    settings.DEBRIEF_PASSWORD_RESET_RATE = "3/h"
    for _ in range(3):
        assert client.post(reverse("password_reset"), {"email": rep.email}).status_code == 302
    limited = client.post(reverse("password_reset"), {"email": rep.email.upper()})
    assert limited.status_code == 429
    assert "Please wait a little" in limited.content.decode()
    assert len(mail.outbox) == 3


def test_a_rep_edits_only_companies_they_added_or_sell_to(client, rep, other_rep, manager):
    theirs = CompanyFactory(name="Brightwater")
    OpportunityFactory(owner=rep, company=theirs)
    url = reverse("customers:company_edit", args=[theirs.pk])
    client.force_login(other_rep)
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Hijacked"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Brightwater"
    assert "Edit company" not in client.get(f"/companies/{theirs.pk}/").content.decode()
    client.force_login(rep)
    assert client.get(url).status_code == 200
    client.force_login(manager)
    assert client.get(url).status_code == 200
    # A company a rep adds is theirs to correct.
    client.force_login(other_rep)
    client.post(
        reverse("customers:company_create"),
        {
            "name": "New Co",
            "domain": "newco.example",
            "segment": "software",
            "size_band": "mid",
            "region": "uk",
        },
    )
    from customers.models import Company

    added = Company.objects.get(name="New Co")
    assert added.created_by == other_rep
    assert client.get(reverse("customers:company_edit", args=[added.pk])).status_code == 200


# --- 5. bodies refused before anything reads them -------------------------------------------
def test_an_oversized_body_is_refused_before_csrf_or_the_view_reads_it(client):
    from unittest import mock

    with mock.patch("django.http.request.HttpRequest.read") as read:
        response = client.post(
            reverse("login"),
            data=b"username=x&password=y",
            content_type="application/x-www-form-urlencoded",
            CONTENT_LENGTH=str(200 * 1024 * 1024),
        )
    assert response.status_code == 413
    assert "at most 3 MB" in response.content.decode()
    read.assert_not_called()


def test_upload_pages_take_a_call_list_and_other_pages_do_not(rf, rep):
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse

    from crm_site.middleware import RequestSizeLimitMiddleware

    passed = RequestSizeLimitMiddleware(lambda request: HttpResponse("view ran"))

    def post(path, size, user=rep):
        request = rf.post(path, CONTENT_LENGTH=str(size * 1024 * 1024))
        request.user = user
        return passed(request)

    assert post("/opportunities/new/", 20).status_code == 413
    # The call-list page takes a call list's own limit (its view says so), from a signed-in
    # person only.
    upload = post("/suppressions/check/", 20)
    assert upload.status_code == 200 and upload.content == b"view ran"
    assert post("/suppressions/check/", 40).status_code == 200
    assert post("/suppressions/check/", 200).status_code == 413
    assert post("/suppressions/check/", 20, AnonymousUser()).status_code == 413
    import_page = "/admin/imports/historyimport/upload/"
    assert post(import_page, 20).status_code == 200
    assert post(import_page, 40).status_code == 413
    bad = passed(rf.post("/opportunities/new/", CONTENT_LENGTH="lots"))
    assert bad.status_code == 400
