import json
import logging

import pytest
from django.urls import reverse

from crm_site.celery import ping
from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db


def _request_lines(caplog):
    return [r for r in caplog.records if r.name == "debrief.request"]


def test_a_request_is_logged_once_with_its_route_and_no_personal_data(rep_client, rep, caplog):
    company = CompanyFactory(name="Brightwater Foods")
    ContactFactory(company=company, email="dana.buyer@brightwater.example", phone="020 7946 0018")
    caplog.set_level(logging.INFO, logger="debrief.request")
    response = rep_client.get(
        reverse("customers:company_list") + "?q=dana.buyer@brightwater.example"
    )
    assert response.status_code == 200 and response["X-Request-ID"]
    rep_client.get(reverse("customers:company_detail", args=[company.pk]))
    first, second = _request_lines(caplog)
    assert first.route == "/companies/" and first.status == 200 and first.user_id == rep.pk
    assert second.route == "/companies/<int:company_id>/"
    everything = " ".join(_texts(r) for r in caplog.records)
    for personal in ("dana.buyer", "brightwater.example", "7946", rep.email, "Brightwater"):
        assert personal not in everything, personal


# What a LogRecord carries of its own (times, thread, process), as opposed to what the logging
# call and the request logger's `extra` put on it.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)))


def _texts(record: logging.LogRecord) -> str:
    """
    Everything of a record that could carry personal data: its message with arguments and the
    extra fields given as text. Numbers (a timestamp, a duration, an id) are left out: their
    digits can match a phone number's by chance, and text personal data never arrives as one.
    """
    extras = [
        str(value)
        for name, value in vars(record).items()
        if name not in _RECORD_ATTRIBUTES and not isinstance(value, int | float)
    ]
    return " ".join([record.getMessage(), *extras])


def test_json_formatter_writes_one_parseable_line():
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )
    record = logging.LogRecord("debrief.request", logging.INFO, "", 0, "request", None, None)
    record.route, record.status, record.duration_ms = "/plan/", 200, 12.5
    line = json.loads(formatter.format(record))
    assert line["logger"] == "debrief.request" and line["route"] == "/plan/"
    assert line["status"] == 200 and line["level"] == "INFO"


def test_tasks_are_logged_with_name_state_and_duration(caplog):
    caplog.set_level(logging.INFO, logger="debrief.task")
    ping.apply()  # runs here whatever the broker; the same signals fire in a worker
    (line,) = [r for r in caplog.records if r.name == "debrief.task"]
    assert line.task == "debrief.ping" and line.state == "SUCCESS" and line.duration_ms >= 0
