"""
The objection playbook of the company page, stored by the rollup: the rebuild and the refresh
after closes leave exactly what the live computation (reflections.selectors.objection_playbook)
gives, and the page reads the stored rows without building anything.
"""

import datetime
import random
import zoneinfo
from unittest import mock

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from insights import playbook, services
from insights.models import PlaybookEntry, PlaybookQuote
from opportunities.models import Stage
from reflections import selectors
from reflections.models import Answer, Objection, QuestionKind, Reflection
from tests.factories import CompanyFactory, OpportunityFactory, ProductFactory
from tests.insights.conftest import Closer

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 6, 15)
NOON = datetime.datetime(2026, 6, 15, 12, tzinfo=zoneinfo.ZoneInfo("Europe/London"))
OBJECTIONS = ["Price too high", "Missing feature", "Integration effort", "Contract terms"]
# Few wordings, so that repeated ones are dropped from the quotes.
TEXTS = [
    "Phased the licence over two budgets.",
    "Ran a two-day integration pilot.",
    "Brought their CFO to a reference call.",
    "Showed the ROI model in week one.",
    "Offered a fixed-price migration.",
]


@pytest.fixture(autouse=True)
def _today():
    with time_machine.travel(NOON, tick=False):
        yield


def ago(days: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=days)


class World:
    """Random closes of three products around the year's edge, from a seeded generator."""

    def __init__(self, rep, seed: int = 7):
        self.random = random.Random(seed)
        self.products = [ProductFactory(name=f"Product {n}") for n in "ABC"]
        self.closer = Closer(rep, product=self.products[0])
        # A customer with open deals of each product set the page may show.
        self.companies = {}
        for combo in ((0,), (1,), (0, 1), (0, 1, 2)):
            company = CompanyFactory()
            for i in combo:
                OpportunityFactory(
                    owner=rep, company=company, product=self.products[i], stage=Stage.PROPOSAL
                )
            self.companies[combo] = company

    def close(self, day: datetime.date | None = None, outcome: str | None = None, **kwargs):
        pick = self.random
        outcome = outcome or pick.choice(["won", "won", "lost", "no_decision"])
        day = day or ago(pick.choice([0, 3, 40, 200, 330, 364, 365, 366, 380, 500]))
        fields = {
            "objections": (
                pick.sample(OBJECTIONS, pick.randrange(0, 3)) if outcome != "no_decision" else []
            ),
            "text": pick.choice(TEXTS) if outcome == "won" and pick.random() < 0.8 else "",
            "product": pick.choice(self.products),
        }
        return self.closer.close(outcome, day, None, **{**fields, **kwargs})

    def expected(self, combo) -> list:
        ids = [self.products[i].pk for i in combo]
        return [
            (
                item["label"],
                item["times"],
                [
                    (
                        a["text"],
                        a["reflection__closed_date"],
                        a["reflection__opportunity__product__name"],
                    )
                    for a in item["answers"]
                ],
            )
            for item in selectors.objection_playbook(ids)
        ]

    def stored(self, combo) -> list:
        return shown(playbook.playbook_for(self.companies[combo].pk)["playbook"])


def shown(items) -> list:
    return [
        (
            item["label"],
            item["times"],
            [(a["text"], a["closed_date"], a["product"]) for a in item["answers"]],
        )
        for item in items
    ]


def stored_rows() -> tuple[set, set]:
    return (
        set(
            PlaybookEntry.objects.values_list(
                "product_id", "period_kind", "period_start", "objection_id", "heard", "won"
            )
        ),
        set(
            PlaybookQuote.objects.values_list(
                "product_id", "objection_id", "rank", "answer_id", "text", "closed_date"
            )
        ),
    )


def mark(*reflections) -> None:
    services.insights_mark_stale(dates=[r.closed_date for r in reflections])


def reopen(reflection) -> None:
    Reflection.objects.filter(pk=reflection.pk).update(current=False)
    mark(reflection)


