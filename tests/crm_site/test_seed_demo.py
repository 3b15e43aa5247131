import pytest
from django.core.management import CommandError, call_command
from django.db.models import F, Q

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
    response = client.post(
        "/accounts/login/",
        {"username": "rep@debrief.example", "password": settings.DEBRIEF_DEMO_PASSWORD},
    )
    assert response.status_code == 302


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


def test_seed_demo_builds_a_lived_in_pipeline_once(settings):
    import datetime

    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from customers.models import Company, Contact
    from opportunities.models import (
        CLOSED_STAGES,
        OPEN_STAGES,
        Competitor,
        Opportunity,
        Product,
        StageChange,
    )

    settings.DEBUG = True
    call_command("seed_demo")
    counts = [
        m.objects.count() for m in (Company, Contact, Opportunity, StageChange, Product, Competitor)
    ]
    assert 450 <= counts[0] <= 550 and counts[0] <= counts[1] <= 3 * counts[0]
    assert 2800 <= counts[2] <= 3200 and counts[3] > counts[2]
    assert counts[4] >= 6 and counts[5] >= 5
    call_command("seed_demo")
    assert [
        m.objects.count() for m in (Company, Contact, Opportunity, StageChange, Product, Competitor)
    ] == counts

    today = timezone.localdate()
    rep = User.objects.get(email="rep@debrief.example")
    open_deals = Opportunity.objects.filter(owner=rep, stage__in=OPEN_STAGES)
    assert 20 <= open_deals.count() <= 30
    assert open_deals.filter(next_step_due__lt=today).count() >= 3
    assert set(open_deals.values_list("stage", flat=True)) == set(OPEN_STAGES)

    # Every demo rep has open and closed deals; about 40% of all deals are closed.
    per_rep = User.objects.filter(role="rep").annotate(
        n_open=Count("opportunities", filter=Q(opportunities__stage__in=OPEN_STAGES)),
        n_closed=Count("opportunities", filter=Q(opportunities__stage__in=CLOSED_STAGES)),
    )
    assert all(r.n_open > 0 and r.n_closed > 0 for r in per_rep)
    closed = Opportunity.objects.filter(stage__in=CLOSED_STAGES)
    assert 0.5 <= closed.count() / counts[2] <= 0.7  # a year of history: most have closed
    assert set(closed.values_list("stage", flat=True)) == set(CLOSED_STAGES)
    assert not closed.filter(closed_date__gte=today).exists()
    dates = Opportunity.objects.aggregate(
        lo=Min("expected_close_date"), hi=Max("expected_close_date")
    )
    assert dates["lo"] < today - datetime.timedelta(days=120)
    assert dates["hi"] > today + datetime.timedelta(days=120)
    assert not Opportunity.objects.filter(Q(amount__lt=2000) | Q(amount__gt=250000)).exists()

    # Stage history: starts empty after the deal was created, ends at the deal's stage.
    first = StageChange.objects.filter(from_stage="")
    assert first.count() == counts[2]
    assert not first.filter(changed_at__lte=F("opportunity__created_at")).exists()
    last = (
        StageChange.objects.values("opportunity")
        .annotate(last=Max("changed_at"))
        .values_list("opportunity", "last")
    )
    last_at = dict(last)
    sample = Opportunity.objects.order_by("id")[:300]
    for deal in sample:
        final = deal.stage_changes.get(changed_at=last_at[deal.pk])
        assert final.to_stage == deal.stage

    # Contacts are stored normalised (bulk_create skips save()).
    contact = Contact.objects.exclude(phone="").first()
    assert contact.phone_normalized.startswith("+44")
    assert contact.email == contact.email.lower()
    assert contact.email.endswith("@" + contact.company.domain)

    # Buyer surveys on about a third of closed deals, disagreeing as buyers do: they name
    # price less often than reps, and product fit and timing more often. None went to a
    # do-not-contact contact.
    from reflections.models import Answer
    from surveys.models import SurveyAnswer, SurveyRequest, SurveyStatus

    answered = SurveyRequest.objects.filter(status=SurveyStatus.ANSWERED)
    assert 0.25 <= answered.count() / closed.count() <= 0.4
    assert SurveyRequest.objects.filter(status=SurveyStatus.BOUNCED).exists()
    assert not SurveyRequest.objects.filter(contact__do_not_contact=True).exists()
    surveyed = answered.values("reflection")
    rep_main = Answer.objects.filter(
        reflection__in=surveyed, question__kind="primary_reason", reason__isnull=False
    )
    buyer_main = SurveyAnswer.objects.filter(
        request__in=answered, question__kind="main_reason", reason__isnull=False
    )

    def share(rows, outcome, label):
        return rows.filter(reason__outcome=outcome, reason__label=label).count() / max(
            rows.filter(reason__outcome=outcome).count(), 1
        )

    assert share(buyer_main, "lost", "Price") < share(rep_main, "lost", "Price")
    assert share(buyer_main, "lost", "Product fit") > share(rep_main, "lost", "Product fit")
    assert share(buyer_main, "lost", "Timing") > share(rep_main, "lost", "Timing")
    rep_said = dict(rep_main.values_list("reflection_id", "reason_id"))
    pairs = [
        (rep_said[r], b)
        for r, b in buyer_main.values_list("request__reflection_id", "reason_id")
        if r in rep_said
    ]
    agree = sum(1 for a, b in pairs if a == b) / len(pairs)
    assert 0.15 <= agree <= 0.5, agree

    # Do-not-contact has one source of truth: every flagged contact has an active suppression.
    from customers.models import Contact
    from suppressions.models import Suppression

    flagged = set(Contact.objects.filter(do_not_contact=True).values_list("pk", flat=True))
    suppressed = set(
        Suppression.objects.filter(
            reason="do_not_contact", lifted_at__isnull=True, contact__isnull=False
        ).values_list("contact_id", flat=True)
    )
    assert flagged and flagged == suppressed
