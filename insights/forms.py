"""The dashboard's pickers: validation and normalisation of the query string only."""

import datetime

from django import forms

from insights.models import PeriodKind, Source
from insights.periods import Period
from reflections.models import Outcome

# Reports reach a few periods either side of the one shown (the trend, the previous period):
# a date at the edge of the calendar would have no such neighbours.
EARLIEST, LATEST = datetime.date(1900, 1, 1), datetime.date(9000, 12, 31)


class ReportForm(forms.Form):
    kind = forms.ChoiceField(choices=PeriodKind.choices, required=False)
    period = forms.DateField(required=False, input_formats=["%Y-%m-%d"])

    def clean_period(self):
        day = self.cleaned_data["period"]
        if day is not None and not EARLIEST <= day <= LATEST:
            raise forms.ValidationError("No report covers that date.")
        return day

    scope = forms.CharField(required=False, max_length=60)
    source = forms.ChoiceField(choices=Source.choices, required=False)


def report_params(data) -> dict:
    """
    Picker values from a query string, with defaults for anything missing or malformed
    (quarters, the whole organisation, every reason source; no period: the caller picks the
    latest). The period snaps to the one of the chosen kind that contains the given day, so
    switching between months and quarters keeps the date.
    """
    form = ReportForm(data)
    form.is_valid()  # a malformed value is left out of cleaned_data and defaults below
    cleaned = form.cleaned_data
    kind = cleaned.get("kind") or PeriodKind.QUARTER
    day = cleaned.get("period")
    return {
        "kind": kind,
        "period": Period.containing(kind, day) if day else None,
        "scope": (cleaned.get("scope") or "org").strip(),
        "source": cleaned.get("source") or Source.ALL,
    }


class LessonFilterForm(forms.Form):
    """My reflections: the period picker and the lessons' search and filters."""

    kind = forms.ChoiceField(choices=PeriodKind.choices, required=False)
    period = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    q = forms.CharField(required=False, max_length=100, strip=True, label="Search")
    line = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="Product line"
    )
    outcome = forms.ChoiceField(required=False, label="Outcome")

    def __init__(self, *args, lines=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["line"].choices = [("", "Every product line"), *lines]
        self.fields["outcome"].choices = [
            ("", "Every outcome"),
            *Outcome.choices,
        ]

    def clean_period(self):
        day = self.cleaned_data["period"]
        if day is not None and not EARLIEST <= day <= LATEST:
            raise forms.ValidationError("No report covers that date.")
        return day

    def clean_q(self):
        return self.cleaned_data["q"].replace("\x00", "")