def amend(reflection, *, text: str, objection: str) -> None:
    """As reflection_amend does: the answers are replaced by new ones."""
    question = {q.kind: q for q in reflection.prompt_set.questions.all()}
    reflection.answers.filter(question__kind__in=["short_text", "objections"]).delete()
    Answer.objects.create(
        reflection=reflection,
        question=question[QuestionKind.OBJECTIONS],
        objection=Objection.objects.get(label=objection),
    )
    if reflection.outcome == "won":
        Answer.objects.create(
            reflection=reflection, question=question[QuestionKind.SHORT_TEXT], text=text
        )
    mark(reflection)


def test_rebuild_stores_what_the_live_playbook_computes(rep):
    world = World(rep)
    for _ in range(120):
        world.close()
    services.insights_rebuild()
    for combo in world.companies:
        expected = world.expected(combo)
        assert expected, combo  # the world has objections in every product set
        assert world.stored(combo) == expected, combo
    # Month rows are the sums of their days.
    by_month = {}
    for row in PlaybookEntry.objects.filter(period_kind="day"):
        key = (row.product_id, row.period_start.replace(day=1), row.objection_id)
        heard, won = by_month.get(key, (0, 0))
        by_month[key] = (heard + row.heard, won + row.won)
    assert {
        (r.product_id, r.period_start, r.objection_id): (r.heard, r.won)
        for r in PlaybookEntry.objects.filter(period_kind="month")
    } == by_month


def test_rebuild_again_changes_nothing(rep):
    world = World(rep)
    for _ in range(40):
        world.close()
    services.insights_rebuild()
    before = stored_rows()
    with CaptureQueriesContext(connection) as queries:
        services.insights_playbook_write(months=None)
    assert stored_rows() == before
    assert not [q for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]


def test_a_won_close_updates_the_stored_row_and_the_quotes(rep):
    world = World(rep)
    price = Objection.objects.get(label="Price too high")
    product = world.products[0]
    world.close(ago(3), "lost", product=product, objections=["Price too high"])
    services.insights_rebuild()
    month = PlaybookEntry.objects.get(
        product=product, period_kind="month", period_start=TODAY.replace(day=1), objection=price
    )
    assert (month.heard, month.won) == (1, 0)

    won = world.closer.close(
        "won", TODAY, None, objections=["Price too high"], text="Split the fee.", product=product
    )
    mark(won)
    services.insights_refresh_pending()

    month.refresh_from_db()
    day = PlaybookEntry.objects.get(
        product=product, period_kind="day", period_start=TODAY, objection=price
    )
    assert (month.heard, month.won) == (2, 1)
    assert (day.heard, day.won) == (1, 1)
    quote = PlaybookQuote.objects.get(product=product, objection=price)
    assert (quote.rank, quote.text, quote.closed_date) == (1, "Split the fee.", TODAY)
    assert world.stored((0,)) == world.expected((0,))


def test_the_first_refresh_after_an_upgrade_stores_the_whole_playbook(rep):
    """Nothing stored yet (the migration stores nothing): a refresh of one month stores all."""
    world = World(rep)
    for _ in range(60):
        world.close()
    assert not PlaybookEntry.objects.exists()
    won = world.closer.close(
        "won",
        TODAY,
        None,
        objections=["Price too high"],
        text="Split the fee.",
        product=world.products[0],
    )
    mark(won)
    services.insights_refresh_pending()
    for combo in world.companies:
        assert world.stored(combo) == world.expected(combo), combo


def test_refresh_after_closes_reopenings_and_amendments_equals_a_rebuild(rep):
    """
    Random sequences of closes, reopenings and amendments, each followed by the refresh, leave
    exactly the rows a rebuild leaves (also when a reopening empties a stored quote list).
    """
    for seed in range(3):
        world = World(rep, seed=seed)
        pick = world.random
        for _ in range(30):
            world.close()
        services.insights_rebuild()
        for _ in range(12):
            action = pick.choice(["close", "close", "reopen", "amend"])
            current = list(Reflection.objects.filter(current=True, outcome__in=["won", "lost"]))
            if action == "close" or not current:
                mark(*[world.close(ago(pick.choice([0, 1, 2, 35]))) for _ in range(3)])
            elif action == "reopen":
                # The newest first, as reopening a just-won deal does: it leaves the stored list.
                newest = sorted(current, key=lambda r: (r.closed_date, r.pk))[-3:]
                reopen(pick.choice(newest))
            else:
                amend(
                    pick.choice(current), text=pick.choice(TEXTS), objection=pick.choice(OBJECTIONS)
                )
            services.insights_refresh_pending()
            refreshed = stored_rows()
            services.insights_rebuild()
            assert stored_rows() == refreshed, (seed, action)
        for combo in world.companies:
            assert world.stored(combo) == world.expected(combo)
        Reflection.objects.all().delete()


