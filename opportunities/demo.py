"""
Demo products, competitors and a lived-in pipeline for every demo rep: deals in every open
stage, a history of won, lost and no-decision deals, next steps (some overdue) and stage
history consistent with each deal's path. Deterministic for a given random seed; written in
batches with bulk_create so 100,000 deals never sit in memory at once. Skipped when deals exist.
"""

import datetime
from collections.abc import Iterator
from decimal import Decimal
from random import Random

from django.utils import timezone

from accounts.demo import DemoContext
from accounts.models import Role, User
from customers import demo as demo_customers
from customers.models import Company, Contact, Region
from opportunities.currency import currency_rates, to_reporting
from opportunities.models import (
    OPEN_STAGES,
    Competitor,
    Currency,
    Opportunity,
    Product,
    ProductLine,
    Stage,
    StageChange,
)

DEALS = {"small": 3000, "large": 100_000}
BATCH_SIZE = 2000
# A year of history: most deals have closed (≈60,000 of the large set's 100,000).
CLOSED_SHARE = 0.6
HISTORY_DAYS = 365
DEMO_REP = "rep@debrief.example"
# The persona everyone logs in as first gets a pipeline a person could hold in their head.
DEMO_REP_OPEN, DEMO_REP_CLOSED, DEMO_REP_OVERDUE = 25, 30, 4

PRODUCT_LINES = {
    "Analytics": ["Insight Dashboards", "Forecasting", "Data Connectors"],
    "Payments": ["Checkout", "Invoicing", "Payouts"],
    "Workflow": ["Approvals", "Case Management"],
}
COMPETITORS = {
    "Ledgerly": "https://ledgerly.example",
    "Quotient Labs": "https://quotientlabs.example",
    "Brightpath Software": "https://brightpath.example",
    "Corvane": "https://corvane.example",
    "Tallystack": "https://tallystack.example",
    "Northbeam Analytics": "https://northbeam.example",
}
OPEN_WEIGHTS = {
    Stage.PROSPECTING: 30,
    Stage.QUALIFICATION: 28,
    Stage.PROPOSAL: 24,
    Stage.NEGOTIATION: 18,
}
CLOSED_WEIGHTS = {Stage.WON: 45, Stage.LOST: 40, Stage.NO_DECISION: 15}
COMPETITOR_CHANCE = {
    Stage.WON: 0.55,
    Stage.LOST: 0.75,
    Stage.NO_DECISION: 0.3,
}
DEAL_KINDS = ["rollout", "pilot", "renewal", "expansion", "upgrade", "replacement", "trial"]
TEAMS_FOR = ["Finance", "Operations", "Support", "Sales", "Procurement", "HR", "IT"]
NEXT_STEPS = [
    "Send revised proposal",
    "Book demo with the finance team",
    "Follow up on the security questionnaire",
    "Agree pilot success criteria",
    "Call procurement about payment terms",
    "Share customer references",
    "Walk the IT lead through the integration",
    "Confirm budget holder and sign-off process",
    "Send pricing options for three years",
    "Schedule workshop with operations",
    "Chase legal review of the contract",
    "Check in after their board meeting",
    "Prepare ROI summary for the CFO",
    "Arrange call with their data team",
]
CURRENCY_FOR_REGION = {Region.EUROPE: Currency.EUR, Region.NORTH_AMERICA: Currency.USD}
LEGAL_SUFFIXES = sorted(
    {suffix for suffixes in demo_customers.LEGAL_SUFFIXES.values() for suffix in suffixes},
    key=len,
    reverse=True,
)
# Passed instead of a due date: let the generator decide whether there is a next step.
ANY_NEXT_STEP = object()


def _without_legal_suffix(name: str) -> str:
    for suffix in LEGAL_SUFFIXES:
        if name.endswith(f" {suffix}"):
            return name[: -len(suffix) - 1]
    return name


def _weighted(rng: Random, weights: dict) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _catalogue(ctx: DemoContext) -> tuple[list[Product], list[Competitor]]:
    products = []
    for line_name, product_names in PRODUCT_LINES.items():
        line, _ = ProductLine.objects.get_or_create(name=line_name)
        for name in product_names:
            products.append(Product.objects.get_or_create(line=line, name=name)[0])
    competitors = [
        Competitor.objects.get_or_create(name=name, defaults={"website": website})[0]
        for name, website in COMPETITORS.items()
    ]
    ctx.data["product_lines"] = list(ProductLine.objects.all())
    ctx.data["products"] = products
    ctx.data["competitors"] = competitors
    return products, competitors


