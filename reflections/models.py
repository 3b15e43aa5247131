"""
Reflections: the short structured "why did we win / lose?" answered when a deal closes.

Prompt sets are versioned. Once a version has been answered it is frozen; editing it creates a
new version, so an old reflection always shows exactly the questions it answered. Answers are
normalised (one row per answer, with a reason / competitor / objection / number / text column)
so that insights are SQL aggregations.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from opportunities.models import Competitor, Opportunity, ProductLine


class Outcome(models.TextChoices):
    WON = "won", "Won"
    LOST = "lost", "Lost"
    NO_DECISION = "no_decision", "No decision"


class Reason(models.Model):
    """
    Why a deal was won, lost or ended without a decision. A reason in use is never deleted,
    only retired; a retired reason can be merged into another so that trends stay continuous
    (reports count it under `merged_into`, the answer keeps the original).
    """

    label = models.CharField(max_length=100)
    buyer_label = models.CharField(
        "wording for buyers",
        max_length=150,
        blank=True,
        help_text="How buyer surveys put this reason, from the buyer's side "
        "(e.g. “Your price” becomes “The price”). Empty: the label.",
    )
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    active = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=100)
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_reasons",
        help_text="Reports count this retired reason under the one chosen here.",
    )

    class Meta:
        ordering = ["outcome", "order", "label"]
        constraints = [
            models.UniqueConstraint("outcome", "label", name="reason_label_per_outcome"),
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | Q(active=False),
                name="reason_merged_only_when_retired",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_outcome_display().lower()})"

    @property
    def buyer_wording(self) -> str:
        return self.buyer_label or self.label


class Objection(models.Model):
    """Something customers push back with (price too high, missing integration, ...)."""

    label = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["order", "label"]

    def __str__(self) -> str:
        return self.label


class PromptSet(models.Model):
    """
    The questions asked when a deal closes with `outcome`, optionally only for one product
    line (the most specific active set wins). `family` ties the versions of one set together.
    """

    family = models.SlugField(max_length=60, help_text="Shared by every version of this set.")
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=120)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    product_line = models.ForeignKey(
        ProductLine,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="prompt_sets",
        help_text="Leave empty for the organisation-wide default of this outcome.",
    )
    active = models.BooleanField(
        default=True, help_text="Only one version of a family is active at a time."
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
            models.UniqueConstraint("family", "version", name="promptset_family_version"),
            models.UniqueConstraint(
                "family", condition=Q(active=True), name="promptset_one_active_version"
            ),
        ]
        indexes = [models.Index(fields=["outcome", "active"], name="promptset_outcome_idx")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None


class QuestionKind(models.TextChoices):
    PRIMARY_REASON = "primary_reason", "Primary reason (one, with its source)"
    CONTRIBUTING_REASONS = "contributing_reasons", "Contributing reasons (several)"
    COMPETITOR = "competitor", "Competitor"
    OBJECTIONS = "objections", "Objections heard (several)"
    SCALE = "scale", "Scale 1–5"
    YES_NO = "yes_no", "Yes / no"
    SHORT_TEXT = "short_text", "Short text"


MULTI_KINDS = {QuestionKind.CONTRIBUTING_REASONS, QuestionKind.OBJECTIONS}


class Question(models.Model):
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="questions")
    kind = models.CharField(max_length=24, choices=QuestionKind.choices)
    label = models.CharField(max_length=200)
    help_text = models.CharField(max_length=300, blank=True)
    required = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["prompt_set", "order", "id"]
        constraints = [
            models.UniqueConstraint(
                "prompt_set",
                condition=Q(kind="primary_reason"),
                name="question_one_primary_reason_per_set",
            ),
        ]

    def __str__(self) -> str:
        return self.label


class ReasonSource(models.TextChoices):
    CUSTOMER = "customer", "The customer said so"
    REP = "rep", "My own read"


class Origin(models.TextChoices):
    ANSWERED = "answered", "Answered in Debrief"
    IMPORTED = "imported", "Imported from another CRM"


class Reflection(models.Model):
    """
    One reflection per closing of a deal. A deal that is reopened keeps its reflection in
    history (`current` turns false); closing it again writes a new one.

    An imported reflection (`origin` "imported") was brought in from another CRM's export by
    an admin (its `author`): no rep answered it, and pages say so. `in_reports` lets an admin
    leave an import out of the insights; answered reflections are always counted.
    """

    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="reflections"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reflections"
    )
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.PROTECT, related_name="reflections")
    # Copies of the deal at closing time, so reports group by what was true then.
    closed_date = models.DateField()
    current = models.BooleanField(default=True)
    submitted_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.ANSWERED)
    in_reports = models.BooleanField(
        "counted in reports",
        default=True,
        help_text="Imported history can be left out of the insights, one import at a time.",
    )

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            # Closing twice is impossible: at most one current reflection per deal.
            models.UniqueConstraint(
                "opportunity", condition=Q(current=True), name="reflection_one_current_per_deal"
            ),
        ]
        indexes = [
            models.Index(fields=["outcome", "closed_date"], name="reflection_outcome_date_idx"),
            models.Index(fields=["closed_date"], name="reflection_closed_date_idx"),
            # The dashboard's quotes: the newest current reflections first, read until each
            # reason has its three answers.
            models.Index(
                fields=["submitted_at"],
                condition=Q(current=True),
                name="reflection_submitted_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()}: {self.opportunity}"


class Answer(models.Model):
    """
    One answer to one question. Multi-choice questions (contributing reasons, objections)
    have one row per choice. `is_unknown` is the honest "Unknown / not sure".
    """

    reflection = models.ForeignKey(Reflection, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="answers")
    reason = models.ForeignKey(
        Reason, on_delete=models.PROTECT, null=True, blank=True, related_name="answers"
    )
    reason_source = models.CharField(max_length=10, choices=ReasonSource.choices, blank=True)
    competitor = models.ForeignKey(
        Competitor, on_delete=models.PROTECT, null=True, blank=True, related_name="answers"
    )
    objection = models.ForeignKey(
        Objection, on_delete=models.PROTECT, null=True, blank=True, related_name="answers"
    )
    number = models.SmallIntegerField(null=True, blank=True)
    text = models.TextField(blank=True)
    is_unknown = models.BooleanField(default=False)

    class Meta:
        ordering = ["question__order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(number__isnull=True) | Q(number__gte=0, number__lte=5),
                name="answer_number_in_range",
            ),
        ]
        indexes = [
            models.Index(fields=["reason"], name="answer_reason_idx"),
            models.Index(fields=["objection"], name="answer_objection_idx"),
            models.Index(fields=["competitor"], name="answer_competitor_idx"),
            # A reflection's reasons without visiting the table (the perception gap and the
            # dashboard's quotes read the main reason of each reflection they meet).
            models.Index(
                fields=["reflection"],
                include=["question", "reason", "reason_source"],
                condition=Q(reason__isnull=False),
                name="answer_reflection_reason_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question}: {self.display_value}"

    @property
    def display_value(self) -> str:
        if self.is_unknown:
            return "Unknown / not sure"
        for value in (self.reason, self.competitor, self.objection):
            if value is not None:
                return str(value.label if hasattr(value, "label") else value)
        if self.number is not None:
            if self.question.kind == QuestionKind.YES_NO:
                return "Yes" if self.number else "No"
            return str(self.number)
        return self.text


class ReflectionRevision(models.Model):
    """What a reflection said before an edit, kept so that history never changes silently."""

    reflection = models.ForeignKey(Reflection, on_delete=models.CASCADE, related_name="revisions")
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    edited_at = models.DateTimeField(default=timezone.now)
    answers = models.JSONField(help_text="The answers before this edit, question by question.")

    class Meta:
        ordering = ["-edited_at", "-id"]

    def __str__(self) -> str:
        return f"Revision of {self.reflection_id} at {self.edited_at:%Y-%m-%d %H:%M}"


class CallDebrief(models.Model):
    """A quick note after a call or meeting that mattered. High-card ones are pinned."""

    company = models.ForeignKey(
        "customers.Company", on_delete=models.PROTECT, related_name="debriefs"
    )
    contact = models.ForeignKey(
        "customers.Contact",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="debriefs",
    )
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.SET_NULL, null=True, blank=True, related_name="debriefs"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="debriefs"
    )
    call_date = models.DateField()
    customer_said = models.TextField("what the customer said")
    objections = models.ManyToManyField(Objection, blank=True, related_name="debriefs")
    next_step = models.CharField(max_length=255, blank=True)
    high_card = models.BooleanField(
        default=False, help_text="Something everyone who talks to this customer should know."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-call_date", "-id"]
        indexes = [
            models.Index(fields=["company", "-high_card", "-call_date"], name="debrief_company_idx")
        ]

    def __str__(self) -> str:
        return f"{self.company} · {self.call_date}"
