import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Stage
from reflections import brief, selectors
from reflections.models import CallDebrief, Objection, Outcome, QuestionKind, Reason
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def won_answers(objection=None, text="Showed the ROI model in week one."):
    won = selectors.prompt_set_for(Outcome.WON, None)
    primary = won.questions.get(kind=QuestionKind.PRIMARY_REASON)
    data = {
        f"q_{primary.pk}": str(Reason.objects.get(outcome="won", label="Product fit").pk),
        f"q_{primary.pk}_source": "customer",
        f"q_{won.questions.get(kind=QuestionKind.SHORT_TEXT).pk}": text,
    }
    if objection is not None:
        data[f"q_{won.questions.get(kind=QuestionKind.OBJECTIONS).pk}"] = [str(objection.pk)]
    return data


@pytest.fixture
def company(db):
    return CompanyFactory(name="Brightwater")


def test_debrief_is_saved_inline_and_a_high_card_is_pinned(rep_client, rep, company):
    contact = ContactFactory(company=company)
    price = Objection.objects.get(label="Price too high")
    response = rep_client.post(
        reverse("reflections:debrief_create", args=[company.pk]),
        {
            "call_date": timezone.localdate().isoformat(),
            "contact": contact.pk,
            "customer_said": "Their CFO signs off everything above 50k.",
            "objections": [price.pk],
            "high_card": "on",
        },
        **HTMX,
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "Their CFO signs off" in content and 'hx-swap-oob="true"' in content
    debrief = CallDebrief.objects.get()
    assert debrief.author == rep and debrief.high_card and list(debrief.objections.all()) == [price]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("customer_said", "  ", "Write down what the customer said."),
        ("call_date", "2999-01-01", "cannot be in the future"),
        ("call_date", "not-a-date", "Enter a valid date"),
    ],
)
def test_bad_debriefs_are_refused(rep_client, company, field, value, message):
    data = {"call_date": "2026-01-05", "customer_said": "Fine."}
    data[field] = value
    response = rep_client.post(
        reverse("reflections:debrief_create", args=[company.pk]), data, **HTMX
    )
    assert response.status_code == 422 and message in response.content.decode()
    assert not CallDebrief.objects.exists()


def test_debrief_cannot_name_a_contact_of_another_company(rep_client, company):
    stranger = ContactFactory()
    response = rep_client.post(
        reverse("reflections:debrief_create", args=[company.pk]),
        {"call_date": "2026-01-05", "customer_said": "Hi", "contact": stranger.pk},
    )
    assert response.status_code == 422
    assert not CallDebrief.objects.exists()


def test_debrief_cannot_link_a_teammates_deal(rep_client, teammate, company):
    theirs = OpportunityFactory(owner=teammate, company=company)
    response = rep_client.post(
        reverse("reflections:debrief_create", args=[company.pk]),
        {"call_date": "2026-01-05", "customer_said": "Hi", "opportunity": theirs.pk},
    )
    assert response.status_code == 422
    assert not CallDebrief.objects.exists()


def test_unknown_company_is_404(rep_client):
    assert rep_client.get(reverse("reflections:debrief_create", args=[999999])).status_code == 404


def test_playbook_ranks_objections_and_quotes_won_deals(rep, lost_set):
    product = ProductFactory()
    price = Objection.objects.get(label="Price too high")
    integration = Objection.objects.get(label="Integration effort")
    objections_q = lost_set.questions.get(kind=QuestionKind.OBJECTIONS)
    for _ in range(2):
        close(
            rep,
            OpportunityFactory(owner=rep, product=product),
            lost_answers(lost_set, **{f"q_{objections_q.pk}": [str(price.pk)]}),
        )
    close(
        rep,
        OpportunityFactory(owner=rep, product=product),
        won_answers(integration, "Ran a two-day integration pilot."),
        outcome=Outcome.WON,
    )
    close(
        rep,
        OpportunityFactory(owner=rep, product=product),
        won_answers(price, "Phased the licence over two budgets."),
        outcome=Outcome.WON,
    )
    close(
        rep,
        OpportunityFactory(owner=rep),
        won_answers(price, "Other product: not shown."),
        outcome=Outcome.WON,
    )
    with CaptureQueriesContext(connection) as queries:
        playbook = selectors.objection_playbook([product.pk])
    assert len(queries) == 2
    assert [(p["label"], p["times"]) for p in playbook] == [
        ("Price too high", 3),
        ("Integration effort", 1),
    ]
    assert [a["text"] for a in playbook[0]["answers"]] == ["Phased the licence over two budgets."]
    assert [a["text"] for a in playbook[1]["answers"]] == ["Ran a two-day integration pilot."]


def test_playbook_ignores_objections_older_than_a_year(rep, lost_set):
    product = ProductFactory()
    objections_q = lost_set.questions.get(kind=QuestionKind.OBJECTIONS)
    price = Objection.objects.get(label="Price too high")
    reflection = close(
        rep,
        OpportunityFactory(owner=rep, product=product),
        lost_answers(lost_set, **{f"q_{objections_q.pk}": [str(price.pk)]}),
    )
    reflection.closed_date = timezone.localdate() - datetime.timedelta(days=400)
    reflection.save()
    assert selectors.objection_playbook([product.pk]) == []


@pytest.mark.parametrize("pattern", ["old high cards", "new high cards", "every one", "none"])
def test_brief_reads_the_pinned_and_the_latest_debriefs_together(rep, company, pattern):
    """One read (and one for their objections) gives what the two separate reads gave."""
    price = Objection.objects.get(label="Price too high")
    today = timezone.localdate()
    for i in range(16):
        high = {
            "old high cards": i >= 9,
            "new high cards": i in (0, 2, 3, 5, 6, 7, 12),
            "every one": True,
            "none": False,
        }[pattern]
        debrief = CallDebrief.objects.create(
            company=company,
            author=rep,
            # Two a day: the id breaks the tie, as on the page.
            call_date=today - datetime.timedelta(days=i // 2),
            customer_said=f"Note {i}",
            high_card=high,
        )
        debrief.objections.add(price)
    CallDebrief.objects.create(
        company=CompanyFactory(),
        author=rep,
        call_date=today,
        customer_said="Elsewhere",
        high_card=True,
    )
    with CaptureQueriesContext(connection) as queries:
        pinned, latest = selectors.brief_debriefs(company.pk)
        labels = [o.label for d in (*pinned, *latest) for o in d.objections.all()]
    assert len(queries) == 2 and set(labels) == {price.label}
    assert pinned == selectors.high_card_debriefs(company.pk)
    assert latest == selectors.recent_debriefs(company.pk)
    assert len(latest) == 10 and len(pinned) == (0 if pattern == "none" else 5)


def test_brief_sections_keep_a_constant_query_count(rf, rep, lost_set, company):
    counts = []
    for n in (3, 30):
        for i in range(n):
            close(rep, OpportunityFactory(owner=rep, company=company), lost_answers(lost_set))
            CallDebrief.objects.create(
                company=company,
                author=rep,
                call_date=datetime.date(2026, 1, 1),
                customer_said=f"Note {i}",
                high_card=i % 2 == 0,
            )
        OpportunityFactory(owner=rep, company=company, stage=Stage.PROPOSAL)
        request = rf.get("/")
        request.user = rep
        with CaptureQueriesContext(connection) as queries:
            sections = brief.sections(request, company)
            from django.template.loader import render_to_string

            for section in sections:
                render_to_string(section["template"], section["context"], request=request)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
