"""Recognising deals imported before: the system's name, Salesforce's two ids, a renamed system."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from imports import engine, services
from imports.models import ImportedDeal
from opportunities.models import Opportunity

from .conftest import check_and_run, create, salesforce_csv, sf_row

# Salesforce's 18-character ids: the 15-character id and its case-safe checksum.
ID_15 = "0065g00000AbCdE"
ID_18 = "0065g00000AbCdEAAV"


def test_the_system_name_is_keyed_with_its_spaces_collapsed():
    assert engine.system_key("  Sales   Force ") == engine.system_key("sales force")
    assert engine.system_key("Sales\tForce") == "sales force"


def test_a_system_named_with_other_spaces_recognises_its_deals(
    world, django_capture_on_commit_callbacks
):
    rows = [sf_row(1), sf_row(2)]
    first = create(world, salesforce_csv(rows), system="Sales Force")
    check_and_run(world, first, django_capture_on_commit_callbacks)

    again = create(world, salesforce_csv(rows), system="  sales   FORCE ")
    done = check_and_run(world, again, django_capture_on_commit_callbacks)

    assert (done.deals_created, done.deals_existing) == (0, 2)
    assert Opportunity.objects.count() == 2
    assert set(ImportedDeal.objects.values_list("system_key", flat=True)) == {"sales force"}


def test_salesforce_checksum_is_recognised():
    assert engine.salesforce_id(ID_18) == ID_15
    assert engine.salesforce_id(ID_15) == ID_15
    # 18 characters that do not end in the checksum are some other id: kept whole.
    assert engine.salesforce_id(ID_15 + "ZZZ") == ID_15 + "ZZZ"


def test_salesforce_18_character_ids_are_the_15_character_deals(
    world, django_capture_on_commit_callbacks
):
    first = create(world, salesforce_csv([sf_row(1, **{"Opportunity ID": ID_15})]))
    check_and_run(world, first, django_capture_on_commit_callbacks)

    again = create(world, salesforce_csv([sf_row(1, **{"Opportunity ID": ID_18})]))
    done = check_and_run(world, again, django_capture_on_commit_callbacks)

    assert (done.deals_created, done.deals_existing) == (0, 1)
    assert ImportedDeal.objects.get().external_id == ID_15


def test_one_deal_under_both_its_ids_in_a_file_is_a_duplicate(world):
    rows = [sf_row(1, **{"Opportunity ID": ID_15}), sf_row(2, **{"Opportunity ID": ID_18})]
    checked = services.history_import_check(history_import=create(world, salesforce_csv(rows)))

    assert checked.status == "invalid"
    assert "appears again" in checked.errors[0]["message"]


def _imported_as(world, capture, text, system):
    return check_and_run(world, create(world, text, system=system), capture)


def test_the_same_file_under_another_system_name_is_flagged(
    world, client, django_capture_on_commit_callbacks
):
    text = salesforce_csv([sf_row(n) for n in range(1, 5)])
    yesterday = timezone.now() - datetime.timedelta(days=1)
    with time_machine.travel(yesterday, tick=False):
        _imported_as(world, django_capture_on_commit_callbacks, text, "SFDC")
    day = timezone.localdate(yesterday)

    again = services.history_import_check(history_import=create(world, text, system="Salesforce"))

    expected = (
        f"This file looks like one imported before as “SFDC” on {day.day} {day:%b %Y}: "
        "importing it as “Salesforce” would add its deals again."
    )
    assert again.status == "checked"  # a warning, not an error
    assert again.check_warnings[0].startswith(expected)
    client.force_login(world)
    page = client.get(f"/admin/imports/historyimport/{again.pk}/check/")
    assert expected in page.content.decode()


def test_most_of_a_files_ids_under_another_system_name_are_flagged(
    world, django_capture_on_commit_callbacks
):
    _imported_as(
        world,
        django_capture_on_commit_callbacks,
        salesforce_csv([sf_row(n) for n in range(1, 5)]),
        "SFDC",
    )
    # Another export (other rows' text): 3 of its 5 ids came in as SFDC deals.
    other = [sf_row(n, **{"Opportunity Name": f"Renamed {n}"}) for n in (1, 2, 3, 8, 9)]

    again = services.history_import_check(
        history_import=create(world, salesforce_csv(other), system="Salesforce")
    )

    assert len(again.check_warnings) == 1
    assert "imported before as “SFDC”" in again.check_warnings[0]


@pytest.mark.parametrize(
    ("system", "rows"),
    [
        ("SFDC", range(1, 5)),  # the same name: its deals are recognised, nothing to warn
        ("Salesforce", (1, 2, 8, 9)),  # only half of the ids: not the same file
    ],
)
def test_no_warning_when_the_deals_would_be_recognised_or_few_are_shared(
    system, rows, world, django_capture_on_commit_callbacks
):
    _imported_as(
        world,
        django_capture_on_commit_callbacks,
        salesforce_csv([sf_row(n) for n in range(1, 5)]),
        "SFDC",
    )
    other = [sf_row(n, **{"Opportunity Name": f"Renamed {n}"}) for n in rows]

    again = services.history_import_check(
        history_import=create(world, salesforce_csv(other), system=system)
    )

    assert again.check_warnings == []
