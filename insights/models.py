"""
Insights: report facts rolled up from reflections, the runs that build them, and the
bookkeeping that lets a burst of closes share one refresh.

Facts are aggregates only (per period, scope and dimension); nothing here is per person, so no
report can rank reps. The minimum slice size is applied when facts are read, so changing it
needs no rebuild.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reflections.models import Outcome


class PeriodKind(models.TextChoices):
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"


class ScopeKind(models.TextChoices):
    ORG = "org", "Organisation"
    TEAM = "team", "Team"
    PRODUCT_LINE = "product_line", "Product line"
    SEGMENT = "segment", "Customer segment"


class Dimension(models.TextChoices):
    SUMMARY = "summary", "Summary"
    PRIMARY_REASON_WON = "primary_reason_won", "Main reasons we won"
    PRIMARY_REASON_LOST = "primary_reason_lost", "Main reasons we lost"
    PRIMARY_REASON_NO_DECISION = "primary_reason_no_decision", "Main reasons for no decision"
    CONTRIBUTING_REASON = "contributing_reason", "Contributing reasons"
    COMPETITOR = "competitor", "Competitors"
    OBJECTION = "objection", "Objections heard"
    SEGMENT = "segment", "Customer segments"


class Source(models.TextChoices):
    """Who the main reason came from; only primary-reason facts are split."""

    ALL = "all", "Everyone"
    CUSTOMER = "customer", "The customer said so"
    REP = "rep", "The rep's own read"
    BUYER = "buyer", "What buyers said (surveys)"


class Test(models.TextChoices):
    FISHER = "fisher", "Fisher's exact test"
    Z = "z", "Two-proportion z-test"


class InsightFact(models.Model):
    """
    One aggregated number set for one period, scope and dimension key, e.g. "losses with
    Price as the main reason, team North, Q2 2026". `rate` is the proportion compared with
    the previous period: the share of `base` for reasons and objections, the win rate for the
    summary, competitors and segments.
    """

    period_kind = models.CharField(max_length=8, choices=PeriodKind.choices)
    period_start = models.DateField()
    scope_kind = models.CharField(max_length=12, choices=ScopeKind.choices)
    scope_key = models.CharField(
        max_length=40, blank=True, help_text="Team or product line id, segment code; empty: org."
    )
    dimension = models.CharField(max_length=28, choices=Dimension.choices)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.ALL)
    key = models.CharField(max_length=40, blank=True, help_text="Reason, competitor, ... id.")
    label = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(
        max_length=12,
        choices=Outcome.choices,
        blank=True,
        help_text="For reason rows: the outcome the reason explains.",
    )

    deals = models.PositiveIntegerField(default=0, help_text="Closed deals this row counts.")
    won = models.PositiveIntegerField(default=0)
    lost = models.PositiveIntegerField(default=0)
    no_decision = models.PositiveIntegerField(default=0)
    base = models.PositiveIntegerField(default=0, help_text="Denominator of the rate.")
    rate = models.FloatField(null=True, blank=True)
    share = models.FloatField(null=True, blank=True)
    win_rate = models.FloatField(null=True, blank=True)
    # A deal holds up to 14 digits; a million of them at the maximum sum to 20. Room to spare,
    # so that no total can overflow and stop a rollup for everyone.
    amount_won = models.DecimalField(max_digits=24, decimal_places=2, null=True, blank=True)
    amount_lost = models.DecimalField(max_digits=24, decimal_places=2, null=True, blank=True)
    avg_cycle_days = models.FloatField(null=True, blank=True)
    imported = models.PositiveIntegerField(
        default=0,
        help_text="Summary rows: how many of `deals` were imported from another CRM.",
    )
    # The sums behind the rounded figures, so that a refresh can add and take away one deal's
    # share (insights.delta) and land on what a rebuild gives, to the last digit.
    amount_won_exact = models.DecimalField(
        max_digits=34, decimal_places=10, null=True, blank=True, help_text="amount_won unrounded."
    )
    amount_lost_exact = models.DecimalField(
        max_digits=34, decimal_places=10, null=True, blank=True, help_text="amount_lost unrounded."
    )
    cycle_days_total = models.BigIntegerField(
        null=True, blank=True, help_text="Summary rows: the cycle days avg_cycle_days averages."
    )
    cycles = models.PositiveIntegerField(default=0, help_text="Summary rows: how many cycles.")

    prev_deals = models.PositiveIntegerField(null=True, blank=True)
    prev_base = models.PositiveIntegerField(null=True, blank=True)
    prev_rate = models.FloatField(null=True, blank=True)
    change = models.FloatField(null=True, blank=True, help_text="rate - prev_rate.")
    rate_low = models.FloatField(null=True, blank=True, help_text="95% Wilson interval of rate.")
    rate_high = models.FloatField(null=True, blank=True)
    prev_low = models.FloatField(null=True, blank=True, help_text="The same for prev_rate.")
    prev_high = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(
        null=True, blank=True, help_text="Raw p-value of the change; empty when not tested."
    )
    q_value = models.FloatField(
        null=True,
        blank=True,
        help_text="Benjamini-Hochberg adjusted p-value within the fact's report view.",
    )
    test = models.CharField(max_length=8, choices=Test.choices, blank=True)
    significant = models.BooleanField(
        default=False, help_text="Headlined: tested, adjusted, large enough, not an echo."
    )
    echo_of = models.CharField(
        max_length=80,
        blank=True,
        help_text="dimension:key of the change this one moved with (told under it).",
    )
    headline = models.TextField(blank=True)
    headline_note = models.TextField(blank=True, help_text="What moved with the headline.")

    class Meta:
        ordering = ["period_kind", "-period_start", "scope_kind", "scope_key", "dimension"]
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "period_kind",
                    "period_start",
                    "scope_kind",
                    "scope_key",
                    "dimension",
                    "source",
                    "key",
                ],
                name="insightfact_unique_cell",
            ),
        ]
        indexes = [
            models.Index(
                fields=["period_kind", "scope_kind", "scope_key", "dimension", "period_start"],
                name="insightfact_trend_idx",
            ),
            models.Index(
                fields=["period_kind", "period_start"],
                condition=Q(significant=True),
                name="insightfact_shift_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.period_kind} {self.period_start} {self.scope_kind}:{self.scope_key} " + (
            f"{self.dimension} {self.label}".strip()
        )


class RunKind(models.TextChoices):
    REBUILD = "rebuild", "Full rebuild"
    REFRESH = "refresh", "Refresh after closes"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = [RunStatus.QUEUED, RunStatus.RUNNING]


class InsightRun(models.Model):
    """A rollup job and how far it got. A failure keeps its reason in `error`."""

    kind = models.CharField(max_length=8, choices=RunKind.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0–100.")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of a running run; a run silent for longer than its lease "
        "(DEBRIEF_INSIGHT_RUN_LEASE_SECONDS) is taken as dead and started again.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    facts_written = models.PositiveIntegerField(default=0)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="insightrun_progress_max"),
            # The coalescing claim: at most one queued run of each kind. A close that finds
            # one queued adds its periods to the pending list and queues nothing.
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status="queued"), name="insightrun_one_queued_per_kind"
            ),
        ]
        indexes = [models.Index(fields=["status", "kind"], name="insightrun_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_status_display().lower()})"

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)


class PendingPeriod(models.Model):
    """A period whose facts are stale because a deal in it closed, was amended or reopened."""

    period_kind = models.CharField(max_length=8, choices=PeriodKind.choices)
    period_start = models.DateField()
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["period_kind", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["period_kind", "period_start"], name="pendingperiod_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period_kind} {self.period_start}"


class PendingReflection(models.Model):
    """
    A reflection whose counts in the stored facts are stale: closed, reopened, amended or
    answered by its buyer since the facts were written. `counted` is what the stored facts count
    for it (insights.delta.contributions; empty: nothing), kept from the first change after they
    were written, so that the refresh takes exactly that away and adds what it says now.
    """

    reflection_id = models.BigIntegerField(primary_key=True)
    counted = models.JSONField(null=True, blank=True)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["marked_at"]

    def __str__(self) -> str:
        return f"reflection {self.reflection_id}"


class DigestDelivery(models.Model):
    """The weekly digest sent to one manager; the unique row makes a rerun skip them."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    week_start = models.DateField()
    sent_at = models.DateTimeField(default=timezone.now)
    shifts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-week_start", "recipient_id"]
        verbose_name_plural = "digest deliveries"
        constraints = [
            models.UniqueConstraint(fields=["recipient", "week_start"], name="digest_once_a_week")
        ]

    def __str__(self) -> str:
        return f"Digest for {self.recipient} · week of {self.week_start:%d %b %Y}"


