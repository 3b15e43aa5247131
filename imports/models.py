"""
History imports: closed deals and their reasons brought in from another CRM's CSV export.

An admin uploads a file (`HistoryImport`), maps its columns (a preset or by hand) and the
distinct texts of its reason and product columns (`ValueMapping`, kept for the next file),
checks it with a dry run, then runs it. Every deal it creates is recorded in `ImportedDeal`
with the other system's id, which makes a second run of the same file create nothing new.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from opportunities.models import Currency, Opportunity, Product
from reflections.models import Outcome, Reason


class Preset(models.TextChoices):
    SALESFORCE = "salesforce", "Salesforce opportunity report"
    HUBSPOT = "hubspot", "HubSpot deals export"
    PIPEDRIVE = "pipedrive", "Pipedrive deals export"
    GENERIC = "generic", "Other CSV (map the columns yourself)"


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded: map the columns and values"
    CHECKED = "checked", "Checked: ready to import"
    INVALID = "invalid", "Checked: rows need fixing"
    CHECKING = "checking", "Being checked"
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Importing"
    DONE = "done", "Imported"
    FAILED = "failed", "Stopped by an error"
    CANCELLED = "cancelled", "Cancelled"


class HistoryImport(models.Model):
    """One uploaded file and where its import stands."""

    system = models.CharField(
        "imported from",
        max_length=60,
        help_text="The CRM the file comes from, as pages name it (e.g. Salesforce). Deals are "
        "recognised again by this name and their id there.",
    )
    preset = models.CharField(max_length=12, choices=Preset.choices)
    file = models.FileField(upload_to="imports/%Y/%m/")
    file_name = models.CharField(max_length=255)
    columns = models.JSONField(
        default=dict, blank=True, help_text="Debrief field -> the file's column header."
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Defaults for rows that leave a value out (currency, new companies' segment, "
        "size and region, date format).",
    )
    default_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Owns the deals whose owner e-mail matches nobody here.",
    )
    default_currency = models.CharField(
        max_length=3, choices=Currency.choices, default=Currency.GBP
    )
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    in_reports = models.BooleanField(
        "counted in reports",
        default=True,
        help_text="Whether the insights count the reasons of this import's deals.",
    )

    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(
        default=0, help_text="Rows committed so far: a resumed import starts after them."
    )
    deals_created = models.PositiveIntegerField(default=0)
    deals_existing = models.PositiveIntegerField(
        default=0, help_text="Rows whose deal an earlier import already brought in."
    )
    rows_skipped = models.PositiveIntegerField(
        default=0, help_text="Rows left out by a value mapped to “skip”, or open deals."
    )
    companies_created = models.PositiveIntegerField(default=0)
    contacts_created = models.PositiveIntegerField(default=0)
    suppressions_derived = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text="The first problems found: row, column, message."
    )
    checked_rows = models.PositiveIntegerField(
        default=0, help_text="Rows the check in progress has read (a large file's check job)."
    )
    file_sha256 = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the uploaded file's bytes."
    )
    texts = models.JSONField(
        default=list,
        blank=True,
        help_text="The distinct reason and product texts of the file's closed deals, read when "
        "the file or its columns change: kind, outcome, key, text (the most common spelling), "
        "count.",
    )
    check_warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="What the last check found worth a second look without stopping the import "
        "(e.g. the file looks imported before under another system's name).",
    )
    checked_fingerprint = models.CharField(
        max_length=64,
        blank=True,
        help_text="What the dry run checked (file, columns, mappings); a change asks for another.",
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "history import"

    def __str__(self) -> str:
        return f"{self.file_name} from {self.system}"


class MappingKind(models.TextChoices):
    REASON = "reason", "Reason"
    PRODUCT = "product", "Product"


class MappingAction(models.TextChoices):
    MAP = "map", "Use the chosen reason or product"
    UNKNOWN = "unknown", "Unknown / not sure"
    SKIP = "skip", "Skip these deals"


class ValueMapping(models.Model):
    """
    What a text of another CRM means here: a "closed lost reason" as one of the taxonomy's
    reasons (per outcome), or a product name as a product. Saved when an admin maps a file and
    offered again for the next one. `text` is normalised (casefolded, spaces collapsed).
    """

    kind = models.CharField(max_length=8, choices=MappingKind.choices)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    text = models.CharField(max_length=200)
    action = models.CharField(max_length=8, choices=MappingAction.choices)
    reason = models.ForeignKey(
        Reason, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "outcome", "text"]
        constraints = [
            models.UniqueConstraint("kind", "outcome", "text", name="mapping_one_per_text"),
            models.CheckConstraint(
                condition=~Q(action="map")
                | Q(kind="reason", reason__isnull=False)
                | Q(kind="product", product__isnull=False),
                name="mapping_target_when_mapped",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} “{self.text}”: {self.get_action_display()}"


class ImportedDeal(models.Model):
    """A deal brought in by an import, with its id in the other system and its own words."""

    history_import = models.ForeignKey(
        HistoryImport, on_delete=models.PROTECT, related_name="deals"
    )
    system_key = models.CharField(
        max_length=60, help_text="The system's name, casefolded: ids are unique within it."
    )
    external_id = models.CharField(max_length=100)
    opportunity = models.OneToOneField(
        Opportunity, on_delete=models.CASCADE, related_name="imported_from"
    )
    row = models.PositiveIntegerField(help_text="Line of the file (the header is line 1).")
    reason_text = models.CharField("reason in the other system", max_length=500, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["history_import", "row"]
        constraints = [
            models.UniqueConstraint(
                "system_key", "external_id", name="imported_deal_once_per_system"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.system_key})"
