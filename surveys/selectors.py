"""Reads for buyer surveys: a deal's requests, a link's survey, and the buyer's own words."""

from django.db.models import Prefetch, QuerySet
from django.db.models.functions import Coalesce

from opportunities.models import Opportunity
from surveys import tokens
from surveys.models import SurveyAnswer, SurveyQuestionKind, SurveyRequest, SurveyStatus


def requests_of(opportunity: Opportunity) -> QuerySet[SurveyRequest]:
    """Every survey asked about this deal (one per close), newest first."""
    return SurveyRequest.objects.filter(opportunity=opportunity).select_related(
        "contact", "requested_by", "reflection"
    )


def survey_for_token(token: str) -> SurveyRequest | None:
    """The survey a link opens, with what its page shows; None for a link not made here."""
    found = tokens.read(token)
    if found is None:
        return None
    pk, nonce = found
    return (
        SurveyRequest.objects.select_related(
            "template", "reflection", "opportunity__company", "opportunity__product"
        )
        .prefetch_related("template__questions", "answers")
        .filter(pk=pk, nonce=nonce)
        .first()
    )


def buyer_words(deal_ids: list[int], limit: int = 5) -> list[SurveyRequest]:
    """
    The latest answered surveys of a company's deals (`deal_ids`, see
    opportunities.brief.deal_ids), with the answers the brief shows.
    """
    if not deal_ids:
        return []
    return list(
        SurveyRequest.objects.filter(opportunity_id__in=deal_ids, status=SurveyStatus.ANSWERED)
        .select_related("opportunity__product", "reflection", "contact")
        .prefetch_related(
            Prefetch(
                "answers",
                queryset=SurveyAnswer.objects.exclude(
                    question__kind=SurveyQuestionKind.OTHER_REASONS
                ).select_related("question", "reason", "competitor"),
            )
        )
        .order_by(
            # Not the answered-date index: walking it for these deals' few surveys read every
            # answered survey when the company's are all old (see company_reflections).
            Coalesce("answered_at", "answered_at").desc(),
            "-id",
        )[:limit]
    )
