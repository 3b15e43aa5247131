"""The buyer's form, built from the survey's questions; validation and normalisation only."""

from django import forms
from django.core.exceptions import ValidationError

from opportunities.models import Competitor
from reflections.models import Reason
from surveys.models import SurveyQuestionKind, SurveyRequest
from surveys.services import TEXT_LIMIT, BuyerAnswer

UNKNOWN = "unknown"


class ReasonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.buyer_wording

    def to_python(self, value):
        # A forged id too large for the database is an invalid choice, not a server error.
        try:
            return super().to_python(value)
        except OverflowError:
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            ) from None


class ReasonMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.buyer_wording

    def _check_values(self, value):
        try:
            return super()._check_values(value)
        except OverflowError:
            raise ValidationError(
                self.error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": "?"},
            ) from None


class BuyerSurveyForm(forms.Form):
    """
    One field per question, named q_<id>. The main reason offers the outcome's reasons in the
    buyer's wording and "I'd rather not say"; "who instead" offers the competitors and "Nobody".
    """

    revision = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=2**31 - 1)

    def __init__(self, *args, survey: SurveyRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.survey = survey
        self.questions = list(survey.template.questions.all())
        outcome = survey.reflection.outcome
        reasons = Reason.objects.filter(outcome=outcome, active=True).order_by("order", "label")
        competitors = Competitor.objects.filter(active=True).order_by("name")
        for question in self.questions:
            name = f"q_{question.pk}"
            common = {"label": question.label, "help_text": question.help_text}
            if question.kind == SurveyQuestionKind.MAIN_REASON:
                self.fields[name] = forms.ChoiceField(
                    choices=[(str(r.pk), r.buyer_wording) for r in reasons]
                    + [(UNKNOWN, "I'd rather not say")],
                    widget=forms.RadioSelect,
                    required=question.required,
                    **common,
                )
                self.fields[name].reasons = {str(r.pk): r for r in reasons}
            elif question.kind == SurveyQuestionKind.OTHER_REASONS:
                self.fields[name] = ReasonMultipleChoiceField(
                    queryset=reasons,
                    widget=forms.CheckboxSelectMultiple,
                    required=question.required,
                    **common,
                )
            elif question.kind == SurveyQuestionKind.CHOSEN_INSTEAD:
                self.fields[name] = forms.ChoiceField(
                    choices=[("", "Choose…")]
                    + [(str(c.pk), c.name) for c in competitors]
                    + [(UNKNOWN, "Nobody / I'd rather not say")],
                    required=question.required,
                    **common,
                )
                self.fields[name].competitors = {str(c.pk): c for c in competitors}
            else:
                self.fields[name] = forms.CharField(
                    widget=forms.Textarea(attrs={"rows": 4}),
                    max_length=TEXT_LIMIT,
                    required=question.required,
                    **common,
                )
        if not self.is_bound:
            self.initial.update(self._initial())

    def _initial(self) -> dict:
        initial: dict = {"revision": self.survey.revision}
        by_question: dict[int, list] = {}
        for answer in self.survey.answers.all():
            by_question.setdefault(answer.question_id, []).append(answer)
        for question in self.questions:
            mine = by_question.get(question.pk, [])
            if not mine:
                continue
            name = f"q_{question.pk}"
            first = mine[0]
            if question.kind == SurveyQuestionKind.MAIN_REASON:
                initial[name] = UNKNOWN if first.is_unknown else str(first.reason_id)
            elif question.kind == SurveyQuestionKind.OTHER_REASONS:
                initial[name] = [a.reason_id for a in mine if a.reason_id]
            elif question.kind == SurveyQuestionKind.CHOSEN_INSTEAD:
                initial[name] = UNKNOWN if first.is_unknown else str(first.competitor_id)
            else:
                initial[name] = first.text
        return initial

    def answers(self) -> list[BuyerAnswer]:
        """The cleaned data as the service takes it."""
        result = []
        for question in self.questions:
            name = f"q_{question.pk}"
            value = self.cleaned_data.get(name)
            if value in (None, "", []):
                continue
            if question.kind == SurveyQuestionKind.MAIN_REASON:
                reason = self.fields[name].reasons.get(value)
                result.append(BuyerAnswer(question, reason=reason, is_unknown=reason is None))
            elif question.kind == SurveyQuestionKind.OTHER_REASONS:
                result.extend(BuyerAnswer(question, reason=r) for r in value)
            elif question.kind == SurveyQuestionKind.CHOSEN_INSTEAD:
                competitor = self.fields[name].competitors.get(value)
                result.append(
                    BuyerAnswer(question, competitor=competitor, is_unknown=competitor is None)
                )
            else:
                result.append(BuyerAnswer(question, text=value))
        return result