class PlaybookPeriodKind(models.TextChoices):
    DAY = "day", "Day"
    MONTH = "month", "Month"


class PlaybookEntry(models.Model):
    """
    The objection playbook's counts, stored by the rollup: in how many current reflections of
    one product's deals closed on one day (or in one month) an objection came up, and how many
    of those deals were won. Month rows are the sums of their days, so that the company page
    reads "the last twelve months" as whole months plus the days of the month it starts in.
    """

    product = models.ForeignKey("opportunities.Product", on_delete=models.CASCADE, related_name="+")
    period_kind = models.CharField(max_length=8, choices=PlaybookPeriodKind.choices)
    period_start = models.DateField()
    objection = models.ForeignKey(
        "reflections.Objection", on_delete=models.CASCADE, related_name="+"
    )
    heard = models.PositiveIntegerField(default=0, help_text="Closed deals it came up in.")
    won = models.PositiveIntegerField(default=0, help_text="Of those, deals won.")

    class Meta:
        ordering = ["product", "period_kind", "-period_start", "objection"]
        verbose_name_plural = "playbook entries"
        constraints = [
            models.UniqueConstraint(
                fields=["product", "period_kind", "period_start", "objection"],
                name="playbookentry_unique_cell",
            )
        ]
        # The unique index serves the company page (products, then a range of days or months);
        # this one serves the refresh, which rewrites a few periods of every product.
        indexes = [
            models.Index(fields=["period_kind", "period_start"], name="playbookentry_period_idx")
        ]

    def __str__(self) -> str:
        return f"{self.period_kind} {self.period_start} product {self.product_id}: {self.heard}"


