from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts import selectors as account_selectors


@login_required
def home(request):
    teams = account_selectors.teams_for_page(request.user)
    return render(request, "home.html", {"teams": teams})
