"""
Demo reflections, call debriefs and suppressions for seed_demo. Deterministic for a seed and
bulk-inserted, so the large scale (≈60,000 reflections) loads in minutes.

The answers carry patterns worth finding: losses on price climb in the latest full quarter,
most of all for one product line, public-sector deals stall on budget and timing, enterprise
wins lean on relationships and references. Reps' read and the customer's word disagree now and then.
"""

import datetime
from random import Random

from django.db.models import Q
from django.utils import timezone

from accounts.demo import DemoContext
from accounts.models import Role, User
from customers.models import Contact
from opportunities.models import CLOSED_STAGES, Competitor, Opportunity
from reflections.models import (
    Answer,
    CallDebrief,
    Objection,
    Outcome,
    PromptSet,
    QuestionKind,
    Reason,
    Reflection,
)
from suppressions import decisions
from suppressions import services as suppressions_services
from suppressions.models import OverrideStatus, Suppression, SuppressionOverride, SuppressionRule

BATCH = 2000

LOST_WEIGHTS = {
    "Price": 18,
    "Product fit": 16,
    "Timing": 12,
    "Budget": 10,
    "Lost to competitor": 16,
    "Relationship": 8,
    "Champion left": 6,
    "No decision / status quo": 8,
}
WON_WEIGHTS = {
    "Product fit": 30,
    "Relationship": 16,
    "Price": 10,
    "Speed of delivery": 10,
    "References": 10,
    "Integration with their stack": 14,
    "Support and service": 10,
}
NO_DECISION_WEIGHTS = {
    "Budget frozen": 25,
    "Priorities changed": 30,
    "No internal consensus": 25,
    "Champion left": 10,
    "Timing": 10,
}
OBJECTION_WEIGHTS = {
    "Price too high": 24,
    "Missing feature": 14,
    "Integration effort": 16,
    "Security or compliance review": 12,
    "Contract terms": 8,
    "Switching cost": 10,
    "Happy with current tool": 10,
    "No budget this year": 6,
}

DIFFERENTLY = [
    "Get the economic buyer in the room before the proposal, not after.",
    "Qualify budget in the first call instead of assuming it.",
    "Run a pilot with their ops team early; the demo alone did not convince them.",
    "Map the decision process properly. We only talked to IT.",
    "Bring a reference customer from their sector sooner.",
    "Address the integration worry with an architect on the second call.",
    "Push for a mutual close plan with dates; we let it drift for weeks.",
    "Price it in phases so the first year fits their budget cycle.",
    "Build a second champion; when Sarah left we had nobody.",
    "Be honest earlier that the reporting module is on the roadmap, not shipped.",
    "Stop discounting before they ask; it made us look cheap and they still went elsewhere.",
    "Ask what happens if they do nothing. We never made the status quo look risky.",
]
HANDLED = {
    "Price too high": [
        "Showed the payback model with their own volumes; it paid back in seven months.",
        "Phased the licence over two budget years instead of discounting.",
        "Compared total cost with their current tool including the admin time it eats.",
    ],
    "Missing feature": [
        "Showed the workaround live and committed a date for the feature in writing.",
        "Had product join a call to walk through the roadmap.",
    ],
    "Integration effort": [
        "Ran a two-day integration pilot with their developer; it took one.",
        "Sent the architect to map the integration before the proposal.",
    ],
    "Security or compliance review": [
        "Sent the security pack and SOC 2 report before they asked.",
        "Booked our security lead for their review call; it closed in a week.",
    ],
    "Contract terms": ["Agreed a shorter first term with an option to extend."],
    "Switching cost": ["Included migration of their historic data at no extra cost."],
    "Happy with current tool": [
        "Asked what their current tool cannot do; the answer was the whole proposal.",
    ],
    "No budget this year": ["Started with one team on a small plan, funded from opex."],
}
DEBRIEF_NOTES = [
    ("Procurement wants three quotes before anything over 50k goes to the board.", True),
    ("Their CFO signs off every software purchase personally; talk ROI, not features.", True),
    ("They are consolidating vendors this year: fewer tools, bigger contracts.", True),
    ("IT security review takes six weeks; start it as soon as they are interested.", True),
    ("Head of ops is frustrated with the current tool's reporting.", False),
    ("They asked for a reference in their sector and a trial for one team.", False),
    ("Budget planning happens in September; anything later waits a year.", False),
    ("The champion is new in the role and wants a quick win.", False),
    ("They had a bad experience with a previous supplier's onboarding.", False),
    ("Good call. They want a proposal by the end of the month.", False),
]


