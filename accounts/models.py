import unicodedata

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Role(models.TextChoices):
    REP = "rep", "Sales rep"
    MANAGER = "manager", "Manager"
    ADMIN = "admin", "Administrator"


def login_key(value: str) -> str:
    """
    The one form of a login e-mail that is stored, looked up and counted by the lockout:
    Unicode-normalised (NFKC), trimmed, lower-cased, at most the 254 characters an address can
    have. Lookups match it exactly, so that a look-alike such as a dotless ı, which a database's
    case-insensitive match would equate with i, never reaches someone else's account.
    """
    return unicodedata.normalize("NFKC", value or "").strip().lower()[:254]


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=login_key(self.normalize_email(email)), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("role", Role.REP)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra["role"] = Role.ADMIN
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email=login_key(username))


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    managers = models.ManyToManyField(
        "accounts.User",
        related_name="managed_teams",
        blank=True,
        limit_choices_to={"role__in": [Role.MANAGER, Role.ADMIN]},
        help_text="Managers see and act on this team's deals. A manager may manage several teams.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractBaseUser):
    """
    A person who uses Debrief. Permissions follow from the role: reps keep their own pipeline,
    managers act for the teams they manage, administrators run the Django admin.
    """

    email = models.EmailField("e-mail address", unique=True)
    full_name = models.CharField(max_length=150)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.REP)
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
        help_text="The team whose pipeline this person belongs to.",
    )
    is_active = models.BooleanField(
        default=True, help_text="Untick instead of deleting, so that history keeps its author."
    )
    date_joined = models.DateTimeField(default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["full_name", "email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def clean(self):
        super().clean()
        self.email = login_key(self.__class__.objects.normalize_email(self.email))

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def is_rep(self) -> bool:
        return self.role == Role.REP

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    # The Django admin is for administrators only; the role is the single source of truth.
    @property
    def is_staff(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    @property
    def is_superuser(self) -> bool:
        return self.is_staff

    def has_perm(self, perm, obj=None) -> bool:
        return self.is_staff

    def has_perms(self, perm_list, obj=None) -> bool:
        return self.is_staff

    def has_module_perms(self, app_label) -> bool:
        return self.is_staff


class ApiToken(models.Model):
    """
    A machine's key to the JSON API (e.g. the marketing tool's suppression check). Only a hash
    is stored; the token itself is shown once, when it is created.
    """

    name = models.CharField(max_length=100, help_text="Who uses it, e.g. “Marketing dialler”.")
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