def test_reopening_a_quote_reads_the_one_below_from_history(rep):
    """Ten won answers, nine stored: reopening the newest brings back the tenth."""
    world = World(rep)
    product = world.products[0]
    reflections = [
        world.closer.close(
            "won",
            ago(100 - 10 * i),  # one a month or so: the newest alone in its month
            None,
            objections=["Missing feature"],
            text=f"Answer {i}",
            product=product,
        )
        for i in range(10)
    ]
    services.insights_rebuild()
    assert PlaybookQuote.objects.filter(product=product).count() == 9
    assert not PlaybookQuote.objects.filter(text="Answer 0").exists()
    reopen(reflections[-1])
    services.insights_refresh_pending()
    texts = list(PlaybookQuote.objects.filter(product=product).values_list("text", flat=True))
    assert texts == [f"Answer {i}" for i in range(8, -1, -1)]


# --- the company page --------------------------------------------------------------------------
def test_company_page_reads_the_stored_playbook_and_builds_nothing(rep_client, rep):
    world = World(rep)
    for _ in range(60):
        world.close()
    services.insights_rebuild()
    company = world.companies[(0, 1, 2)]
    url = reverse("customers:company_detail", args=[company.pk])
    with (
        mock.patch.object(selectors, "objection_playbook") as builder,
        mock.patch.object(playbook, "entries") as entries,
        mock.patch.object(playbook, "quotes") as quotes,
        CaptureQueriesContext(connection) as queries,
    ):
        response = rep_client.get(url)
    assert response.status_code == 200
    assert not builder.called and not entries.called and not quotes.called
    touching = [q["sql"] for q in queries if "playbook" in q["sql"]]
    # The objections heard most (open products as a subquery), then their quotes.
    assert len(touching) == 2, touching
    html = response.content.decode()
    for label, times, answers in world.expected((0, 1, 2)):
        assert f'{label} <span class="muted">· heard in {times} closed deal' in html
        for text, closed, product in answers:
            assert f'“{text}” <footer class="muted">Won, {product}, {closed:%b %Y}' in html


def test_the_playbook_section_takes_the_same_queries_however_much_was_heard(rep):
    counts = []
    for n in (5, 80):
        world = World(rep, seed=n)
        for _ in range(n):
            world.close()
        services.insights_rebuild()
        with CaptureQueriesContext(connection) as queries:
            context = playbook.playbook_for(world.companies[(0, 1, 2)].pk)
        assert context["playbook"]
        counts.append(len(queries))
    assert counts == [2, 2]


def test_before_the_first_rollup_the_page_says_when_the_playbook_appears(rep_client, rep):
    world = World(rep)
    world.close(ago(3), "lost", objections=["Price too high"], product=world.products[0])
    url = reverse("customers:company_detail", args=[world.companies[(0,)].pk])
    html = rep_client.get(url).content.decode()
    assert "The playbook is worked out with the reports and is not ready yet." in html
    assert "No objections recorded" not in html
    services.insights_rebuild()
    html = rep_client.get(url).content.decode()
    assert "not ready yet" not in html
    assert 'Price too high <span class="muted">· heard in 1 closed deal</span>' in html


def test_without_open_deals_or_objections_the_page_says_which(rep_client, rep):
    world = World(rep)
    world.close(ago(3), "lost", objections=[], product=world.products[2])
    services.insights_rebuild()
    quiet = reverse("customers:company_detail", args=[world.companies[(0,)].pk])
    assert "No objections recorded for these products" in rep_client.get(quiet).content.decode()
    closed_only = reverse("customers:company_detail", args=[CompanyFactory().pk])
    assert "No open deals here, so no playbook yet." in rep_client.get(closed_only).content.decode()
