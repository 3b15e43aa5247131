from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django_ratelimit.decorators import ratelimit

from accounts import selectors
from accounts.models import login_key


@login_required
def team_list(request):
    teams = selectors.teams_for_page(request.user)
    return render(request, "accounts/team_list.html", {"teams": teams})


@login_required
def team_detail(request, team_id: int):
    team = selectors.team_detail(request.user, team_id)
    return render(request, "accounts/team_detail.html", {"team": team})


def _reset_email(group, request) -> str:
    return login_key(request.POST.get("email", ""))


def _reset_rate(group, request) -> str:
    return settings.DEBRIEF_PASSWORD_RESET_RATE


_reset_form = auth_views.PasswordResetView.as_view()


@ratelimit(key="ip", rate=_reset_rate, method="POST", group="password_reset.ip", block=False)
@ratelimit(
    key=_reset_email, rate=_reset_rate, method="POST", group="password_reset.email", block=False
)
def password_reset(request):
    """Django's reset form, limited per address and per e-mail so it cannot flood an inbox."""
    if getattr(request, "limited", False):
        return render(request, "registration/password_reset_limited.html", status=429)
    return _reset_form(request)