def _pick(rng: Random, weights: dict[str, int]) -> str:
    labels = list(weights)
    return rng.choices(labels, weights=[weights[label] for label in labels], k=1)[0]


def _quarter_start(day: datetime.date) -> datetime.date:
    return datetime.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _sets() -> dict[str, tuple[PromptSet, dict[str, object]]]:
    sets = {}
    for outcome in Outcome.values:
        prompt_set = PromptSet.objects.get(outcome=outcome, active=True, product_line__isnull=True)
        sets[outcome] = (prompt_set, {q.kind: q for q in prompt_set.questions.all()})
    return sets


class _Writer:
    """Turns closed deals into reflections with answers that carry the demo's patterns."""

    def __init__(self, rng: Random, today: datetime.date, hot_line_id: int | None):
        self.rng = rng
        self.hot_quarter = _quarter_start(_quarter_start(today) - datetime.timedelta(days=1))
        self.current_quarter = _quarter_start(today)
        self.hot_line_id = hot_line_id
        self.sets = _sets()
        self.reasons = {
            (r.outcome, r.label): r for r in Reason.objects.filter(merged_into__isnull=True)
        }
        self.objections = {o.label: o for o in Objection.objects.all()}
        self.competitors = list(Competitor.objects.values_list("pk", flat=True))

    def _lost_weights(self, deal) -> dict[str, int]:
        weights = dict(LOST_WEIGHTS)
        closed_quarter = _quarter_start(deal.closed_date)
        if deal.product.line_id == self.hot_line_id and closed_quarter in (
            self.hot_quarter,
            self.current_quarter,
        ):
            weights["Price"] *= 5  # the shift the insights should flag, led by one line
        elif closed_quarter in (self.hot_quarter, self.current_quarter):
            weights["Price"] *= 3
        if deal.company.segment == "public":
            weights["Budget"] *= 3
            weights["Timing"] *= 2
        if deal.primary_competitor_id:
            weights["Lost to competitor"] *= 2
        return weights

    def _won_weights(self, deal) -> dict[str, int]:
        weights = dict(WON_WEIGHTS)
        if deal.company.size_band == "enterprise":
            weights["Relationship"] *= 2
            weights["References"] *= 2
        return weights

    def answers(self, deal, reflection: Reflection) -> list[Answer]:
        rng = self.rng
        outcome = deal.stage
        _, questions = self.sets[outcome]
        out: list[Answer] = []

        def add(kind, **values):
            out.append(Answer(reflection=reflection, question=questions[kind], **values))

        weights = {
            Outcome.LOST: self._lost_weights,
            Outcome.WON: self._won_weights,
            Outcome.NO_DECISION: lambda d: NO_DECISION_WEIGHTS,
        }[outcome](deal)
        primary = _pick(rng, weights)
        if rng.random() < 0.05:
            add(QuestionKind.PRIMARY_REASON, is_unknown=True)
        else:
            source = "customer" if rng.random() < 0.6 else "rep"
            # Reps read "price" into losses more often than customers say it.
            if outcome == Outcome.LOST and source == "rep" and rng.random() < 0.15:
                primary = "Price"
            add(
                QuestionKind.PRIMARY_REASON,
                reason=self.reasons[(outcome, primary)],
                reason_source=source,
            )
        if QuestionKind.CONTRIBUTING_REASONS in questions and rng.random() < 0.85:
            extra = {_pick(rng, weights) for _ in range(rng.randint(2, 5))} - {primary}
            for label in sorted(extra):
                add(QuestionKind.CONTRIBUTING_REASONS, reason=self.reasons[(outcome, label)])
        if QuestionKind.COMPETITOR in questions and deal.primary_competitor_id:
            add(QuestionKind.COMPETITOR, competitor_id=deal.primary_competitor_id)
        elif (
            QuestionKind.COMPETITOR in questions
            and self.competitors
            and rng.random() < (0.5 if outcome == Outcome.LOST else 0.6)
        ):
            add(QuestionKind.COMPETITOR, competitor_id=rng.choice(self.competitors))
        heard: list[str] = []
        if QuestionKind.OBJECTIONS in questions:
            objection_weights = dict(OBJECTION_WEIGHTS)
            if primary == "Price":
                objection_weights["Price too high"] *= 3
            heard = sorted({_pick(rng, objection_weights) for _ in range(rng.randint(2, 5))})
            if outcome == Outcome.WON and heard:
                # The won prompt asks how the biggest objection was answered: keep that one.
                heard = [rng.choice(heard)]
            for label in heard:
                add(QuestionKind.OBJECTIONS, objection=self.objections[label])
        if outcome == Outcome.LOST:
            add(QuestionKind.SHORT_TEXT, text=rng.choice(DIFFERENTLY))
        elif outcome == Outcome.WON:
            if heard and rng.random() < 0.8:
                add(QuestionKind.SHORT_TEXT, text=rng.choice(HANDLED[heard[0]]))
        else:
            add(QuestionKind.YES_NO, number=1 if rng.random() < 0.6 else 0)
            if rng.random() < 0.7:
                add(QuestionKind.SCALE, number=rng.randint(1, 5))
            if rng.random() < 0.5:
                add(QuestionKind.SHORT_TEXT, text=rng.choice(DIFFERENTLY))
        return out


