"""
Who may see or change what. Every view goes through these helpers (or a selector built on
them) so that scoping rules live in one place.

- Administrators see everything.
- Managers see the teams they manage, the people in them and (later apps) those people's deals.
- Reps see their own team and their own deals.

Customer records (companies, contacts) are shared across the organisation: everyone needs the
customer's history before a call.
"""

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import Role, Team, User, login_key


def managed_team_ids(user: User) -> list[int]:
    """
    The teams a manager manages, looked up once per user object (one request) however many
    checks a page makes. Changing a manager's teams clears it (accounts.signals).
    """
    if user.role != Role.MANAGER:
        return []
    cached = getattr(user, "_managed_team_ids", None)
    if cached is None:
        cached = list(user.managed_teams.values_list("pk", flat=True))
        user._managed_team_ids = cached
    return cached


def teams_visible_to(user: User) -> QuerySet[Team]:
    """Teams whose pages and reports the user may open."""
    if user.role == Role.ADMIN:
        return Team.objects.all()
    if user.role == Role.MANAGER:
        return Team.objects.filter(managers=user)
    return Team.objects.filter(pk=user.team_id) if user.team_id else Team.objects.none()


def users_visible_to(user: User) -> QuerySet[User]:
    """People whose deals the user may see: themselves, plus their managed teams' members."""
    if user.role == Role.ADMIN:
        return User.objects.all()
    if user.role == Role.MANAGER:
        return User.objects.filter(Q(pk=user.pk) | Q(team__managers=user)).distinct()
    return User.objects.filter(pk=user.pk)


def owner_q(user: User, field: str = "owner") -> Q:
    """
    A filter for rows owned by people the user may see, e.g. deals:
    `Opportunity.objects.filter(owner_q(user))`. Built without a subquery join for reps, the
    common and hot case.
    """
    if user.role == Role.ADMIN:
        return Q()
    if user.role == Role.MANAGER:
        team_ids = managed_team_ids(user)
        return Q(**{f"{field}_id": user.pk}) | Q(**{f"{field}__team_id__in": team_ids})
    return Q(**{f"{field}_id": user.pk})


def can_act_for(actor: User, owner: User) -> bool:
    """Whether actor may change something owned by owner (a deal, a plan entry)."""
    if not actor.is_active:
        return False
    if actor.role == Role.ADMIN or actor.pk == owner.pk:
        return True
    if actor.role == Role.MANAGER and owner.team_id:
        return owner.team_id in managed_team_ids(actor)
    return False


def can_edit_company(user: User, company, *, owns_deal: bool | None = None) -> bool:
    """
    Companies are shared records that everyone reads; changing one (its name, its domain,
    which suppressions and call lists match on) is for managers and administrators, and for a
    rep who added it or who owns a deal there (`owns_deal`, when the caller read it already).
    """
    if not user.is_active:
        return False
    if user.role in (Role.ADMIN, Role.MANAGER):
        return True
    if company.created_by_id == user.pk:
        return True
    if owns_deal is not None:
        return owns_deal
    return company.opportunities.filter(owner=user).exists()


def manages(manager: User, user: User) -> bool:
    """Whether manager manages user's team (used for approvals: an admin counts too)."""
    if manager.role == Role.ADMIN:
        return True
    return (
        manager.role == Role.MANAGER
        and user.team_id is not None
        and user.team_id in managed_team_ids(manager)
    )


def get_or_404(queryset: QuerySet, **lookup):
    """Fetch one row from an already-scoped queryset; out of scope and missing look the same."""
    try:
        return queryset.get(**lookup)
    except queryset.model.DoesNotExist as exc:
        raise Http404("Not found") from exc


def login_name(request, credentials: dict | None) -> str:
    """
    The e-mail a login attempt names, lower-cased, so that login throttling counts
    RILEY@example.com and riley@example.com as the same person. django-axes passes the
    credentials under the user model's USERNAME_FIELD ("email") when it checks a lockout,
    and Django's failure signal under the login form's "username": read both.
    """
    source = credentials if credentials is not None else request.POST
    # The same form as the account lookup (accounts.models.login_key), at most 254 characters
    # (the lockout table holds 255).
    return login_key(source.get("email") or source.get("username") or "")


def private_subject(request) -> User:
    """
    Whose data a private page (My reflections) shows: always the signed-in user. Such a page
    takes no user id in its URL or query, and no manager, admin, export, admin page or digest
    reads it for anyone else; this function is the one door in, so that stays true.
    """
    return request.user
