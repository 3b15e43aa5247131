from reflections.models import Outcome, QuestionKind, Reason


def question(prompt_set, kind):
    return prompt_set.questions.get(kind=kind)


def lost_answers(prompt_set, competitor=None, **overrides):
    """POST data answering the default lost set: price, customer said, plus a lesson."""
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    primary = question(prompt_set, QuestionKind.PRIMARY_REASON)
    data = {
        f"q_{primary.pk}": str(price.pk),
        f"q_{primary.pk}_source": "customer",
        f"q_{question(prompt_set, QuestionKind.SHORT_TEXT).pk}": "Bring finance in earlier.",
    }
    if competitor is not None:
        data[f"q_{question(prompt_set, QuestionKind.COMPETITOR).pk}"] = str(competitor.pk)
    data.update(overrides)
    return data