class _Pipeline:
    """Builds deals and their stage history; one instance per seed run."""

    def __init__(self, rng: Random, products: list[Product], competitors: list[Competitor]):
        self.rng = rng
        self.products = products
        self.competitors = competitors
        self.today = timezone.localdate()
        self.now = timezone.now()
        self.rates = currency_rates()
        self.tz = timezone.get_current_timezone()
        # (id, name, region) of every company, and contact ids by company: a few MB at most.
        self.companies = list(Company.objects.order_by("id").values_list("id", "name", "region"))
        self.contacts: dict[int, list[int]] = {}
        for company_id, contact_id in (
            Contact.objects.order_by("company_id", "id")
            .values_list("company_id", "id")
            .iterator(chunk_size=BATCH_SIZE)
        ):
            self.contacts.setdefault(company_id, []).append(contact_id)

    def _company(self) -> tuple[int, str, str]:
        # Skewed towards the first companies: key accounts carry many deals, most carry few.
        index = int(len(self.companies) * self.rng.random() ** 1.5)
        return self.companies[min(index, len(self.companies) - 1)]

    def _at(self, day: datetime.date) -> datetime.datetime:
        time = datetime.time(self.rng.randint(8, 17), self.rng.randint(0, 59))
        return datetime.datetime.combine(day, time, tzinfo=self.tz)

    def _path(self, stage: str) -> list[str]:
        if stage in OPEN_STAGES:
            return list(OPEN_STAGES[: OPEN_STAGES.index(stage) + 1])
        if stage == Stage.WON:
            reached = len(OPEN_STAGES) - (1 if self.rng.random() < 0.2 else 0)
        else:
            reached = self.rng.randint(1 if stage == Stage.LOST else 2, len(OPEN_STAGES))
        return [*OPEN_STAGES[:reached], stage]

    def deal(
        self, owner: User, stage: str, next_step_due: object = ANY_NEXT_STEP
    ) -> tuple[Opportunity, list[tuple[str, datetime.datetime]]]:
        """
        One deal and its stage path as (to_stage, changed_at) pairs, oldest first. An open
        deal gets a next step due on next_step_due, none for None, or a random one.
        """
        rng = self.rng
        company_id, company_name, region = self._company()
        contact_ids = self.contacts.get(company_id)
        product = rng.choice(self.products)
        short_name = _without_legal_suffix(company_name)
        kind = rng.choice(DEAL_KINDS)
        title = (
            f"{product.name} {kind} for {rng.choice(TEAMS_FOR)}"
            if rng.random() < 0.3
            else f"{short_name}: {product.name} {kind}"
        )
        amount = Decimal(round(2000 * 125 ** rng.random(), -2)).quantize(Decimal("1.00"))
        currency = CURRENCY_FOR_REGION.get(region, Currency.GBP)
        deal = Opportunity(
            company_id=company_id,
            contact_id=rng.choice(contact_ids) if contact_ids and rng.random() < 0.9 else None,
            product=product,
            owner=owner,
            title=title[:200],
            amount=amount,
            currency=currency,
            # bulk_create skips save(), which keeps this figure.
            amount_reporting=to_reporting(amount, currency, self.rates),
            stage=stage,
        )
        path = self._path(stage)
        if stage in OPEN_STAGES:
            age_days = rng.randint(7 + 10 * len(path), 60 + 45 * len(path))
            created_at = self.now - datetime.timedelta(days=age_days, minutes=rng.randint(0, 600))
            end = self.now - datetime.timedelta(hours=1)
            slipped = rng.random() < 0.12
            deal.expected_close_date = self.today + datetime.timedelta(
                days=rng.randint(-30, -1) if slipped else rng.randint(7, 180)
            )
            if next_step_due is ANY_NEXT_STEP:
                next_step_due = None
                if rng.random() < 0.85:
                    offset = rng.randint(-14, -1) if rng.random() < 0.15 else rng.randint(0, 28)
                    next_step_due = self.today + datetime.timedelta(days=offset)
            if isinstance(next_step_due, datetime.date):
                deal.next_step = rng.choice(NEXT_STEPS)
                deal.next_step_due = next_step_due
        else:
            # Spread over a year, so that every quarter a report compares with is a full one.
            deal.closed_date = self.today - datetime.timedelta(days=rng.randint(1, HISTORY_DAYS))
            deal.expected_close_date = deal.closed_date + datetime.timedelta(
                days=rng.randint(-21, 21)
            )
            end = self._at(deal.closed_date)
            created_at = end - datetime.timedelta(days=rng.randint(20, 160))
        chance = COMPETITOR_CHANCE.get(stage, 0.5)
        if rng.random() < chance:
            deal.primary_competitor = rng.choice(self.competitors)
        deal.created_at = created_at
        # The first stage is recorded just after the deal is created, the last at `end`;
        # moves in between fall in order at random points.
        first = created_at + datetime.timedelta(seconds=1)
        span = (end - first).total_seconds()
        moments = sorted(rng.uniform(0, span) for _ in range(len(path) - 2))
        times = [first, *(first + datetime.timedelta(seconds=s) for s in moments)]
        if len(path) > 1:
            times.append(end)
        return deal, list(zip(path, times, strict=True))

    def plan_for(self, reps: list[User], total: int) -> Iterator[tuple[User, str, object]]:
        """(owner, stage, next step due) for every deal, rep by rep."""
        rng = self.rng
        demo = [rep for rep in reps if rep.email == DEMO_REP]
        others = [rep for rep in reps if rep.email != DEMO_REP]
        for rep in demo:
            for i in range(DEMO_REP_OPEN):
                stage = OPEN_STAGES[i % len(OPEN_STAGES)]
                if i < DEMO_REP_OVERDUE:
                    due = self.today - datetime.timedelta(days=rng.randint(1, 9))
                elif i < DEMO_REP_OPEN - 4:
                    due = self.today + datetime.timedelta(days=rng.randint(0, 21))
                else:
                    due = None
                yield rep, stage, due
            for _ in range(DEMO_REP_CLOSED):
                yield rep, _weighted(rng, CLOSED_WEIGHTS), None
        remaining = max(total - len(demo) * (DEMO_REP_OPEN + DEMO_REP_CLOSED), 0)
        if not others:
            return
        for n, rep in enumerate(others):
            share = remaining // len(others) + (1 if n < remaining % len(others) else 0)
            for _ in range(share):
                if rng.random() < CLOSED_SHARE:
                    yield rep, _weighted(rng, CLOSED_WEIGHTS), None
                else:
                    yield rep, _weighted(rng, OPEN_WEIGHTS), ANY_NEXT_STEP


