"""
The close-with-reflection form, built from a prompt set's questions. Validation only: the
service checks the same rules again whatever produced the answers.
"""

import re

from django import forms

from crm_site.widgets import FastSelect
from reflections import selectors
from reflections.models import MULTI_KINDS, PromptSet, Question, QuestionKind, ReasonSource
from reflections.services import AnswerInput

UNKNOWN = "unknown"
UNKNOWN_LABEL = "Unknown / not sure"
NEEDS_ANSWER = {"required": "This question needs an answer."}
QUESTION_FIELD = re.compile(r"^q_(\d+)(_source)?$")


class ReflectionForm(forms.Form):
    def __init__(self, *args, prompt_set: PromptSet, outcome: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompt_set = prompt_set
        self.outcome = outcome
        self.questions: list[Question] = list(prompt_set.questions.all())
        reasons = list(selectors.reasons_for(outcome))
        self._reasons = {str(r.pk): r for r in reasons}
        self._competitors = None
        self._objections = None
        reason_choices = [(str(r.pk), r.label) for r in reasons] + [(UNKNOWN, UNKNOWN_LABEL)]
        for question in self.questions:
            name = f"q_{question.pk}"
            common = {
                "label": question.label,
                "help_text": question.help_text,
                "required": question.required,
                "error_messages": NEEDS_ANSWER,
            }
            kind = question.kind
            if kind == QuestionKind.PRIMARY_REASON:
                self.fields[name] = forms.ChoiceField(
                    choices=reason_choices, widget=forms.RadioSelect, **common
                )
                self.fields[f"{name}_source"] = forms.ChoiceField(
                    label="Where does this come from?",
                    choices=ReasonSource.choices,
                    widget=forms.RadioSelect,
                    required=False,
                )
            elif kind == QuestionKind.CONTRIBUTING_REASONS:
                self.fields[name] = forms.MultipleChoiceField(
                    choices=reason_choices, widget=forms.CheckboxSelectMultiple, **common
                )
            elif kind == QuestionKind.COMPETITOR:
                self.fields[name] = forms.ModelChoiceField(
                    queryset=selectors.active_competitors(),
                    empty_label="— nobody / not known —",
                    **common,
                )
            elif kind == QuestionKind.OBJECTIONS:
                self.fields[name] = forms.ModelMultipleChoiceField(
                    queryset=selectors.active_objections(),
                    widget=forms.CheckboxSelectMultiple,
                    **common,
                )
            elif kind == QuestionKind.SCALE:
                self.fields[name] = forms.TypedChoiceField(
                    choices=[(str(n), str(n)) for n in range(1, 6)],
                    coerce=int,
                    widget=forms.RadioSelect(attrs={"class": "scale"}),
                    **common,
                )
            elif kind == QuestionKind.YES_NO:
                self.fields[name] = forms.TypedChoiceField(
                    choices=[("1", "Yes"), ("0", "No")],
                    coerce=int,
                    widget=forms.RadioSelect,
                    **common,
                )
            else:
                self.fields[name] = forms.CharField(
                    max_length=2000,
                    strip=True,
                    widget=forms.Textarea(attrs={"rows": 3}),
                    **common,
                )

    def clean(self):
        cleaned = super().clean()
        own = {q.pk for q in self.questions}
        foreign = sorted(
            {
                int(m.group(1))
                for key in self.data
                if (m := QUESTION_FIELD.match(key)) and int(m.group(1)) not in own
            }
        )
        if foreign:
            raise forms.ValidationError(
                "This form carried answers to questions that are not part of it "
                f"(question {', '.join(map(str, foreign))}). Reload the page and try again.",
                code="foreign_question",
            )
        for question in self.questions:
            if question.kind != QuestionKind.PRIMARY_REASON:
                continue
            name = f"q_{question.pk}"
            if cleaned.get(name) and cleaned[name] != UNKNOWN and not cleaned.get(f"{name}_source"):
                self.add_error(
                    f"{name}_source", "Say whether the customer told you, or it is your own read."
                )
        return cleaned

    def answers(self) -> list[AnswerInput]:
        """The cleaned data as AnswerInputs for the service (call after is_valid())."""
        result: list[AnswerInput] = []
        for question in self.questions:
            name = f"q_{question.pk}"
            value = self.cleaned_data.get(name)
            if value in (None, "", []):
                continue
            kind = question.kind
            values = value if kind in MULTI_KINDS else [value]
            for item in values:
                answer = AnswerInput(question=question)
                if kind in (QuestionKind.PRIMARY_REASON, QuestionKind.CONTRIBUTING_REASONS):
                    if item == UNKNOWN:
                        answer.is_unknown = True
                    else:
                        answer.reason = self._reasons[item]
                    if kind == QuestionKind.PRIMARY_REASON:
                        answer.reason_source = self.cleaned_data.get(f"{name}_source") or ""
                elif kind == QuestionKind.COMPETITOR:
                    answer.competitor = item
                elif kind == QuestionKind.OBJECTIONS:
                    answer.objection = item
                elif kind in (QuestionKind.SCALE, QuestionKind.YES_NO):
                    answer.number = item
                else:
                    answer.text = item
                result.append(answer)
        return result

    def initial_from(self, reflection) -> None:
        """Pre-fill from an existing reflection (for amending it)."""
        grouped: dict[int, list] = {}
        for answer in reflection.answers.all():
            grouped.setdefault(answer.question_id, []).append(answer)
        for question in self.questions:
            answers = grouped.get(question.pk, [])
            if not answers:
                continue
            name = f"q_{question.pk}"
            kind = question.kind
            first = answers[0]
            if kind == QuestionKind.PRIMARY_REASON:
                self.initial[name] = UNKNOWN if first.is_unknown else str(first.reason_id)
                self.initial[f"{name}_source"] = first.reason_source
            elif kind == QuestionKind.CONTRIBUTING_REASONS:
                self.initial[name] = [
                    UNKNOWN if a.is_unknown else str(a.reason_id) for a in answers
                ]
            elif kind == QuestionKind.COMPETITOR:
                self.initial[name] = first.competitor_id
            elif kind == QuestionKind.OBJECTIONS:
                self.initial[name] = [a.objection_id for a in answers]
            elif kind in (QuestionKind.SCALE, QuestionKind.YES_NO):
                self.initial[name] = str(first.number)
            else:
                self.initial[name] = first.text


class CallDebriefForm(forms.Form):
    call_date = forms.DateField(
        label="Date of the call", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    # Drawn on every company page, with one option per contact and open deal there.
    contact = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="— nobody in particular —", widget=FastSelect
    )
    opportunity = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="Deal",
        empty_label="— not about one deal —",
        widget=FastSelect,
    )
    customer_said = forms.CharField(
        label="What did the customer say?",
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write down what the customer said."},
    )
    objections = forms.ModelMultipleChoiceField(
        queryset=None, required=False, label="Objections heard", widget=forms.CheckboxSelectMultiple
    )
    next_step = forms.CharField(label="Next step", max_length=255, required=False)
    high_card = forms.BooleanField(
        label="High card: everyone who talks to this customer should know this",
        required=False,
    )

    def __init__(self, *args, company, user, contacts=None, deals=None, objections=None, **kwargs):
        """
        `contacts`, `deals` and `objections`, when the page has read them already (the
        company's contacts, the open deals there the user may see, the active objections), are
        the options drawn; validation still reads the database. (A queryset is drawn through a
        server-side cursor on PostgreSQL: three round trips instead of one.)
        """
        from django.utils import timezone

        from customers.models import Contact
        from opportunities.models import OPEN_STAGES
        from opportunities.selectors import opportunities_visible_to

        super().__init__(*args, **kwargs)
        self.fields["call_date"].initial = timezone.localdate()
        # Only what the options show (a contact's and a deal's __str__), for the same reason.
        self.fields["contact"].queryset = (
            Contact.objects.filter(company=company).order_by("full_name").only("full_name")
        )
        self.fields["opportunity"].queryset = (
            opportunities_visible_to(user)
            .filter(company=company, stage__in=OPEN_STAGES)
            .only("title", "owner_id", "company_id")
        )
        self.fields["objections"].queryset = selectors.active_objections()
        for name, rows in (("contact", contacts), ("opportunity", deals)):
            if rows is not None:
                field = self.fields[name]
                field.widget.choices = [("", field.empty_label), *((r.pk, str(r)) for r in rows)]
        if objections is not None:
            self.fields["objections"].widget.choices = [(o.pk, str(o)) for o in objections]
