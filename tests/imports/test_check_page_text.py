"""What the check page promises about how a file is saved depends on the file's size."""

import pytest

from imports import services

from .conftest import create, salesforce_csv, sf_row


@pytest.mark.parametrize(("single_rows", "whole"), [(50, True), (5, False)])
def test_the_check_page_says_how_the_file_will_be_saved(
    single_rows, whole, world, client, settings
):
    settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = single_rows
    settings.DEBRIEF_IMPORT_BATCH_ROWS = 4
    rows = [sf_row(n) for n in range(1, 10)] + [sf_row(10, Stage="Closed Sideways")]
    history_import = create(world, salesforce_csv(rows))
    services.history_import_check(history_import=history_import)  # what a job would find
    client.force_login(world)

    html = client.get(f"/admin/imports/historyimport/{history_import.pk}/check/").content
    text = html.decode()

    assert "1 row problem" in text
    assert ("a file this size is imported whole or not at all" in text) is whole
    assert ("saves this file 4 rows at a time" in text) is not whole
