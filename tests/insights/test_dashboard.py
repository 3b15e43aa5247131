import pytest
from django.urls import reverse

from insights import services
from tests.factories import CompetitorFactory, ProductFactory, ProductLineFactory, UserFactory
from tests.insights.conftest import Closer, d
from tests.insights.test_perception_gap import buyer_says

pytestmark = pytest.mark.django_db

URL = reverse("insights:dashboard")
MAY = d("2026-05-12")
Q2 = {"kind": "quarter", "period": "2026-04-01"}


def q(**params):
    return {**Q2, **params}


@pytest.fixture
def north_quarter(closer, teammate, settings):
    """Team North, Q2 2026: 6 won, 6 lost (Price, customer said), with a lesson each."""
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    for i in range(6):
        owner = closer.owner if i % 2 else teammate
        closer.close("won", MAY, "Product fit", owner=owner, text=f"Won lesson {i}")
        closer.close("lost", MAY, "Price", owner=owner, text=f"Lost lesson {i}")
    services.insights_rebuild()
    return closer


def test_rep_sees_org_report_with_numbers_charts_and_tables(rep_client, north_quarter):
    response = rep_client.get(URL, q())
    assert response.status_code == 200
    html = response.content.decode()
    assert "Q2 2026" in html and "50%" in html  # 6 of 12 won
    assert 'data-chart="bar"' in html and 'id="chart-primary-reason-lost"' in html
    assert "<table" in html  # every chart has its table
    assert "vendor/chart-4.6.1.umd.min.js" in html and "js/insights.js" in html
    assert "<script>" not in html  # no inline JavaScript, only json_script data
    # The latest three lessons per top reason, newest first, without names.
    assert "Lost lesson 5" in html and "Lost lesson 3" in html and "Lost lesson 2" not in html
    assert "Riley" not in html.split("<main", 1)[1].split("nav-user", 1)[0]


def test_rep_sees_own_team_report(rep_client, rep, north_quarter):
    response = rep_client.get(URL, q(scope=f"team:{rep.team_id}"))
    assert response.status_code == 200
    assert "North · Q2 2026" in response.content.decode()


@pytest.mark.smoke
def test_rep_cannot_open_another_teams_report(rep_client, other_rep, north_quarter):
    response = rep_client.get(URL, q(scope=f"team:{other_rep.team_id}"))
    assert response.status_code == 404
    assert rep_client.get(URL, q(scope="team:999999")).status_code == 404
    export = reverse("insights:export", args=["summary"])
    assert rep_client.get(export, q(scope=f"team:{other_rep.team_id}")).status_code == 404


def test_manager_of_another_team_gets_404(client, other_manager, rep, north_quarter):
    client.force_login(other_manager)
    assert client.get(URL, q(scope=f"team:{rep.team_id}")).status_code == 404


def test_manager_and_admin_open_the_teams_they_may_see(
    manager_client, rep, admin_user, client, north_quarter
):
    assert manager_client.get(URL, q(scope=f"team:{rep.team_id}")).status_code == 200
    client.force_login(admin_user)
    assert client.get(URL, q(scope=f"team:{rep.team_id}")).status_code == 200


def test_small_slice_shows_not_enough_data_but_own_results_show(rep_client, closer, settings):
    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    for _ in range(3):
        closer.close("won", MAY, "Product fit", amount="7777.00")
    closer.close("lost", MAY, "Price")
    services.insights_rebuild()
    html = rep_client.get(URL, q()).content.decode()
    assert "Not enough data" in html
    assert "7,777" not in html and "23,331" not in html and "75%" not in html
    csv_text = rep_client.get(reverse("insights:export", args=["summary"]), q()).content.decode()
    assert "not enough data" in csv_text and "23331" not in csv_text
    # A rep's own results are theirs to see, however few.
    mine = rep_client.get(URL, q(scope="mine")).content.decode()
    assert "Not enough data" not in mine
    assert "75%" in mine and "23,331" in mine


def test_rows_under_the_minimum_are_hidden_in_a_visible_slice(
    rep_client, north_quarter, competitor, settings
):
    # 3 deals against Acme, 5 against Ledgerly: the slice shows, Acme's row does not.
    ledgerly = CompetitorFactory(name="Ledgerly")
    for _ in range(3):
        north_quarter.close("lost", MAY, "Price", competitor=competitor)
    for _ in range(5):
        north_quarter.close("won", MAY, "Product fit", competitor=ledgerly)
    services.insights_rebuild()
    html = rep_client.get(URL, q()).content.decode()
    assert "Acme Rival" not in html and "Ledgerly" in html
    assert "1 more row with fewer than 5 deals is not shown" in html


