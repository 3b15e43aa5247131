from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Company, Contact
from opportunities.currency import to_reporting


class ProductLine(models.Model):
    name = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    line = models.ForeignKey(ProductLine, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True, help_text="Retired products stay on old deals.")

    class Meta:
        ordering = ["line__name", "name"]
        constraints = [
            models.UniqueConstraint("line", "name", name="product_name_per_line"),
        ]

    def __str__(self) -> str:
        return self.name


class Competitor(models.Model):
    name = models.CharField(max_length=100, unique=True)
    website = models.URLField(blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Stage(models.TextChoices):
    # Open stages, in pipeline order.
    PROSPECTING = "prospecting", "Prospecting"
    QUALIFICATION = "qualification", "Qualification"
    PROPOSAL = "proposal", "Proposal"
    NEGOTIATION = "negotiation", "Negotiation"
    # Closed stages.
    WON = "won", "Won"
    LOST = "lost", "Lost"
    NO_DECISION = "no_decision", "No decision"


OPEN_STAGES = [Stage.PROSPECTING, Stage.QUALIFICATION, Stage.PROPOSAL, Stage.NEGOTIATION]
CLOSED_STAGES = [Stage.WON, Stage.LOST, Stage.NO_DECISION]


class Currency(models.TextChoices):
    GBP = "GBP", "GBP £"
    EUR = "EUR", "EUR €"
    USD = "USD", "USD $"


class Opportunity(models.Model):
    """A deal: a product pitched to a company, owned by one rep."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="opportunities")
    contact = models.ForeignKey(
        Contact,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="opportunities",
        help_text="The main person on the customer's side. Must work at the company.",
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="opportunities")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="opportunities"
    )
    title = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.GBP)
    # The amount in the reporting currency (opportunities/currency.py), kept by save() and the
    # bulk loaders, so the pipeline sorts and filters deals of different currencies by worth.
    amount_reporting = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, editable=False
    )
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.PROSPECTING)
    expected_close_date = models.DateField()
    closed_date = models.DateField(null=True, blank=True)
    primary_competitor = models.ForeignKey(
        Competitor,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="opportunities",
    )
    next_step = models.CharField(max_length=255, blank=True)
    next_step_due = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "opportunities"
        ordering = ["expected_close_date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="opportunity_amount_gte_0"),
            models.CheckConstraint(
                condition=Q(stage__in=[s.value for s in Stage]), name="opportunity_stage_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(stage__in=[s.value for s in OPEN_STAGES], closed_date__isnull=True)
                    | Q(stage__in=[s.value for s in CLOSED_STAGES], closed_date__isnull=False)
                ),
                name="opportunity_closed_date_matches_stage",
            ),
            models.CheckConstraint(
                condition=Q(next_step_due__isnull=True) | ~Q(next_step=""),
                name="opportunity_due_date_needs_next_step",
            ),
        ]
        indexes = [
            # Pipeline: a rep's deals by close date (keyset order), and by stage.
            models.Index(fields=["owner", "expected_close_date", "id"], name="opp_owner_close_idx"),
            models.Index(fields=["owner", "stage"], name="opp_owner_stage_idx"),
            # The default pipeline (open deals by close date) and the board's columns: without
            # these, the walk in date order skips every closed deal before the first open one.
            models.Index(
                fields=["owner", "expected_close_date", "id"],
                condition=Q(stage__in=OPEN_STAGES),
                name="opp_owner_open_close_idx",
            ),
            models.Index(
                fields=["expected_close_date", "id"],
                condition=Q(stage__in=OPEN_STAGES),
                name="opp_open_close_idx",
            ),
            # The whole-organisation pipeline (admins, deep pages) in keyset order.
            models.Index(fields=["expected_close_date", "id"], name="opp_close_idx"),
            models.Index(fields=["title", "id"], name="opp_title_idx"),
            models.Index(fields=["amount_reporting", "id"], name="opp_amount_reporting_idx"),
            # Open deals by worth: the amount filters and sort, and their capped count, which
            # reads owner and product from the index alone (a manager's filtered count read
            # 13,000 deals from the table to count 1,000).
            models.Index(
                fields=["amount_reporting", "id"],
                condition=Q(stage__in=OPEN_STAGES),
                include=["owner", "product"],
                name="opp_open_amount_idx",
            ),
            # My plan: open deals with a next step, by due date.
            models.Index(
                fields=["owner", "next_step_due"],
                condition=Q(next_step_due__isnull=False),
                name="opp_owner_next_step_idx",
            ),
            # Company page: its deals, open and closed.
            models.Index(fields=["company", "stage"], name="opp_company_stage_idx"),
            models.Index(fields=["product", "stage"], name="opp_product_stage_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        self.amount_reporting = to_reporting(self.amount, self.currency)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"amount", "currency"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, "amount_reporting"}
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.stage in OPEN_STAGES

    @property
    def is_closed(self) -> bool:
        return self.stage in CLOSED_STAGES

    @property
    def next_step_overdue(self) -> bool:
        return bool(self.next_step_due and self.next_step_due < timezone.localdate())


class StageChange(models.Model):
    """One move of a deal between stages: who, when, from and to. Feeds cycle-time reports."""

    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="stage_changes"
    )
    from_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["changed_at", "id"]
        indexes = [models.Index(fields=["opportunity", "changed_at"], name="stagechange_opp_idx")]

    def __str__(self) -> str:
        return f"{self.opportunity_id}: {self.from_stage or '—'} → {self.to_stage}"