class PlaybookQuote(models.Model):
    """
    What won deals of one product said about handling an objection: the latest short answers of
    won reflections that name it, newest first (`rank` 1 is the latest), a few more than the
    page shows, so that repeated wording can be dropped across products and three remain.
    """

    product = models.ForeignKey("opportunities.Product", on_delete=models.CASCADE, related_name="+")
    objection = models.ForeignKey(
        "reflections.Objection", on_delete=models.CASCADE, related_name="+"
    )
    rank = models.PositiveSmallIntegerField()
    # No constraint: an amendment replaces its answers, and the row must stay until the refresh
    # rewrites its month (the refresh tells a short list from one that lost a row that way).
    answer = models.ForeignKey(
        "reflections.Answer", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    text = models.TextField()
    closed_date = models.DateField()

    class Meta:
        ordering = ["product", "objection", "rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "objection", "rank"], name="playbookquote_unique_rank"
            )
        ]

    def __str__(self) -> str:
        return f"product {self.product_id} objection {self.objection_id} #{self.rank}"


class GapCount(models.Model):
    """
    The perception gap's grouped counts, stored by the rollup (insights.gap): in one period and
    scope, how many current reflections of one outcome had `rep_key` as the rep's main reason
    (given as `rep_source`) and `buyer_key` as their buyer's. Reasons are keyed after merges.
    The dashboard reads a period's and the previous period's rows instead of the answers.
    """

    period_kind = models.CharField(max_length=8, choices=PeriodKind.choices)
    period_start = models.DateField()
    scope_kind = models.CharField(max_length=12, choices=ScopeKind.choices)
    scope_key = models.CharField(max_length=40, blank=True, help_text="Empty: the organisation.")
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    rep_key = models.BigIntegerField(help_text="The rep's main reason (id after merges).")
    rep_source = models.CharField(max_length=10, blank=True)
    buyer_key = models.BigIntegerField(help_text="The buyer's main reason (id after merges).")
    deals = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["period_kind", "period_start", "scope_kind", "scope_key"]
        # The unique index also serves the dashboard: one scope, a period and the one before.
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "period_kind",
                    "scope_kind",
                    "scope_key",
                    "period_start",
                    "outcome",
                    "rep_key",
                    "rep_source",
                    "buyer_key",
                ],
                name="gapcount_unique_cell",
            )
        ]
        # The refresh rewrites a few periods of every scope.
        indexes = [models.Index(fields=["period_kind", "period_start"], name="gapcount_period_idx")]

    def __str__(self) -> str:
        return f"{self.period_kind} {self.period_start} {self.scope_kind} {self.scope_key}"
