"""
Buyer surveys: after a close, the deal's contact may answer a short debrief of their own.

Templates are versioned like prompt sets: once a version has been answered it is frozen, and
a change makes a new version, so an old answer always shows the questions it answered. A
request asks one contact about one closing (one reflection); its answers are normalised like
a rep's (one row per reason, competitor or text) and reach the insights with the source
"buyer". The link a buyer opens carries the request's id and a random nonce, signed.
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from opportunities.models import Competitor, Opportunity
from reflections.models import Outcome, Reason, Reflection


class SurveyTemplate(models.Model):
    """The questions a buyer is asked after a deal closed with `outcome`."""

    family = models.SlugField(max_length=60, help_text="Shared by every version of this survey.")
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=120)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    intro = models.TextField(
        blank=True, help_text="Shown above the questions; keep it to a sentence or two."
    )
    send_on_close = models.BooleanField(
        default=False,
        help_text="Ask the deal's contact automatically when a deal closes with this outcome "
        "(the same refusals apply: do-not-contact, opted out, asked recently).",
    )
    active = models.BooleanField(
        default=True, help_text="Only one version per outcome is active at a time."
    )
    frozen_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set when first answered; a frozen version never changes again.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["outcome", "family", "-version"]
        constraints = [
            models.UniqueConstraint("family", "version", name="surveytemplate_family_version"),
            models.UniqueConstraint(
                "outcome", condition=Q(active=True), name="surveytemplate_one_active_per_outcome"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None


class SurveyQuestionKind(models.TextChoices):
    MAIN_REASON = "main_reason", "Main reason for the decision (one)"
    OTHER_REASONS = "other_reasons", "What else mattered (several)"
    CHOSEN_INSTEAD = "chosen_instead", "Who they chose instead"
    FREE_TEXT = "free_text", "Free text"


class SurveyQuestion(models.Model):
    template = models.ForeignKey(SurveyTemplate, on_delete=models.CASCADE, related_name="questions")
    kind = models.CharField(max_length=16, choices=SurveyQuestionKind.choices)
    label = models.CharField(max_length=200)
    help_text = models.CharField(max_length=300, blank=True)
    required = models.BooleanField(default=False)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["template", "order", "id"]
        constraints = [
            models.UniqueConstraint(
                "template", "kind", name="surveyquestion_one_of_each_kind_per_template"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class SurveyStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    SENT = "sent", "Sent"
    ANSWERED = "answered", "Answered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Could not be sent"
    WITHDRAWN = "withdrawn", "Withdrawn"


# A request in one of these counts as "asked" for the rule against asking too often.
ASKED = [SurveyStatus.REQUESTED, SurveyStatus.SENT, SurveyStatus.ANSWERED, SurveyStatus.BOUNCED]


def _nonce() -> str:
    return secrets.token_urlsafe(18)


class SurveyRequest(models.Model):
    """One contact asked about one closing of one deal."""

    reflection = models.OneToOneField(
        Reflection,
        on_delete=models.CASCADE,
        related_name="survey_request",
        help_text="The closing asked about; one survey per closing.",
    )
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="survey_requests"
    )
    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.CASCADE, related_name="survey_requests"
    )
    email = models.EmailField(help_text="Where it was sent: the contact's e-mail then.")
    template = models.ForeignKey(SurveyTemplate, on_delete=models.PROTECT, related_name="requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: asked by the template's rule when the deal closed.",
    )
    status = models.CharField(
        max_length=10, choices=SurveyStatus.choices, default=SurveyStatus.REQUESTED
    )
    nonce = models.CharField(max_length=32, unique=True, default=_nonce, editable=False)
    revision = models.PositiveIntegerField(
        default=0, help_text="How many times the buyer saved answers; a stale form is refused."
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    status_note = models.CharField(
        max_length=300, blank=True, help_text="Why it bounced, failed or was withdrawn."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["email", "created_at"], name="surveyrequest_email_idx"),
            models.Index(fields=["status", "answered_at"], name="surveyrequest_status_idx"),
            # The perception gap joins a period's reflections to their answered surveys.
            models.Index(
                fields=["reflection"],
                include=["id"],
                condition=Q(status=SurveyStatus.ANSWERED),
                name="surveyrequest_answered_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Survey to {self.email} about {self.opportunity}"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at


class SurveyAnswer(models.Model):
    """One answer of a buyer; "what else mattered" has one row per reason chosen."""

    request = models.ForeignKey(SurveyRequest, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(SurveyQuestion, on_delete=models.PROTECT, related_name="answers")
    reason = models.ForeignKey(
        Reason, on_delete=models.PROTECT, null=True, blank=True, related_name="buyer_answers"
    )
    competitor = models.ForeignKey(
        Competitor, on_delete=models.PROTECT, null=True, blank=True, related_name="buyer_answers"
    )
    text = models.TextField(blank=True)
    is_unknown = models.BooleanField(
        default=False, help_text="The buyer preferred not to say (or named nobody else)."
    )

    class Meta:
        ordering = ["question__order", "id"]
        indexes = [models.Index(fields=["reason"], name="surveyanswer_reason_idx")]

    def __str__(self) -> str:
        return f"{self.question}: {self.display_value}"

    @property
    def display_value(self) -> str:
        if self.reason is not None:
            return self.reason.buyer_wording
        if self.competitor is not None:
            return self.competitor.name
        if self.is_unknown:
            return "Preferred not to say"
        return self.text


class SurveyOptOut(models.Model):
    """Someone who asked never to be sent a survey again (by e-mail, across companies)."""

    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    request = models.ForeignKey(
        SurveyRequest,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The survey whose link they opted out from.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "survey opt-out"

    def __str__(self) -> str:
        return self.email