def _reflections(ctx: DemoContext) -> int:
    today = timezone.localdate()
    lines = ctx.data.get("product_lines") or []
    writer = _Writer(ctx.rng, today, lines[0].pk if lines else None)
    deals = (
        Opportunity.objects.filter(stage__in=CLOSED_STAGES)
        .select_related("company", "product")
        .only(
            "id",
            "stage",
            "closed_date",
            "owner_id",
            "primary_competitor_id",
            "company__segment",
            "company__size_band",
            "product__line_id",
        )
        .order_by("id")
    )
    written = 0
    batch: list[tuple[Reflection, object]] = []

    def flush():
        nonlocal written
        reflections = Reflection.objects.bulk_create([r for r, _ in batch])
        answers = []
        for reflection, deal in zip(reflections, (d for _, d in batch), strict=True):
            answers.extend(writer.answers(deal, reflection))
        Answer.objects.bulk_create(answers, batch_size=BATCH * 4)
        written += len(reflections)

    for deal in deals.iterator(chunk_size=BATCH):
        prompt_set, _ = writer.sets[deal.stage]
        submitted = timezone.make_aware(
            datetime.datetime.combine(deal.closed_date, datetime.time(17, ctx.rng.randint(0, 59)))
        )
        batch.append(
            (
                Reflection(
                    opportunity_id=deal.pk,
                    author_id=deal.owner_id,
                    outcome=deal.stage,
                    prompt_set=prompt_set,
                    closed_date=deal.closed_date,
                    submitted_at=submitted,
                ),
                deal,
            )
        )
        if len(batch) >= BATCH:
            flush()
            batch = []
    if batch:
        flush()
    PromptSet.objects.filter(reflections__isnull=False, frozen_at__isnull=True).update(
        frozen_at=timezone.now()
    )
    return written


