import pytest
from django.core.management import CommandError, call_command

from accounts.models import Team, User

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_seed_demo_is_deterministic_and_safe_to_run_twice(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo")
    first = sorted(User.objects.values_list("email", "full_name", "role", "team__name"))
    teams = sorted(Team.objects.values_list("name", flat=True))
    call_command("seed_demo")
    assert sorted(User.objects.values_list("email", "full_name", "role", "team__name")) == first
    assert sorted(Team.objects.values_list("name", flat=True)) == teams
    out = capsys.readouterr().out
    assert "rep@debrief.example" in out and "manager@debrief.example" in out


def test_seeded_logins_work_and_manager_manages_reps_team(settings, client):
    settings.DEBUG = True
    call_command("seed_demo")
    rep = User.objects.get(email="rep@debrief.example")
    manager = User.objects.get(email="manager@debrief.example")
    assert rep.team in manager.managed_teams.all()
    assert client.login(username="rep@debrief.example", password=settings.DEBRIEF_DEMO_PASSWORD)


def test_seed_demo_if_empty_leaves_existing_data(settings, rep):
    settings.DEBUG = True
    call_command("seed_demo", "--if-empty")
    assert not User.objects.filter(email="rep@debrief.example").exists()


def test_seed_demo_refuses_with_debug_off_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")
    call_command("seed_demo", "--force")
    assert User.objects.filter(email="admin@debrief.example").exists()
