"""
Contact suppression: rules that derive a suppression when a deal closes, the suppressions
themselves (derived, or do-not-contact entries), and reps' requests for an exception.

The tables kept their names from when these models lived in the customers app
(`customers_suppression` and so on): moving the app moved no rows.
"""

import secrets

from django.conf import settings
from django.core.validators import URLValidator
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


# --- the change feed and outbound webhooks (feed.py, webhooks.py) -----------------------------


class CurrentTransactionId(models.Func):
    """
    The writing transaction's id on PostgreSQL (pg_current_xact_id(), 64 bits, never wraps);
    0 elsewhere: SQLite has one writer at a time, so its id order is already commit order.
    Used as a column default, so that every insert (bulk ones too) stamps it for free.
    """

    output_field = models.BigIntegerField()
    arity = 0

    def as_sql(self, compiler, connection, **extra_context):
        return "0", []

    def as_postgresql(self, compiler, connection, **extra_context):
        return "(pg_current_xact_id()::text::bigint)", []


class ChangeKind(models.TextChoices):
    STARTED = "started", "Started"
    LIFTED = "lifted", "Lifted or withdrawn"
    ENDED = "ended", "Ended (its last day passed)"


class SuppressionChange(models.Model):
    """
    One entry of the append-only change log behind the pull feed and the webhooks: a
    suppression started, was lifted (or withdrawn by a rule rebuild, which deletes it), or
    ended because its last day passed. The row keeps a snapshot of what a dialler or a
    marketing database needs to act on it, so that it still reads right after the suppression,
    its contact or its product changed or went away. Written only by feed.py, in the
    transaction that made the change; never edited.
    """

    kind = models.CharField(max_length=8, choices=ChangeKind.choices)
    # No database constraint: a withdrawn suppression is deleted, its changes stay.
    suppression = models.ForeignKey(
        Suppression,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="changes",
    )
    occurred_at = models.DateTimeField()
    txid = models.BigIntegerField(
        db_default=CurrentTransactionId(),
        editable=False,
        help_text="The writing transaction (PostgreSQL); orders the feed by commit.",
    )
    company_pk = models.BigIntegerField("company id")
    company_domain = models.CharField(max_length=253, blank=True)
    contact_pk = models.BigIntegerField("contact id", null=True, blank=True)
    contact_email = models.CharField("contact e-mail", max_length=254, blank=True)
    contact_phone = models.CharField(max_length=40, blank=True)
    scope = models.CharField(max_length=12, choices=SuppressionScope.choices)
    product_name = models.CharField(max_length=100, blank=True)
    product_line_name = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    starts_on = models.DateField()
    until = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["txid", "id"]
        constraints = [
            # A suppression starts, is lifted and ends at most once: recording twice (the
            # daily "ended" run, a lift racing a reopen) keeps the first.
            models.UniqueConstraint(fields=["suppression", "kind"], name="change_once_per_kind"),
        ]
        indexes = [models.Index(fields=["txid", "id"], name="change_feed_order_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: suppression {self.suppression_id}"


def _webhook_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class WebhookEndpoint(models.Model):
    """
    An outside receiver (a dialler, a marketing database) told of every suppression change.
    The secret signs each delivery; it is stored because signing needs it, shown once in the
    admin, and never put in a delivery. An endpoint whose deliveries fail
    DEBRIEF_WEBHOOK_DISABLE_AFTER times in a row is disabled, with the reason.
    """

    name = models.CharField(max_length=120, help_text="Who receives it, e.g. “Dialler (EU)”.")
    url = models.URLField(
        "URL",
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="An http:// or https:// address that takes a POST of JSON.",
    )
    secret = models.CharField(max_length=80, default=_webhook_secret, editable=False)
    active = models.BooleanField(default=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Given up"


class WebhookDelivery(models.Model):
    """One change sent (or to be sent) to one endpoint, with its attempts: the delivery log."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    change = models.ForeignKey(
        SuppressionChange, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveIntegerField("last HTTP status", null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Also the claim: an attempt moves it ahead by its timeout, so that a second worker given
    # the same delivery does not send it at the same time.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "change"], name="delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="delivery_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Change {self.change_id} to {self.endpoint_id}: {self.get_status_display()}"


# --- call-list jobs (jobs.py) ------------------------------------------------------------------


class CallListJobStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Checking"
    DONE = "done", "Checked"
    FAILED = "failed", "Stopped: some parts failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired: the checked file was deleted"


class CallListChunkStatus(models.TextChoices):
    QUEUED = "queued", "Waiting"
    RUNNING = "running", "Checking"
    DONE = "done", "Checked"
    FAILED = "failed", "Failed"


class CallListJob(models.Model):
    """
    A call list too large to answer at once, checked in the background (suppressions.jobs): the
    uploaded file under MEDIA_ROOT, its layout as validated, and its chunks. Belongs to the
    person who uploaded it, or to the API token that sent it; its checked file is kept until
    `expires_at`, then deleted. Paths are relative to MEDIA_ROOT and never served directly.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="call_list_jobs",
    )
    api_token = models.ForeignKey(
        "accounts.ApiToken",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="call_list_jobs",
    )
    file_name = models.CharField(max_length=255, help_text="The uploaded file's own name.")
    path = models.CharField(max_length=255, blank=True, help_text="The uploaded file.")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(help_text="Bytes uploaded.")
    encoding = models.CharField(max_length=16)
    layout = models.JSONField(help_text="Header, known columns and encodings, as validated.")
    rows = models.PositiveIntegerField()
    status = models.CharField(
        max_length=10, choices=CallListJobStatus.choices, default=CallListJobStatus.QUEUED
    )
    counts = models.JSONField(
        default=dict, blank=True, help_text="What the check found (rows, by reason, problems)."
    )
    error = models.CharField(max_length=500, blank=True)
    result_path = models.CharField(max_length=255, blank=True)
    result_size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        help_text="When its files are deleted: DEBRIEF_CALLLIST_KEEP_HOURS after it was "
        "uploaded, and again after it was checked."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "call-list job"
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=False, api_token__isnull=True)
                | Q(owner__isnull=True, api_token__isnull=False),
                name="calllist_job_one_owner",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="calllist_job_owner_idx"),
            models.Index(fields=["status", "expires_at"], name="calllist_job_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display().lower()})"


class CallListChunk(models.Model):
    """
    One part of a job's file: whole records between two byte offsets, checked by one task into
    its own part file. A failed chunk is checked again alone.
    """

    job = models.ForeignKey(CallListJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    start = models.PositiveBigIntegerField(help_text="Byte offset of its first record.")
    end = models.PositiveBigIntegerField(help_text="Byte offset after its last record.")
    first_row = models.PositiveIntegerField(help_text="Row number of its first record.")
    rows = models.PositiveIntegerField()
    status = models.CharField(
        max_length=10, choices=CallListChunkStatus.choices, default=CallListChunkStatus.QUEUED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    part_path = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint("job", "index", name="calllist_chunk_once"),
        ]

    def __str__(self) -> str:
        return f"Part {self.index + 1} of {self.job}"
