"""Reads of reflections, scoped to the user where they belong to a deal."""

from django.db.models import Prefetch, Q, QuerySet
from django.db.models.functions import Coalesce

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


# --- the pre-call brief -------------------------------------------------------------------------


def high_card_debriefs(company_id: int, limit: int = 5) -> list:
    """What everyone who talks to this customer should know, newest first."""
    from reflections.models import CallDebrief

    return list(
        CallDebrief.objects.filter(company_id=company_id, high_card=True)
        .select_related("author", "contact")
        .prefetch_related("objections")
        .order_by("-call_date", "-id")[:limit]
    )


def recent_debriefs(company_id: int, limit: int = 10) -> list:
    from reflections.models import CallDebrief

    return list(
        CallDebrief.objects.filter(company_id=company_id)
        .select_related("author", "contact", "opportunity")
        .prefetch_related("objections")
        .order_by("-call_date", "-id")[:limit]
    )


def brief_debriefs(company_id: int, *, pinned: int = 5, recent: int = 10) -> tuple[list, list]:
    """
    The brief's two lists of call debriefs in one query: the pinned high cards (as
    high_card_debriefs) and the latest debriefs (as recent_debriefs). The rows are the union of
    both, newest first, so the latest are the first `recent` and the pinned the first `pinned`
    high cards among them.
    """
    from reflections.models import CallDebrief

    of_company = CallDebrief.objects.filter(company_id=company_id)
    newest = of_company.order_by("-call_date", "-id")
    rows = list(
        # The company again outside: without it PostgreSQL tests every debrief against the two.
        of_company.filter(
            Q(pk__in=newest.values("pk")[:recent])
            | Q(pk__in=newest.filter(high_card=True).values("pk")[:pinned])
        )
        .select_related("author", "contact", "opportunity")
        .prefetch_related("objections")
        .order_by("-call_date", "-id")
    )
    return [d for d in rows if d.high_card][:pinned], rows[:recent]


def company_reflections(deal_ids: list[int], limit: int = 10) -> list[Reflection]:
    """
    Past outcomes at a customer with their reasons, across the organisation: the latest
    reflections of its deals (`deal_ids`, see opportunities.brief.deal_ids).
    """
    if not deal_ids:
        return []
    return list(
        Reflection.objects.filter(opportunity_id__in=deal_ids, current=True)
        .select_related(
            "opportunity", "opportunity__product", "opportunity__primary_competitor", "author"
        )
        .prefetch_related(_answers_prefetch())
        .order_by(
            # Not the closed-date index: walking it for the few rows of these deals read the
            # whole table when the company's reflections are all old (1.5 s on the
            # extra-large set). Sorting the deals' own rows (by their index) takes a few ms.
            Coalesce("closed_date", "closed_date").desc(),
            "-id",
        )[:limit]
    )


PLAYBOOK_MONTHS = 12
PLAYBOOK_OBJECTIONS = 5
PLAYBOOK_EXAMPLES = 3


def won_answers(objection_ids: list[int], product_ids: list[int] | None = None) -> dict:
    """
    Objection id -> the latest things won deals (of these products, or any) said about
    handling it, three at most, repeated wording dropped. One query.
    """
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    from reflections.models import Outcome, QuestionKind

    if not objection_ids:
        return {}
    examples = Answer.objects.filter(
        question__kind=QuestionKind.SHORT_TEXT,
        reflection__outcome=Outcome.WON,
        reflection__current=True,
        reflection__in_reports=True,
        reflection__answers__objection_id__in=objection_ids,
    )
    if product_ids is not None:
        examples = examples.filter(reflection__opportunity__product_id__in=product_ids)
    examples = (
        examples.exclude(text="")
        .annotate(
            about=F("reflection__answers__objection_id"),
            position=Window(
                RowNumber(),
                partition_by=F("reflection__answers__objection_id"),
                order_by=[F("reflection__closed_date").desc(), F("id").desc()],
            ),
        )
        # A few spare rows, so that repeated wording can be dropped and three remain.
        .filter(position__lte=PLAYBOOK_EXAMPLES * 3)
        # Newest first, so that the quotes kept are the latest (unordered, the rows came in
        # the model's default order: the oldest answers first).
        .order_by("about", "position")
        .values(
            "about", "text", "reflection__closed_date", "reflection__opportunity__product__name"
        )
    )
    by_objection: dict[int, list[dict]] = {}
    for row in examples:
        quotes = by_objection.setdefault(row["about"], [])
        if len(quotes) < PLAYBOOK_EXAMPLES and all(q["text"] != row["text"] for q in quotes):
            quotes.append(row)
    return by_objection


def objections_heard(*, today=None, limit: int, **where) -> list[dict]:
    """
    The objections heard most in current reflections of the last twelve months that match
    `where` (lookups on Answer), with the number of deals each came up in. One query.
    """
    import datetime

    from django.db.models import Count
    from django.utils import timezone

    since = (today or timezone.localdate()) - datetime.timedelta(days=365 * PLAYBOOK_MONTHS // 12)
    return list(
        Answer.objects.filter(
            objection__isnull=False,
            reflection__current=True,
            reflection__in_reports=True,
            reflection__closed_date__gte=since,
            **where,
        )
        .values("objection_id", "objection__label")
        .annotate(times=Count("reflection_id", distinct=True))
        .order_by("-times", "objection__label")[:limit]
    )


def objection_playbook(product_ids: list[int], today=None) -> list[dict]:
    """
    For these products: the objections heard most across the organisation in the last
    twelve months, each with the most recent things won deals said about handling it. Two
    queries whatever the data size, but they read a year of reflections: the company page
    shows the copy the insights rollup stores (insights.playbook), which equals this.
    """
    if not product_ids:
        return []
    heard = objections_heard(
        today=today, limit=PLAYBOOK_OBJECTIONS, reflection__opportunity__product_id__in=product_ids
    )
    if not heard:
        return []
    by_objection = won_answers([row["objection_id"] for row in heard], product_ids)
    return [
        {
            "label": row["objection__label"],
            "times": row["times"],
            "answers": by_objection.get(row["objection_id"], []),
        }
        for row in heard
    ]
