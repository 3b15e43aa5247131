from django.db.models import Count, Prefetch, QuerySet

from accounts import access
from accounts.models import Team, User


def teams_for_page(user: User) -> QuerySet[Team]:
    """Teams the user may see, with member counts and managers for the team list."""
    return (
        access.teams_visible_to(user)
        .annotate(member_count=Count("members", distinct=True))
        .prefetch_related(Prefetch("managers", queryset=User.objects.order_by("full_name")))
        .order_by("name")
    )


def team_detail(user: User, team_id: int) -> Team:
    """One team with its members and managers; 404 when the user may not see it."""
    team = access.get_or_404(
        access.teams_visible_to(user).prefetch_related(
            Prefetch("managers", queryset=User.objects.order_by("full_name")),
            Prefetch(
                "members",
                queryset=User.objects.filter(is_active=True).order_by("full_name"),
            ),
        ),
        pk=team_id,
    )
    return team
