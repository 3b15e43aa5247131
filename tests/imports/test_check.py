"""The dry run and the upload's checks: every problem named by row and column, nothing written."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from customers.models import Company, Contact
from imports import selectors, services
from imports.models import HistoryImport, MappingAction, ValueMapping
from opportunities.models import Competitor, Opportunity
from reflections.models import Outcome, Reason, Reflection
from suppressions.models import Suppression

from .conftest import create, export, salesforce_csv, sf_row, upload


def _nothing_imported():
    assert Company.objects.count() == 0
    assert Contact.objects.count() == 0
    assert Opportunity.objects.count() == 0
    assert Reflection.objects.count() == 0
    assert Suppression.objects.count() == 0
    assert Competitor.objects.count() == 0


def test_each_bad_row_is_named_by_row_and_column_and_nothing_is_written(world, frozen_today):
    future = frozen_today + datetime.timedelta(days=5)
    closed = frozen_today - datetime.timedelta(days=20)
    rows = [
        sf_row(1),  # line 2: fine
        sf_row(2, Amount="12,34,5"),  # line 3
        sf_row(3, **{"Close Date": f"31/02/{frozen_today.year}"}),  # line 4
        sf_row(4, **{"Amount Currency": "CHF"}),  # line 5
        sf_row(5, **{"Close Date": f"{future:%d/%m/%Y}"}),  # line 6
        sf_row(
            6,
            **{
                "Created Date": f"{closed + datetime.timedelta(days=1):%d/%m/%Y}",
                "Close Date": f"{closed:%d/%m/%Y}",
            },
        ),  # line 7
        sf_row(7, **{"Account Name": ""}),  # line 8
        sf_row(8, **{"Owner Email": "gone@oldcrm.example"}),  # line 9
        sf_row(9, **{"Win/Loss Reason": "Aliens took them"}),  # line 10
        sf_row(10, **{"Product Name": "Teleporter"}),  # line 11
        sf_row(11, **{"Opportunity ID": "006TEST00000001"}),  # line 12, line 2's id
        sf_row(12, Stage="Pending approval"),  # line 13
        sf_row(13, Stage="Prospecting", **{"Close Date": f"{future:%d/%m/%Y}"}),  # open: left out
    ]
    checked = services.history_import_check(history_import=create(world, salesforce_csv(rows)))

    assert checked.status == "invalid"
    assert checked.checked_fingerprint == ""
    found = {(e["row"], e["column"]): e["message"] for e in checked.errors}
    assert checked.error_count == len(checked.errors) == 11
    assert "“12,34,5”" in found[(3, "Amount")]
    assert "not a real date" in found[(4, "Close Date")]
    assert "only GBP, EUR and USD" in found[(5, "Amount Currency")]
    assert "in the future" in found[(6, "Close Date")]
    assert "after it closed" in found[(7, "Created Date")]
    assert "company is empty" in found[(8, "Account Name")]
    assert "gone@oldcrm.example" in found[(9, "Owner Email")]
    assert "default owner" in found[(9, "Owner Email")]
    assert "“Aliens took them” is not mapped yet" in found[(10, "Win/Loss Reason")]
    assert "“Teleporter” is not mapped yet" in found[(11, "Product Name")]
    assert "appears again: it is on line 2" in found[(12, "Opportunity ID")]
    assert "“Pending approval” is not a stage" in found[(13, "Stage")]
    assert checked.rows_skipped == 1  # the open deal, without an error
    assert checked.deals_created == 1  # what would be created: line 2 only
    _nothing_imported()
    with pytest.raises(ValidationError, match="Run the check first"):
        services.history_import_start(actor=world, history_import=checked)


def test_the_dry_run_counts_what_it_would_create_and_writes_nothing(world, sales_ops):
    history_import = create(world, export("salesforce"), default_owner=sales_ops)
    for row in selectors.value_rows(history_import):
        if row.saved is None and row.score < 100 or row.key == "":
            services.history_import_save_mappings(
                actor=world,
                history_import=history_import,
                decisions=[services.Decision(row.kind, row.outcome, row.key, "unknown")],
            )
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "checked", checked.errors
    assert (checked.deals_created, checked.rows_skipped, checked.error_count) == (16, 2, 0)
    assert checked.companies_created == 13
    assert checked.contacts_created == 11
    # Lost: 90 days (product, contact); won: 180 days (line, company); no decision: 30 days.
    assert checked.suppressions_derived == 10
    assert len(checked.checked_fingerprint) == 64
    _nothing_imported()


def test_unknown_reason_texts_are_listed_with_counts_and_suggestions(world, sales_ops):
    history_import = create(world, export("salesforce"), default_owner=sales_ops)
    rows = selectors.value_rows(history_import)
    lost = {r.key: r for r in rows if r.kind == "reason" and r.outcome == Outcome.LOST}
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")

    assert lost["price too high"].count == 2  # "Price too high" and "Price too high "
    assert lost["price too high"].text == "Price too high"
    assert lost["price - too high"].suggestion_id == price.pk
    assert lost["too expensive"].suggestion_id == price.pk
    assert lost["no budget"].suggestion_label == "Budget"
    assert lost["went with competitor"].suggestion_label == "Lost to competitor"
    assert lost["lost to competitor"].score == 100  # exact: needs no decision
    assert lost[""].text == "(no reason given)"
    assert lost[""].suggestion_action == MappingAction.UNKNOWN
    assert all(r.saved is None for r in rows)
    kinds = [(r.kind, r.outcome) for r in rows]
    assert kinds == sorted(
        kinds, key=lambda k: (k[0] != "reason", ["lost", "won", "no_decision", ""].index(k[1]))
    )
    counts = [r.count for r in rows if (r.kind, r.outcome) == ("reason", "lost")]
    assert counts == sorted(counts, reverse=True)
    products = {r.key: r for r in rows if r.kind == "product"}
    assert products["analytics suite"].count == 10  # "Analytics Suite" and "analytics suite"
    assert products["analytics suite"].score == 100

    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "invalid"
    assert any(
        "“too expensive” is not mapped yet" in e["message"].casefold() for e in checked.errors
    )

    decisions = [
        services.Decision(r.kind, r.outcome, r.key, r.suggestion_action, r.suggestion_id)
        for r in rows
        if r.score < 100 or r.key == ""
    ]
    assert services.history_import_save_mappings(
        actor=world, history_import=history_import, decisions=decisions
    ) == len(decisions)
    assert services.history_import_check(history_import=history_import).status == "checked"


def test_a_reason_maps_only_to_a_reason_of_its_outcome(world):
    history_import = create(world, salesforce_csv([sf_row(1)]))
    won_reason = Reason.objects.get(outcome=Outcome.WON, label="Price")
    with pytest.raises(ValidationError, match="active reason for lost deals"):
        services.history_import_save_mappings(
            actor=world,
            history_import=history_import,
            decisions=[services.Decision("reason", "lost", "dear", "map", won_reason.pk)],
        )
    with pytest.raises(ValidationError, match="only for reasons"):
        services.history_import_save_mappings(
            actor=world,
            history_import=history_import,
            decisions=[services.Decision("product", "", "widget", "unknown")],
        )
    assert ValueMapping.objects.count() == 0


def test_a_duplicate_external_id_within_a_file_is_an_error(world):
    rows = [sf_row(1), sf_row(2), sf_row(3, **{"Opportunity ID": "006TEST00000002"})]
    checked = services.history_import_check(history_import=create(world, salesforce_csv(rows)))
    assert checked.status == "invalid"
    assert checked.errors == [
        {
            "row": 4,
            "column": "Opportunity ID",
            "message": "The deal id “006TEST00000002” appears again: it is on line 3 already. "
            "Remove one of the two rows.",
        }
    ]


# --- the file as a whole --------------------------------------------------------------------


def _refused(world, data, match, **kwargs):
    with pytest.raises(ValidationError, match=match):
        services.history_import_create(
            actor=world,
            uploaded_file=upload(data),
            system="Salesforce",
            preset=kwargs.pop("preset", "salesforce"),
            **kwargs,
        )
    assert HistoryImport.objects.count() == 0


def test_an_empty_file_is_refused(world):
    _refused(world, b"", "The file is empty")
    _refused(world, b"\r\n\r\n", "The file is empty")


def test_a_header_without_rows_is_refused(world):
    _refused(world, salesforce_csv([]), "no deals under it")


def test_binary_garbage_is_refused(world):
    _refused(world, bytes(range(256)) * 40, "does not look like a CSV file")


def test_a_header_of_ten_thousand_columns_is_refused(world):
    header = ",".join(f"Column {i}" for i in range(10_000))
    _refused(world, header + "\n" + "," * 9_999 + "\n", "10,000 columns; at most 500")


def test_a_file_over_the_size_limit_is_refused(world, settings):
    settings.DEBRIEF_IMPORT_MAX_BYTES = 1024
    _refused(
        world,
        salesforce_csv([sf_row(n) for n in range(40)]),
        r"The file is \d+\.\d KB; at most 1\.0 KB can be imported at once\. Split it",
    )


def test_a_preset_file_missing_a_column_names_it_and_the_closest_header(world):
    text = salesforce_csv([sf_row(1)]).replace("Close Date", "Closed Date", 1)
    _refused(world, text, "no “Close Date” column.*closest column in the file is “Closed Date”")


def test_windows_1252_files_are_read(world):
    text = salesforce_csv([sf_row(1, **{"Account Name": "Café Müller"})])
    history_import = create(world, text.encode("cp1252"))
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "checked", checked.errors
    assert checked.rows_total == 1


def test_a_file_uploaded_by_a_rep_is_refused(rep):
    with pytest.raises(Exception, match="Only administrators"):
        create(rep, salesforce_csv([sf_row(1)]))


def test_generic_files_need_their_required_columns_chosen(world):
    day = timezone.localdate() - datetime.timedelta(days=3)
    text = f"Ref,Client,When,Value,Outcome,Item\r\nA1,Acme,{day},5,won,Analytics Suite\r\n"
    history_import = create(world, text, preset="generic", options={})
    checked = services.history_import_check(history_import=history_import)
    assert checked.status == "invalid"
    assert any("deal id in the other crm" in e["message"] for e in checked.errors)
    with pytest.raises(ValidationError, match="closed date"):
        services.history_import_set_columns(
            history_import=history_import, columns={"external_id": "Ref"}
        )
    with pytest.raises(ValidationError, match="no column “Nope”"):
        services.history_import_set_columns(
            history_import=history_import, columns={"external_id": "Nope"}
        )
    updated = services.history_import_set_columns(
        history_import=history_import,
        columns={
            "external_id": "Ref",
            "company_name": "Client",
            "closed_date": "When",
            "amount": "Value",
            "stage": "Outcome",
            "product": "Item",
        },
    )
    checked = services.history_import_check(history_import=updated)
    # No owner column and no default owner; the empty reason of a won deal needs a decision.
    assert [e["column"] for e in checked.errors] == [
        "Owner (e-mail or name)",
        "Reason (or lost reason)",
    ]
    assert "no default owner" in checked.errors[0]["message"]
    assert "won reason “(no reason given)”" in checked.errors[1]["message"]


def test_a_skipped_row_does_not_block_the_file(world):
    rows = [sf_row(1), sf_row(2, Amount="lots", **{"Win/Loss Reason": "Spam lead"})]
    history_import = create(world, salesforce_csv(rows))
    services.history_import_save_mappings(
        actor=world,
        history_import=history_import,
        decisions=[services.Decision("reason", "lost", "spam lead", MappingAction.SKIP)],
    )
    checked = services.history_import_check(history_import=history_import)
    assert (checked.status, checked.rows_skipped, checked.deals_created) == ("checked", 1, 1)
