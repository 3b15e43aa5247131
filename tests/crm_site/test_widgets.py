"""The fast choice widgets draw exactly what Django's own widgets draw (whitespace aside)."""

import re

import pytest
from django import forms
from django.forms.boundfield import BoundWidget
from django.utils.html import escape

from crm_site.widgets import (
    FastCheckboxes,
    FastDateInput,
    FastNumberInput,
    FastSelect,
    FastTextInput,
)

CHOICES = [
    (None, "Unset"),
    ("", "Anyone"),
    (3, 'Ana <Admin> & "Ops"'),
    (12, "Bo O'Brien"),
    ("x", "Plain"),
]
GROUPED = [
    ("", "Any product"),
    ("Analytics & <BI>", [(1, "Dashboards"), (2, "Forecasting")]),
    ("Payments", [(3, "Checkout"), (4, "Payouts (retired)")]),
]


def squash(html: str) -> str:
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", str(html))).strip()


@pytest.mark.parametrize("choices", [CHOICES, GROUPED], ids=["flat", "grouped"])
@pytest.mark.parametrize("value", [None, "", 3, "12", "x", 4, "999", [3, 12]])
@pytest.mark.parametrize("attrs", [{"id": "id_owner"}, {"id": "id_f", "required": True}, {}])
def test_fast_select_draws_what_django_draws(choices, value, attrs):
    django_html = forms.Select(choices=choices).render("owner", value, attrs=attrs)
    fast_html = FastSelect(choices=choices).render("owner", value, attrs=attrs)
    assert squash(fast_html) == squash(django_html)


def test_fast_select_escapes_labels_and_group_names():
    html = FastSelect(choices=GROUPED + CHOICES).render("f", None, attrs={"id": "id_f"})
    assert "<BI>" not in html and "&lt;BI&gt;" in html and "&amp;" in html
    assert "<Admin>" not in html and "&quot;Ops&quot;" in html


STAGES = [("prospecting", "Prospecting"), ("won", "Won"), ("lost", "Lost <closed>")]


@pytest.mark.parametrize("value", [None, [], ["won"], ["won", "lost"], ["nope"]])
def test_fast_checkboxes_draw_djangos_boxes_as_a_run_of_labels(value):
    # What the pipeline template drew before: Django's own box (tag) inside a label per choice.
    widget = forms.CheckboxSelectMultiple(choices=STAGES)
    boxes = [
        BoundWidget(widget, data, None)
        for data in widget.subwidgets("stage", value, attrs={"id": "id_stage"})
    ]
    expected = "".join(
        f'<label for="{box.id_for_label}">{box.tag()} {escape(box.choice_label)}</label>'
        for box in boxes
    )
    fast_html = FastCheckboxes(choices=STAGES).render("stage", value, attrs={"id": "id_stage"})
    assert squash(fast_html) == squash(expected)
    assert "Lost &lt;closed&gt;" in fast_html


@pytest.mark.parametrize(
    "django_widget, fast_widget, value",
    [
        (forms.TextInput, FastTextInput, None),
        (forms.TextInput, FastTextInput, ""),
        (forms.TextInput, FastTextInput, 'Ana <Admin> & "Ops"'),
        (forms.NumberInput, FastNumberInput, "20000"),
        (forms.NumberInput, FastNumberInput, None),
        (forms.DateInput, FastDateInput, "2026-02-31"),
        (forms.DateInput, FastDateInput, None),
    ],
)
@pytest.mark.parametrize(
    "attrs",
    [
        {"type": "search", "placeholder": "Deal or company", "autocomplete": "off"},
        {"step": "any", "min": "0", "inputmode": "decimal"},
        {"type": "date"},
        {},
    ],
)
@pytest.mark.parametrize("render_attrs", [{"id": "id_q"}, {"id": "id_f", "required": True}, {}])
def test_fast_inputs_draw_what_django_draws(django_widget, fast_widget, value, attrs, render_attrs):
    django_html = django_widget(attrs=attrs).render("q", value, attrs=render_attrs)
    fast_html = fast_widget(attrs=attrs).render("q", value, attrs=render_attrs)
    assert squash(fast_html) == squash(django_html)


def test_fast_date_input_formats_a_date_as_django_does():
    import datetime

    day = datetime.date(2026, 3, 9)
    django_html = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d").render("d", day)
    fast_html = FastDateInput(attrs={"type": "date"}, format="%Y-%m-%d").render("d", day)
    assert fast_html == django_html.strip() and 'value="2026-03-09"' in fast_html