def test_source_split_columns_and_source_filter(rep_client, north_quarter):
    for _ in range(2):
        north_quarter.close("lost", MAY, "Timing", "rep")
    services.insights_rebuild()
    html = rep_client.get(URL, q()).content.decode()
    assert "Customer said" in html and "Rep's read" in html
    customer = rep_client.get(URL, q(source="customer")).content.decode()
    assert "Rep's read" not in customer and "Timing" not in customer.split("Why we won")[0]
    # Only 2 losses carry the rep's own read: below the minimum, so hidden.
    rep_only = rep_client.get(URL, q(source="rep")).content.decode()
    assert "Not enough data: fewer than 5 deals behind these figures" in rep_only


def test_pickers_update_through_htmx_with_a_fragment(rep_client, north_quarter):
    response = rep_client.get(URL, q(kind="month", period="2026-05-01"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="report"')
    assert "<html" not in html and "May 2026" in html
    assert 'hx-push-url="true"' in html and f'href="{URL}?' in html  # links work without JS


def test_malformed_params_fall_back_to_defaults(rep_client, north_quarter):
    response = rep_client.get(URL, {"kind": "decade", "period": "yesterday", "source": "x"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "params, status",
    [
        ({"period": "0001-01-01"}, 200),
        ({"period": "9999-12-31", "kind": "month"}, 200),
        ({"period": "0001-01-01", "kind": "month"}, 200),
        ({"period": "2026-04-01", "scope": "team:999999"}, 404),
        ({"period": "2026-04-01", "scope": "team:²"}, 404),
        ({"period": "2026-04-01", "scope": "product_line:abc"}, 404),
        ({"period": "2026-04-01", "source": "buyer"}, 200),
        ({"period": "2026-04-01", "kind": "quarter", "scope": "segment:nowhere"}, 404),
    ],
)
def test_bad_report_params_answer_404_or_the_default_view(
    rep_client, north_quarter, params, status
):
    assert rep_client.get(URL, params).status_code == status
    export = reverse("insights:export", args=["trend"])
    assert rep_client.get(export, params).status_code == status


def test_the_report_says_how_a_change_is_called_meaningful(rep_client, north_quarter, settings):
    html = rep_client.get(URL, q()).content.decode()
    assert "How a change is called meaningful" in html
    assert "Benjamini–Hochberg" in html and "larger than 5 points" in html
    assert "95% interval" in html and "Wilson" in html
    # Q1 had no closes: the trend starts at the first quarter with data, not at empty zeros.
    assert "Q1 2026" not in html.split('id="title-trend"', 1)[1].split("</section>", 1)[0]


def test_a_running_quarter_says_when_it_will_carry_headlines(rep_client, north_quarter):
    import datetime

    import time_machine

    with time_machine.travel(datetime.datetime(2026, 5, 12, 12, tzinfo=datetime.UTC)):
        html = rep_client.get(URL, q()).content.decode()
    assert "Q2 2026 is 42 days old (91 in all)" in html
    assert "from 16 May" in html  # day 46 of 91 is the first past half


def _bulk(owner, teams, per_team):
    line = ProductLineFactory(name="Analytics")
    for t, team in enumerate(teams):
        person = owner if t == 0 else UserFactory(team=team)
        closer = Closer(person, product=ProductFactory(line=line))
        for i in range(per_team):
            reflection = closer.close(
                "won" if i % 3 else "lost",
                d(f"2026-0{4 + i % 3}-1{i % 9}"),
                "Product fit" if i % 3 else "Price",
                objections=["Price too high"] if i % 2 else [],
                text=f"Lesson {i}",
            )
            if i % 2:
                buyer_says(reflection, "Product fit" if i % 3 else "Timing")
            closer.close("lost", d("2026-02-10"), "Timing", text="Earlier")


@pytest.mark.parametrize("scope", ["org", "team", "mine"])
def test_dashboard_query_count_does_not_grow_with_data(
    client, rep, django_assert_num_queries, settings, scope
):
    """The same number of queries for 30 reflections in one team as for 240 in three."""
    from tests.factories import TeamFactory

    settings.DEBRIEF_INSIGHT_MIN_SLICE = 5
    client.force_login(rep)
    params = q(scope=f"team:{rep.team_id}" if scope == "team" else scope)
    # The perception gap adds its pairs and their labels, except on "mine" (never per person).
    expected = {"org": 12, "team": 12, "mine": 11}[scope]
    _bulk(rep, [rep.team], 15)
    services.insights_rebuild()
    with django_assert_num_queries(expected):
        assert client.get(URL, params).status_code == 200
    _bulk(rep, [rep.team, TeamFactory(name="East"), TeamFactory(name="West")], 40)
    services.insights_rebuild()
    with django_assert_num_queries(expected):
        assert client.get(URL, params).status_code == 200
    with django_assert_num_queries(expected):
        assert client.get(URL, params, HTTP_HX_REQUEST="true").status_code == 200
    export = reverse("insights:export", args=["primary_reason_lost"])
    # No runs and no perception gap on an export.
    with django_assert_num_queries(expected - (2 if scope == "mine" else 4)):
        assert client.get(export, params).status_code == 200
