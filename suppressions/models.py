"""
Contact suppression: rules that derive a suppression when a deal closes, the suppressions
themselves (derived, or do-not-contact entries), and reps' requests for an exception.

The tables kept their names from when these models lived in the customers app
(`customers_suppression` and so on): moving the app moved no rows.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from customers.models import Company, Contact


class TriggerOutcome(models.TextChoices):
    LOST = "lost", "Lost"
    WON = "won", "Won"
    NO_DECISION = "no_decision", "No decision"


class SuppressionScope(models.TextChoices):
    PRODUCT = "product", "Same product"
    PRODUCT_LINE = "product_line", "Same product line"
    ALL = "all", "Every product"


class SuppressionTarget(models.TextChoices):
    CONTACT = "contact", "The contact"
    COMPANY = "company", "The whole company"


class SuppressionReason(models.TextChoices):
    DECLINED = "declined", "Declined"
    BOUGHT = "bought", "Bought"
    NO_DECISION = "no_decision", "Ended without a decision"
    DO_NOT_CONTACT = "do_not_contact", "Do not contact"


REASON_FOR_OUTCOME = {
    TriggerOutcome.LOST: SuppressionReason.DECLINED,
    TriggerOutcome.WON: SuppressionReason.BOUGHT,
    TriggerOutcome.NO_DECISION: SuppressionReason.NO_DECISION,
}


class SuppressionRule(models.Model):
    """When a deal closes with `trigger_outcome`, stop pitching for `days` days."""

    name = models.CharField(max_length=120)
    trigger_outcome = models.CharField(max_length=12, choices=TriggerOutcome.choices)
    scope = models.CharField(max_length=12, choices=SuppressionScope.choices)
    target = models.CharField(max_length=8, choices=SuppressionTarget.choices)
    days = models.PositiveIntegerField(help_text="How many days, counting the closing day.")
    active = models.BooleanField(default=True, help_text="Applies to future closes only.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "customers_suppressionrule"
        ordering = ["trigger_outcome", "name"]
        constraints = [models.CheckConstraint(condition=Q(days__gte=1), name="rule_days_gte_1")]

    def __str__(self) -> str:
        return self.name


class Suppression(models.Model):
    """
    Do not pitch `company` (or only `contact`) the products in `scope` from `starts_on` to
    `until`, both days included, in the organisation's time zone. No `until` means
    indefinitely (do-not-contact). A lifted suppression no longer applies but is kept.
    """

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="suppressions")
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="suppressions",
        help_text="Empty: the whole company.",
    )
    scope = models.CharField(max_length=12, choices=SuppressionScope.choices)
    product = models.ForeignKey(
        "opportunities.Product", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    product_line = models.ForeignKey(
        "opportunities.ProductLine",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    note = models.CharField(max_length=255, blank=True)
    source_opportunity = models.ForeignKey(
        "opportunities.Opportunity",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="suppressions",
    )
    rule = models.ForeignKey(
        SuppressionRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="suppressions",
    )
    starts_on = models.DateField()
    until = models.DateField(
        null=True, blank=True, help_text="Last day included; empty: indefinite."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lift_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "customers_suppression"
        ordering = ["-starts_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="product", product__isnull=False, product_line__isnull=True)
                    | Q(scope="product_line", product__isnull=True, product_line__isnull=False)
                    | Q(scope="all", product__isnull=True, product_line__isnull=True)
                ),
                name="suppression_scope_matches_target",
            ),
            models.CheckConstraint(
                condition=Q(until__isnull=True) | Q(until__gte=F("starts_on")),
                name="suppression_until_after_start",
            ),
            models.CheckConstraint(
                condition=Q(lifted_at__isnull=True) | ~Q(lift_reason=""),
                name="suppression_lift_needs_reason",
            ),
        ]
        indexes = [
            # The checks: one company's suppressions that are not lifted. The call list reads
            # every one of them for thousands of companies at a time; with the columns it
            # needs included, PostgreSQL answers from the index alone.
            models.Index(
                fields=["company", "until"],
                include=[
                    "starts_on",
                    "contact",
                    "scope",
                    "product",
                    "product_line",
                    "reason",
                    "note",
                    "source_opportunity",
                    "rule",
                    "id",
                ],
                condition=Q(lifted_at__isnull=True),
                name="suppression_active_idx",
            ),
            models.Index(fields=["source_opportunity"], name="suppression_source_idx"),
        ]

    def __str__(self) -> str:
        who = self.contact or self.company
        return f"{who}: {self.get_reason_display()} ({self.get_scope_display().lower()})"

    def is_active_on(self, day) -> bool:
        return (
            self.lifted_at is None
            and self.starts_on <= day
            and (self.until is None or day <= self.until)
        )


class OverrideStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a manager"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


class SuppressionOverride(models.Model):
    """
    A rep's request to pitch despite a suppression, decided by a manager of the rep's team.
    An approval lets exactly one deal through: the one it names, or the first one the rep
    creates for that company, contact and product.
    """

    suppression = models.ForeignKey(Suppression, on_delete=models.PROTECT, related_name="overrides")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    product = models.ForeignKey("opportunities.Product", on_delete=models.PROTECT, related_name="+")
    opportunity = models.ForeignKey(
        "opportunities.Opportunity",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="suppression_overrides",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="override_requests"
    )
    justification = models.TextField()
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=10, choices=OverrideStatus.choices, default=OverrideStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=255, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "customers_suppressionoverride"
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["status", "requested_at"], name="override_status_idx"),
            models.Index(fields=["company", "product", "status"], name="override_pitch_idx"),
        ]

    def __str__(self) -> str:
        return f"Override for {self.company} ({self.get_status_display().lower()})"
