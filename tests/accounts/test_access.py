import pytest
from django.urls import reverse

from accounts import access
from accounts.models import Team
from tests.factories import ManagerFactory, TeamFactory

pytestmark = pytest.mark.django_db


def test_manager_sees_only_the_teams_they_manage(manager, north, south, other_rep):
    assert list(access.teams_visible_to(manager)) == [north]


def test_manager_of_several_teams_sees_each(north, south):
    third = TeamFactory(name="Third")
    boss = ManagerFactory(manages=[north, south])
    assert set(access.teams_visible_to(boss)) == {north, south}
    assert third not in access.teams_visible_to(boss)


def test_rep_sees_only_own_team(rep, south):
    assert list(access.teams_visible_to(rep)) == [rep.team]


def test_admin_sees_all_teams(admin_user, north, south):
    assert set(access.teams_visible_to(admin_user)) == set(Team.objects.all())


def test_users_visible_to_manager_are_self_and_managed_members(manager, rep, teammate, other_rep):
    assert set(access.users_visible_to(manager)) == {manager, rep, teammate}


def test_users_visible_to_rep_is_only_self(rep, teammate):
    assert list(access.users_visible_to(rep)) == [rep]


def test_can_act_for(rep, teammate, manager, other_manager, admin_user):
    assert access.can_act_for(rep, rep)
    assert not access.can_act_for(rep, teammate)
    assert access.can_act_for(manager, rep)
    assert not access.can_act_for(other_manager, rep)
    assert access.can_act_for(admin_user, rep)


def test_inactive_user_cannot_act(rep):
    rep.is_active = False
    assert not access.can_act_for(rep, rep)


@pytest.mark.smoke
def test_manager_team_list_shows_only_managed_teams(manager_client, north, south):
    response = manager_client.get(reverse("accounts:team_list"))
    assert response.status_code == 200
    assert list(response.context["teams"]) == [north]
    assert b"South" not in response.content


def test_manager_cannot_open_another_managers_team_by_forged_id(manager_client, south):
    response = manager_client.get(reverse("accounts:team_detail", args=[south.pk]))
    assert response.status_code == 404


def test_rep_cannot_open_another_team(rep_client, south):
    assert rep_client.get(reverse("accounts:team_detail", args=[south.pk])).status_code == 404


def test_missing_team_is_404_too(manager_client):
    assert manager_client.get(reverse("accounts:team_detail", args=[999999])).status_code == 404


def test_manager_sees_members_of_managed_team(manager_client, north, rep, teammate):
    response = manager_client.get(reverse("accounts:team_detail", args=[north.pk]))
    assert response.status_code == 200
    assert b"Riley Rep" in response.content and b"Tess Teammate" in response.content


@pytest.mark.smoke
def test_rep_cannot_open_admin(rep_client):
    response = rep_client.get("/admin/")
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")
    # Even a direct model page stays closed.
    assert rep_client.get("/admin/accounts/user/").status_code == 302


def test_manager_cannot_open_admin(manager_client):
    assert manager_client.get("/admin/").status_code == 302


def test_admin_opens_admin_user_and_team_lists(admin_client_, rep, north):
    assert admin_client_.get("/admin/").status_code == 200
    response = admin_client_.get("/admin/accounts/user/?q=riley&role__exact=rep")
    assert response.status_code == 200 and b"riley@example.com" in response.content
    assert admin_client_.get("/admin/accounts/team/?q=North").status_code == 200


def test_admin_creates_user_with_role_and_team(admin_client_, north):
    response = admin_client_.post(
        "/admin/accounts/user/add/",
        {
            "email": "New.Person@Example.com",
            "full_name": "New Person",
            "role": "rep",
            "team": north.pk,
            "password1": "a-long-unusual-pass-9",
            "password2": "a-long-unusual-pass-9",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    from accounts.models import User

    created = User.objects.get(email="new.person@example.com")
    assert (
        created.team == north and created.is_rep and created.check_password("a-long-unusual-pass-9")
    )


def test_team_list_query_count_is_constant(manager_client, manager, django_assert_num_queries):
    teams = [TeamFactory(name=f"T{i}") for i in range(6)]
    manager.managed_teams.add(*teams)
    # session + user + teams + prefetch managers, and the navigation's count of exception
    # requests waiting for this manager (one query on every page a manager opens).
    with django_assert_num_queries(5):
        manager_client.get(reverse("accounts:team_list"))
