from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts import selectors


@login_required
def team_list(request):
    teams = selectors.teams_for_page(request.user)
    return render(request, "accounts/team_list.html", {"teams": teams})


@login_required
def team_detail(request, team_id: int):
    team = selectors.team_detail(request.user, team_id)
    return render(request, "accounts/team_detail.html", {"team": team})
