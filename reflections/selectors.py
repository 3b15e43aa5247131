"""Reads of reflections, scoped to the user where they belong to a deal."""

from django.db.models import Prefetch, Q, QuerySet

from accounts import access
from accounts.models import User
from opportunities.models import Competitor, Opportunity
from reflections.models import Answer, Objection, PromptSet, Question, Reason, Reflection


def prompt_set_for(outcome: str, product_line_id: int | None) -> PromptSet | None:
    """The most specific active prompt set: this product line's, else the default one."""
    candidates = (
        PromptSet.objects.filter(active=True, outcome=outcome)
        .filter(Q(product_line_id=product_line_id) | Q(product_line__isnull=True))
        .prefetch_related(Prefetch("questions", queryset=Question.objects.order_by("order", "id")))
    )
    best = None
    for prompt_set in candidates:
        if prompt_set.product_line_id is not None:
            return prompt_set
        best = prompt_set
    return best


def _answers_prefetch() -> Prefetch:
    return Prefetch(
        "answers",
        queryset=Answer.objects.select_related(
            "question", "reason", "competitor", "objection"
        ).order_by("question__order", "question_id", "id"),
    )


def reflections_of(opportunity: Opportunity) -> QuerySet[Reflection]:
    """Every reflection of a deal (current and reopened ones), newest first, with answers."""
    return (
        Reflection.objects.filter(opportunity=opportunity)
        .select_related("author", "prompt_set")
        .prefetch_related(_answers_prefetch())
        .order_by("-submitted_at", "-id")
    )


def reflection_for(user: User, reflection_id: int) -> Reflection:
    """A reflection on a deal the user may see, or 404."""
    return access.get_or_404(
        Reflection.objects.filter(access.owner_q(user, "opportunity__owner"))
        .select_related("opportunity", "opportunity__owner", "author", "prompt_set")
        .prefetch_related(_answers_prefetch(), "revisions", "revisions__edited_by"),
        pk=reflection_id,
    )


def reasons_for(outcome: str) -> QuerySet[Reason]:
    return Reason.objects.filter(outcome=outcome, active=True).order_by("order", "label")


def active_competitors() -> QuerySet[Competitor]:
    return Competitor.objects.filter(active=True).order_by("name")


def active_objections() -> QuerySet[Objection]:
    return Objection.objects.filter(active=True).order_by("order", "label")