def _debriefs(ctx: DemoContext) -> int:
    rng = ctx.rng
    today = timezone.localdate()
    rows = list(
        Opportunity.objects.order_by("company_id", "id")
        .values_list("company_id", "owner_id", "contact_id")
        .distinct()
    )
    by_company: dict[int, tuple[int, int | None]] = {}
    for company_id, owner_id, contact_id in rows:
        by_company.setdefault(company_id, (owner_id, contact_id))
    demo_rep = User.objects.filter(email="rep@debrief.example").values_list("pk", flat=True).first()
    debriefs = []
    for company_id, (owner_id, contact_id) in by_company.items():
        if rng.random() > (0.6 if owner_id == demo_rep else 0.15):
            continue
        for _ in range(rng.randint(1, 3)):
            note, card = rng.choice(DEBRIEF_NOTES)
            debriefs.append(
                CallDebrief(
                    company_id=company_id,
                    contact_id=contact_id,
                    author_id=owner_id,
                    call_date=today - datetime.timedelta(days=rng.randint(1, 120)),
                    customer_said=note,
                    next_step=rng.choice(["", "Send the case study", "Book a demo with ops"]),
                    high_card=card and rng.random() < 0.7,
                )
            )
    CallDebrief.objects.bulk_create(debriefs, batch_size=BATCH)
    return len(debriefs)


def _suppressions(ctx: DemoContext) -> int:
    created = sum(
        suppressions_services.rule_rebuild(rule=rule)
        for rule in SuppressionRule.objects.filter(active=True)
    )
    admin = User.objects.filter(role=Role.ADMIN).first()
    contacts = list(
        Contact.objects.filter(do_not_contact=False).order_by("id").values_list("pk", flat=True)
    )
    notes = [
        "Asked not to be called again.",
        "Legal request under data protection rules.",
        "Retired; the mailbox is unmonitored.",
    ]
    for pk in ctx.rng.sample(contacts, min(8, len(contacts))):
        contact = Contact.objects.select_related("company").get(pk=pk)
        suppressions_services.do_not_contact_add(
            actor=admin, company=contact.company, contact=contact, note=ctx.rng.choice(notes)
        )
    return created


def _overrides(ctx: DemoContext) -> None:
    """One pending request from the demo rep, one approved and used by a teammate."""
    rep = User.objects.filter(email="rep@debrief.example").first()
    if rep is None:
        return
    manager = rep.team.managers.first() if rep.team_id else None
    candidates = list(
        Suppression.objects.filter(
            Q(source_opportunity__owner__team_id=rep.team_id),
            lifted_at__isnull=True,
            source_opportunity__isnull=False,
            product__isnull=False,
        )
        .filter(decisions.active_on(timezone.localdate()))
        .select_related("source_opportunity", "product", "company", "contact")
        .order_by("id")[:2]
    )
    justifications = [
        "Their new CFO called and asked us to re-pitch the terminal before their Q3 review.",
        "They came back to us after the competitor missed the go-live date.",
    ]
    for index, s in enumerate(candidates):
        requester = s.source_opportunity.owner
        override = SuppressionOverride.objects.create(
            suppression=s,
            company=s.company,
            contact=s.contact,
            product=s.product,
            requested_by=rep if index == 0 else requester,
            justification=justifications[index],
        )
        if index == 1 and manager is not None and requester != manager:
            override.status = OverrideStatus.APPROVED
            override.decided_by = manager
            override.decided_at = timezone.now()
            override.decision_note = "Fine: they asked for it."
            override.save()


def seed(ctx: DemoContext) -> None:
    if Reflection.objects.exists():
        ctx.log("  reflections exist already; left as they are")
        return
    reflections = _reflections(ctx)
    debriefs = _debriefs(ctx)
    suppressions = _suppressions(ctx)
    _overrides(ctx)
    dnc = Suppression.objects.filter(reason="do_not_contact").count()
    ctx.log(
        f"  reflections: {reflections}, debriefs: {debriefs}, derived suppressions: "
        f"{suppressions}, do-not-contact: {dnc}"
    )