def _write(batch: list[tuple[Opportunity, list]]) -> int:
    Opportunity.objects.bulk_create([deal for deal, _ in batch], batch_size=BATCH_SIZE)
    changes = []
    for deal, path in batch:
        previous = ""
        for to_stage, changed_at in path:
            changes.append(
                StageChange(
                    opportunity_id=deal.pk,
                    from_stage=previous,
                    to_stage=to_stage,
                    changed_by_id=deal.owner_id,
                    changed_at=changed_at,
                )
            )
            previous = to_stage
    StageChange.objects.bulk_create(changes, batch_size=BATCH_SIZE)
    return len(changes)


def seed(ctx: DemoContext) -> None:
    products, competitors = _catalogue(ctx)
    if Opportunity.objects.exists():
        ctx.log("  deals already exist; left as they are")
        return
    reps = ctx.data.get("reps") or list(User.objects.filter(role=Role.REP, is_active=True))
    pipeline = _Pipeline(ctx.rng, products, competitors)
    if not pipeline.companies or not reps:
        ctx.log("  no companies or reps to build a pipeline for; skipped")
        return
    deals = changes = 0
    batch: list[tuple[Opportunity, list]] = []
    for owner, stage, due in pipeline.plan_for(reps, DEALS[ctx.scale]):
        batch.append(pipeline.deal(owner, stage, due))
        if len(batch) == BATCH_SIZE:
            changes += _write(batch)
            deals += len(batch)
            batch = []
    if batch:
        changes += _write(batch)
        deals += len(batch)
    ctx.log(
        f"  products: {len(products)}, competitors: {len(competitors)}, "
        f"deals: {deals}, stage changes: {changes}"
    )
