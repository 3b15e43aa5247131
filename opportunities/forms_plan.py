from django import forms

from opportunities.models import OPEN_STAGES


class StageMoveForm(forms.Form):
    to = forms.ChoiceField(choices=[(s.value, s.label) for s in OPEN_STAGES])


class NextStepForm(forms.Form):
    next_step = forms.CharField(
        label="Next step",
        max_length=255,
        required=False,
        help_text="What you will do next, in a few words. Leave empty to clear.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Send revised proposal"}),
    )
    next_step_due = forms.DateField(
        label="Due",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean(self):
        cleaned = super().clean()
        step = (cleaned.get("next_step") or "").strip()
        if cleaned.get("next_step_due") and not step:
            self.add_error("next_step", "Say what the next step is, not only when.")
        cleaned["next_step"] = step
        return cleaned
