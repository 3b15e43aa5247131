from django import forms

from customers.models import Contact
from suppressions import calllist


class CallListForm(forms.Form):
    file = forms.FileField(
        label="Call list (CSV)",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = (
            "UTF-8 CSV with a header row naming any of: email, phone, company_domain, and "
            f"optionally product. Up to {calllist.max_rows():,} rows, "
            f"{calllist.size_text(calllist.max_bytes())}; lists of more than "
            f"{calllist.inline_rows():,} rows are checked in the background."
        )


class OverrideRequestForm(forms.Form):
    justification = forms.CharField(
        label="Why should we pitch them now?",
        min_length=10,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Your manager reads this. E.g. “Their new CFO invited us to re-pitch.”",
    )


class OverrideDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline")])
    note = forms.CharField(
        label="Note to the rep",
        required=False,
        max_length=255,
        help_text="Needed when declining, so the rep knows what to do instead.",
    )


class LiftForm(forms.Form):
    reason = forms.CharField(
        label="Why does it end early?",
        max_length=255,
        help_text="Kept with the suppression's history.",
    )


class DoNotContactForm(forms.Form):
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.none(),
        required=False,
        empty_label="— the whole company —",
        help_text="Leave empty to stop contact with everyone at the company.",
    )
    note = forms.CharField(
        label="Reason",
        max_length=255,
        help_text="E.g. “Asked not to be called again” or “Legal request”.",
    )

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact"].queryset = Contact.objects.filter(company=company).order_by(
            "full_name"
        )
