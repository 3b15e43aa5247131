"""manage.py import_history: the same import from a shell."""

import pytest
from django.core.management import CommandError, call_command

from imports.models import HistoryImport, ValueMapping
from opportunities.models import Opportunity
from reflections.models import Origin, Reflection

from .conftest import export, salesforce_csv, sf_row


@pytest.fixture
def sf_file(tmp_path, world):
    path = tmp_path / "opportunities.csv"
    path.write_text(export("salesforce"), encoding="utf-8")
    return path


def _run(*args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("import_history", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_texts_without_a_decision_are_listed_and_nothing_is_imported(sf_file, world, sales_ops):
    with pytest.raises(CommandError, match="--map-unknown"):
        _run(
            sf_file,
            "--preset=salesforce",
            "--system=Salesforce",
            f"--as={world.email}",
            f"--default-owner={sales_ops.email}",
        )
    assert Opportunity.objects.count() == 0
    assert HistoryImport.objects.get().status == "cancelled"


def test_listing_shows_each_text_with_its_count_and_closest_reason(sf_file, world, capsys):
    from io import StringIO

    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_history",
            str(sf_file),
            "--preset=salesforce",
            "--system=Salesforce",
            f"--as={world.email}",
            stderr=err,
            stdout=StringIO(),
        )
    listing = err.getvalue()
    assert "lost reason “Too expensive” × 2 (closest: Price" in listing
    assert "lost reason “(no reason given)” × 1" in listing
    assert "“Product fit”" not in listing  # an exact label needs no decision


def test_dry_run_checks_and_writes_nothing(sf_file, world, sales_ops):
    out, _ = _run(
        sf_file,
        "--preset=salesforce",
        "--system=Salesforce",
        f"--as={world.email}",
        f"--default-owner={sales_ops.email}",
        "--map-unknown=unknown",
        "--dry-run",
    )
    assert "Checked 18 rows: 16 deals to import" in out
    assert "Dry run: nothing was saved." in out
    assert HistoryImport.objects.count() == 0
    assert ValueMapping.objects.count() == 0
    assert Opportunity.objects.count() == 0


def test_map_unknown_imports_and_saves_the_decisions(sf_file, world, sales_ops):
    out, _ = _run(
        sf_file,
        "--preset=salesforce",
        "--system=Salesforce",
        f"--as={world.email}",
        f"--default-owner={sales_ops.email}",
        "--map-unknown=unknown",
    )
    assert "Imported 16 deals (0 already there, 2 rows left out)" in out
    assert Reflection.objects.filter(origin=Origin.IMPORTED).count() == 16
    assert ValueMapping.objects.filter(action="unknown").exists()

    # The next run of the same file finds every deal already there and needs no flag.
    out, _ = _run(
        sf_file,
        "--preset=salesforce",
        "--system=Salesforce",
        f"--as={world.email}",
        f"--default-owner={sales_ops.email}",
    )
    assert "Imported 0 deals (16 already there" in out
    assert Opportunity.objects.count() == 16


def test_bad_rows_are_reported_with_line_and_column(tmp_path, world):
    path = tmp_path / "bad.csv"
    path.write_text(salesforce_csv([sf_row(1), sf_row(2, Amount="lots")]))
    out = err = ""
    with pytest.raises(CommandError, match="Nothing was imported"):
        from io import StringIO

        err_io = StringIO()
        try:
            call_command(
                "import_history",
                str(path),
                "--preset=salesforce",
                "--system=Salesforce",
                f"--as={world.email}",
                stderr=err_io,
                stdout=StringIO(),
            )
        finally:
            err = err_io.getvalue()
    assert "line 3, column “Amount”: “lots” is not an amount" in err, out
    assert Opportunity.objects.count() == 0


def test_columns_can_be_chosen_by_hand(tmp_path, world):
    path = tmp_path / "renamed.csv"
    path.write_text(salesforce_csv([sf_row(1)]).replace("Close Date", "Won/Lost On", 1))
    with pytest.raises(CommandError, match="no “Close Date” column"):
        _run(path, "--preset=salesforce", "--system=SF", f"--as={world.email}")
    out, _ = _run(
        path,
        "--preset=generic",
        "--system=SF",
        f"--as={world.email}",
        "--date-format=dmy",
        "--column=closed_date=Won/Lost On",
    )
    assert "Imported 1 deal (0 already there, 0 rows left out): 1 new company" in out


def test_only_an_admin_can_import(sf_file, rep):
    with pytest.raises(CommandError, match="No active administrator"):
        _run(sf_file, "--preset=salesforce", "--system=Salesforce", f"--as={rep.email}")


def test_a_refused_column_cancels_the_upload_and_deletes_its_file(
    tmp_path, world, settings, django_capture_on_commit_callbacks
):
    from pathlib import Path

    path = tmp_path / "opportunities.csv"
    path.write_text(salesforce_csv([sf_row(1)]), encoding="utf-8")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(CommandError, match="The file has no column “Closed On”"),
    ):
        _run(
            path,
            "--preset=salesforce",
            "--system=Salesforce",
            f"--as={world.email}",
            "--column=closed_date=Closed On",
        )
    assert HistoryImport.objects.get().status == "cancelled"
    assert not HistoryImport.objects.get().file
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert stored == []
