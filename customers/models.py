from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from customers.normalize import normalize_domain, normalize_email, normalize_phone


class Segment(models.TextChoices):
    SOFTWARE = "software", "Software"
    MANUFACTURING = "manufacturing", "Manufacturing"
    HEALTHCARE = "healthcare", "Healthcare"
    FINANCE = "finance", "Financial services"
    RETAIL = "retail", "Retail"
    PUBLIC = "public", "Public sector"
    EDUCATION = "education", "Education"
    LOGISTICS = "logistics", "Logistics"
    MEDIA = "media", "Media"
    ENERGY = "energy", "Energy"


class SizeBand(models.TextChoices):
    SMALL = "small", "1–49 employees"
    MID = "mid", "50–249 employees"
    LARGE = "large", "250–999 employees"
    ENTERPRISE = "enterprise", "1,000+ employees"


class Region(models.TextChoices):
    UK = "uk", "UK & Ireland"
    EUROPE = "europe", "Continental Europe"
    NORTH_AMERICA = "na", "North America"
    APAC = "apac", "Asia-Pacific"
    OTHER = "other", "Rest of world"


class Company(models.Model):
    """A customer organisation. Shared across the whole organisation."""

    name = models.CharField(max_length=200)
    domain = models.CharField(
        max_length=253,
        blank=True,
        help_text="Web domain without www, e.g. example.com. Used to match call lists.",
    )
    segment = models.CharField(max_length=20, choices=Segment.choices)
    size_band = models.CharField("size", max_length=12, choices=SizeBand.choices)
    region = models.CharField(max_length=8, choices=Region.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text="Who added it in the CRM (empty: imported or from before this was kept).",
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"
        constraints = [
            models.UniqueConstraint(
                "domain",
                condition=~Q(domain=""),
                name="company_domain_unique",
                violation_error_message="Another company already has this domain.",
            ),
            models.CheckConstraint(
                condition=Q(domain=Lower("domain")), name="company_domain_lowercase"
            ),
        ]
        indexes = [
            models.Index(Lower("name"), name="company_name_lower_idx"),
            models.Index(fields=["segment"], name="company_segment_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.domain = normalize_domain(self.domain)
        super().save(*args, **kwargs)


class Contact(models.Model):
    """A person at a customer. E-mail and phone are stored normalised for exact matching."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="contacts")
    full_name = models.CharField(max_length=150)
    title = models.CharField("job title", max_length=150, blank=True)
    email = models.EmailField("e-mail", blank=True)
    phone = models.CharField(max_length=40, blank=True, help_text="As the contact gave it.")
    phone_normalized = models.CharField(max_length=40, blank=True, editable=False)
    do_not_contact = models.BooleanField(
        default=False,
        help_text="The person asked not to be contacted. Managed through do-not-contact "
        "suppressions, which keep a reason and history.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["full_name"]
        constraints = [
            models.UniqueConstraint(
                "company",
                "email",
                condition=~Q(email=""),
                name="contact_email_per_company",
                violation_error_message="Someone at this company already has this e-mail.",
            ),
            models.CheckConstraint(
                condition=Q(email=Lower("email")), name="contact_email_lowercase"
            ),
        ]
        indexes = [
            models.Index(fields=["email"], name="contact_email_idx"),
            models.Index(fields=["phone_normalized"], name="contact_phone_idx"),
        ]

    def __str__(self) -> str:
        return self.full_name

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        self.phone_normalized = normalize_phone(self.phone)
        super().save(*args, **kwargs)
