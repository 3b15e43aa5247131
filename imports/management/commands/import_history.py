"""
Import closed deals from another CRM's CSV export, as the admin page does (see
docs/importing-history.md):

    manage.py import_history deals.csv --preset salesforce --system Salesforce \
        --as admin@example.com --default-owner sales.ops@example.com --dry-run
"""

import os
import sys

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from imports import selectors, services
from imports.models import HistoryImport, ImportStatus, MappingAction, MappingKind
from imports.parsing import DATE_FORMATS
from imports.presets import FIELDS_BY_NAME, PRESETS


class _DryRun(Exception):
    """Rolls the dry run's writes back."""


def _n(count: int, singular: str, plural: str = "") -> str:
    return f"{count:,} {singular if count == 1 else plural or singular + 's'}"


def _messages(exc: ValidationError) -> str:
    return " ".join(exc.messages)


class Command(BaseCommand):
    help = "Import closed deals and their reasons from a CRM's CSV export (a dry run first)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file.")
        parser.add_argument("--preset", required=True, choices=PRESETS)
        parser.add_argument("--system", required=True, help="The CRM's name, e.g. Salesforce.")
        parser.add_argument(
            "--as", dest="actor", required=True, help="E-mail of the admin importing it."
        )
        parser.add_argument("--default-owner", help="E-mail of the owner of unmatched deals.")
        parser.add_argument("--currency", default="GBP", choices=["GBP", "EUR", "USD"])
        parser.add_argument(
            "--date-format",
            choices=sorted(DATE_FORMATS),
            help="How slashed dates read: dmy (15/03/2024) or mdy (03/15/2024). ISO always works.",
        )
        parser.add_argument(
            "--column",
            action="append",
            default=[],
            metavar="FIELD=HEADER",
            help="Which column holds a field (repeatable), e.g. --column closed_date='Won time'.",
        )
        parser.add_argument(
            "--map-unknown",
            choices=["unknown", "skip"],
            help="What texts with no saved mapping and no exact match mean: with “unknown”, "
            "reasons become “Unknown”, but a product cannot be unknown, so unmapped products "
            "stop the command with a list of them (map them on the admin's import page, or use "
            "“skip”); with “skip”, the deals of every such text are left out. Saved for the "
            "next file.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file and write nothing."
        )

    def handle(self, *args, **opts):
        actor = User.objects.filter(email__iexact=opts["actor"].strip()).first()
        if actor is None or not actor.is_staff:
            raise CommandError(f"No active administrator has the e-mail {opts['actor']}.")
        owner = None
        if opts["default_owner"]:
            owner = User.objects.filter(email__iexact=opts["default_owner"].strip()).first()
            if owner is None:
                raise CommandError(f"No user has the e-mail {opts['default_owner']}.")
        columns = {}
        for item in opts["column"]:
            name, sep, header = item.partition("=")
            if not sep or name.strip() not in FIELDS_BY_NAME:
                raise CommandError(
                    f"--column {item}: write FIELD=HEADER with a field among "
                    f"{', '.join(FIELDS_BY_NAME)}."
                )
            columns[name.strip()] = header.strip()
        path = opts["file"]
        if not os.path.isfile(path):
            raise CommandError(f"There is no file {path}.")
        options = {"date_format": opts["date_format"]} if opts["date_format"] else {}
        self._stored = ""
        self._created = None
        try:
            if opts["dry_run"]:
                with transaction.atomic():
                    history_import = self._prepare(
                        actor, owner, path, opts, options, columns, dry_run=True
                    )
                    raise _DryRun
            history_import = self._prepare(actor, owner, path, opts, options, columns)
        except _DryRun:
            self.stdout.write("Dry run: nothing was saved.")
            return
        except ValidationError as exc:
            if not opts["dry_run"] and self._created is not None:
                # Nothing can come of this upload: cancel it, which deletes its stored file.
                services.history_import_cancel(actor=actor, history_import=self._created)
            raise CommandError(_messages(exc)) from None
        finally:
            if opts["dry_run"] and self._stored:
                default_storage.delete(self._stored)
        try:
            services.history_import_start(actor=actor, history_import=history_import, queue=False)
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        history_import = services.history_import_run(import_id=history_import.pk)
        self._report_run(history_import)

    def _prepare(self, actor, owner, path, opts, options, columns, dry_run=False):
        with open(path, "rb") as handle:
            history_import = services.history_import_create(
                actor=actor,
                uploaded_file=File(handle, name=os.path.basename(path)),
                system=opts["system"],
                preset=opts["preset"],
                default_owner=owner,
                default_currency=opts["currency"],
                options=options,
            )
        self._stored = history_import.file.name
        self._created = history_import
        if columns:
            history_import = services.history_import_set_columns(
                history_import=history_import, columns={**history_import.columns, **columns}
            )
        self._map_texts(actor, history_import, opts["map_unknown"])
        history_import = services.history_import_check(history_import=history_import)
        self._report_check(history_import)
        if history_import.status != ImportStatus.CHECKED:
            if not dry_run:
                services.history_import_cancel(actor=actor, history_import=history_import)
            raise CommandError("Nothing was imported: fix the rows above and run it again.")
        return history_import

    def _map_texts(self, actor, history_import: HistoryImport, map_unknown: str | None) -> None:
        """Saved mappings and exact matches stand; the other texts need --map-unknown."""
        open_rows = [
            row
            for row in selectors.value_rows(history_import)
            if row.saved is None
            and not (row.suggestion_action == MappingAction.MAP and row.score == 100)
        ]
        if not open_rows:
            return
        decisions, unresolved = [], []
        for row in open_rows:
            if map_unknown == "skip" or (
                map_unknown == "unknown" and row.kind == MappingKind.REASON
            ):
                decisions.append(
                    services.Decision(row.kind, row.outcome, row.key, map_unknown, None)
                )
            else:
                unresolved.append(row)
        if unresolved:
            self.stderr.write("These texts have no saved mapping and match nothing exactly:")
            for row in unresolved:
                where = f"{row.outcome.replace('_', ' ')} reason" if row.outcome else row.kind
                hint = (
                    f" (closest: {row.suggestion_label}, {row.score}%)"
                    if row.suggestion_action == MappingAction.MAP
                    else ""
                )
                self.stderr.write(f"  {where} “{row.text}” × {row.count}{hint}")
            services.history_import_cancel(actor=actor, history_import=history_import)
            raise CommandError(
                "Map them on the admin's import page (the mappings are saved for next time), "
                "or say what they mean with --map-unknown unknown|skip."
            )
        services.history_import_save_mappings(
            actor=actor, history_import=history_import, decisions=decisions
        )

    def _report_check(self, hi: HistoryImport) -> None:
        out = self.stdout if hi.status == ImportStatus.CHECKED else self.stderr
        out.write(
            f"Checked {hi.rows_total} rows: {hi.deals_created} deals to import, "
            f"{hi.deals_existing} already imported, {hi.rows_skipped} left out (open deals or "
            f"skipped texts), {hi.companies_created} new companies, {hi.contacts_created} new "
            f"contacts, {hi.suppressions_derived} suppressions, {hi.error_count} problems."
        )
        for warning in hi.check_warnings:
            self.stderr.write(f"Warning: {warning}")
        for error in hi.errors:
            column = f", column “{error['column']}”" if error.get("column") else ""
            out.write(f"  line {error['row']}{column}: {error['message']}")
        if hi.error_count > len(hi.errors):
            out.write(f"  … and {hi.error_count - len(hi.errors)} more.")
        sys.stdout.flush()

    def _report_run(self, hi: HistoryImport) -> None:
        if hi.status == ImportStatus.DONE:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Imported {_n(hi.deals_created, 'deal')} ({hi.deals_existing} already "
                    f"there, {_n(hi.rows_skipped, 'row')} left out): "
                    f"{_n(hi.companies_created, 'new company', 'new companies')}, "
                    f"{_n(hi.contacts_created, 'new contact')}, "
                    f"{_n(hi.suppressions_derived, 'suppression')} derived."
                )
            )
        else:
            for error in hi.errors:
                self.stderr.write(f"  line {error['row']}: {error['message']}")
            raise CommandError(
                f"The import stopped after {hi.rows_done} of {hi.rows_total} rows "
                f"({hi.get_status_display().lower()})."
            )
