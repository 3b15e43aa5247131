"""
The admin's forms for a history import: the upload, the columns and the value mapping. They
validate and normalise only; the views hand what they clean to imports.services.
"""

import hashlib

from django import forms
from django.contrib.auth import get_user_model

from customers.models import Region, Segment, SizeBand
from imports.models import MappingAction, MappingKind, Preset
from opportunities.models import Currency

# The system name each preset prefills ("imported from"); the generic preset asks for one.
PRESET_SYSTEMS = {
    Preset.SALESFORCE: "Salesforce",
    Preset.HUBSPOT: "HubSpot",
    Preset.PIPEDRIVE: "Pipedrive",
}

DATE_FORMATS = [
    ("dmy", "Day first: 31/01/2025 (UK and most of Europe)"),
    ("mdy", "Month first: 01/31/2025 (US)"),
]

UNKNOWN = MappingAction.UNKNOWN.value
SKIP = MappingAction.SKIP.value


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="The export as your old CRM wrote it: a CSV file with a header row, in "
        "UTF-8 or Windows-1252.",
    )
    preset = forms.ChoiceField(
        label="Kind of export",
        choices=Preset.choices,
        initial=Preset.SALESFORCE,
        help_text="Which CRM's export this is: its columns are recognised by name. Choose "
        "“Other CSV” to pick the columns yourself on the next page.",
    )
    system = forms.CharField(
        label="Imported from",
        max_length=60,
        required=False,
        help_text="The CRM's name as pages will show it (e.g. Salesforce). Left empty, the "
        "preset's name is used. Deals are recognised again by this name and their id there, "
        "so use the same name for every file from the same CRM.",
    )
    default_owner = forms.ModelChoiceField(
        label="Default owner",
        queryset=get_user_model().objects.none(),
        required=False,
        empty_label="— none: a row whose owner is unknown is an error —",
        help_text="Owns the deals whose owner e-mail matches nobody in Debrief.",
    )
    default_currency = forms.ChoiceField(
        label="Default currency",
        choices=Currency.choices,
        initial=Currency.GBP,
        help_text="For rows that name no currency.",
    )
    date_format = forms.ChoiceField(
        label="Date format",
        choices=DATE_FORMATS,
        initial="dmy",
        help_text="How the file writes dates such as 03/04/2025. Salesforce writes them as "
        "the exporting user's locale does; HubSpot and Pipedrive write 2025-04-03.",
    )
    segment = forms.ChoiceField(
        label="Segment",
        choices=[("", "— choose —"), *Segment.choices],
        help_text="For companies the file brings in, unless a column gives theirs.",
    )
    size_band = forms.ChoiceField(
        label="Size",
        choices=[("", "— choose —"), *SizeBand.choices],
        help_text="For companies the file brings in, unless a column gives theirs.",
    )
    region = forms.ChoiceField(
        label="Region",
        choices=[("", "— choose —"), *Region.choices],
        help_text="For companies the file brings in, unless a column gives theirs.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_owner"].queryset = (
            get_user_model().objects.filter(is_active=True).order_by("full_name", "email")
        )
        self.fields["default_owner"].label_from_instance = lambda u: f"{u.full_name} ({u.email})"

    def clean_system(self) -> str:
        return " ".join(self.cleaned_data["system"].split())

    def clean(self):
        cleaned = super().clean()
        preset = cleaned.get("preset")
        if preset and not cleaned.get("system"):
            if preset in PRESET_SYSTEMS:
                cleaned["system"] = PRESET_SYSTEMS[preset]
            else:
                self.add_error(
                    "system",
                    "Name the CRM this file comes from: deals are recognised again by this "
                    "name and their id there.",
                )
        return cleaned

    def options(self) -> dict[str, str]:
        """The import's options (HistoryImport.options) from the cleaned form."""
        return {
            name: self.cleaned_data[name]
            for name in ("date_format", "segment", "size_band", "region")
        }


class ColumnsForm(forms.Form):
    """One select per Debrief field, listing the file's headers."""

    def __init__(self, *args, fields, header: list[str], initial_columns: dict[str, str], **kw):
        super().__init__(*args, **kw)
        choices = [("", "— not in the file —"), *((h, h) for h in header)]
        for field in fields:
            self.fields[field.name] = forms.ChoiceField(
                label=field.label,
                choices=choices,
                required=field.required,
                help_text=field.help,
                initial=initial_columns.get(field.name, ""),
                error_messages={
                    "required": f"Choose the column that holds the {field.label.lower()}: "
                    "an import needs it.",
                },
            )

    def columns(self) -> dict[str, str]:
        """Debrief field -> header, for the fields that have a column."""
        return {name: header for name, header in self.cleaned_data.items() if header}


def value_field_name(kind: str, outcome: str, key: str) -> str:
    """A stable, HTML-safe name for a text's select: the page can change order, not names."""
    digest = hashlib.sha256(f"{kind}\x1f{outcome}\x1f{key}".encode()).hexdigest()[:16]
    return f"v_{digest}"


class MappingForm(forms.Form):
    """
    One select per distinct text of the file (ValueRow): what it means here. Choices are the
    outcome's reasons (or the products), "Unknown / not sure" (reasons only) and "Skip these
    deals". Each select is labelled by the text itself.
    """

    def __init__(self, *args, rows, reasons_by_outcome, products, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = rows
        self.row_fields: list[tuple[object, str]] = []
        for row in rows:
            name = value_field_name(row.kind, row.outcome, row.key)
            if row.kind == MappingKind.REASON:
                targets = [(str(r.pk), r.label) for r in reasons_by_outcome.get(row.outcome, ())]
                extra = [(UNKNOWN, "Unknown / not sure"), (SKIP, "Skip these deals")]
            else:
                targets = [(str(p.pk), str(p)) for p in products]
                extra = [(SKIP, "Skip these deals")]
            self.fields[name] = forms.ChoiceField(
                label=row.text,
                choices=[("", "— choose —"), *targets, *extra],
                initial=self._initial(row),
                error_messages={
                    "required": "Choose what this means here, or skip these deals.",
                    "invalid_choice": "That choice is no longer available: choose again.",
                },
            )
            self.row_fields.append((row, name))

    @staticmethod
    def _initial(row) -> str:
        saved = row.saved
        if saved is not None:
            if saved.action == MappingAction.MAP:
                target = saved.reason_id if row.kind == MappingKind.REASON else saved.product_id
                return str(target)
            return saved.action
        if row.suggestion_action == MappingAction.MAP and row.suggestion_id:
            return str(row.suggestion_id)
        if row.suggestion_action in (UNKNOWN, SKIP):
            return row.suggestion_action
        return ""

    def decisions(self):
        """The cleaned choices as (row, action, target_id)."""
        for row, name in self.row_fields:
            value = self.cleaned_data[name]
            if value in (UNKNOWN, SKIP):
                yield row, value, None
            else:
                yield row, MappingAction.MAP.value, int(value)


class InReportsForm(forms.Form):
    in_reports = forms.TypedChoiceField(
        choices=[("true", "Count it"), ("false", "Leave it out")],
        coerce=lambda value: value == "true",
    )
