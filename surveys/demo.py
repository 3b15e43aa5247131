"""
Demo buyer surveys: about a third of closed deals have the buyer's own answers, with the
disagreement win/loss research finds (buyers name product fit and timing more often than reps
do; reps name price more often). Some surveys are still waiting for an answer, a few bounced.
"""

import datetime

from django.conf import settings
from django.utils import timezone

from accounts.demo import DemoContext
from accounts.models import User
from customers.models import Contact
from opportunities.models import Competitor
from reflections.models import Answer, QuestionKind, Reason
from surveys.models import (
    SurveyAnswer,
    SurveyQuestionKind,
    SurveyRequest,
    SurveyStatus,
    SurveyTemplate,
)

BATCH = 2000
# How often the buyer names the rep's main reason, by where the rep said it came from.
AGREES = {"customer": 0.3, "rep": 0.1}
# What a buyer names when it is not what the rep wrote.
BUYER_WEIGHTS = {
    "lost": {
        "Product fit": 30,
        "Timing": 22,
        "Relationship": 12,
        "Lost to competitor": 10,
        "Budget": 10,
        "Champion left": 6,
        "No decision / status quo": 6,
        "Price": 4,
    },
    "won": {
        "Product fit": 30,
        "Relationship": 20,
        "Support and service": 14,
        "Integration with their stack": 12,
        "Speed of delivery": 10,
        "References": 8,
        "Price": 6,
    },
    "no_decision": {
        "Priorities changed": 30,
        "Timing": 25,
        "No internal consensus": 20,
        "Budget frozen": 15,
        "Champion left": 10,
    },
}
WORDS = {
    "lost": [
        "Honestly the price was fine; what we needed was the reporting module, and it was not "
        "ready.",
        "The timing was wrong for us: we are in the middle of a reorganisation.",
        "Your team was helpful, but the other product fitted our process out of the box.",
        "We could not get the integration signed off by our IT team in time.",
        "Nothing wrong with the offer. We decided to wait until next year's budget.",
    ],
    "won": [
        "The trial convinced us: it did what we needed on day one.",
        "Your account manager understood our business better than anyone else we spoke to.",
        "Support answered every question within the hour during the trial.",
        "It plugged into our existing tools without a project.",
    ],
    "no_decision": [
        "Our priorities moved to a cost-cutting programme; we may come back to it.",
        "We never got everyone in the room to agree.",
    ],
}


def _pick(rng, weights: dict[str, int]) -> str:
    labels = list(weights)
    return rng.choices(labels, weights=[weights[label] for label in labels])[0]


def seed(ctx: DemoContext) -> None:
    if SurveyRequest.objects.exists():
        ctx.log("  buyer surveys exist already; left as they are")
        return
    rng = ctx.rng
    templates = {
        t.outcome: (t, {q.kind: q for q in t.questions.all()})
        for t in SurveyTemplate.objects.filter(active=True).prefetch_related("questions")
    }
    if not templates:
        return
    reasons = {(r.outcome, r.label): r.pk for r in Reason.objects.filter(merged_into__isnull=True)}
    competitors = list(Competitor.objects.filter(active=True).values_list("pk", flat=True))
    reachable = set(
        Contact.objects.filter(do_not_contact=False).exclude(email="").values_list("pk", flat=True)
    )
    rows = (
        Answer.objects.filter(
            question__kind=QuestionKind.PRIMARY_REASON,
            reflection__current=True,
            reflection__opportunity__contact__isnull=False,
        )
        .values_list(
            "reflection_id",
            "reflection__outcome",
            "reflection__closed_date",
            "reflection__opportunity_id",
            "reflection__opportunity__contact_id",
            "reflection__opportunity__contact__email",
            "reflection__opportunity__owner_id",
            "reason__label",
            "reason_source",
        )
        .order_by("reflection__closed_date", "reflection_id")
    )
    now = timezone.now()
    days = settings.DEBRIEF_SURVEY_ASK_EVERY_DAYS
    # The demo rep asks more often, so that their private calibration has something to say.
    demo_rep = User.objects.filter(email="rep@debrief.example").values_list("pk", flat=True).first()
    last_asked: dict[str, datetime.date] = {}
    pending: list[tuple[SurveyRequest, list[SurveyAnswer]]] = []
    made = answered = 0

    def flush():
        nonlocal made
        created = SurveyRequest.objects.bulk_create([r for r, _ in pending])
        answers = []
        for request, (_, mine) in zip(created, pending, strict=True):
            for answer in mine:
                answer.request = request
            answers.extend(mine)
        SurveyAnswer.objects.bulk_create(answers, batch_size=BATCH * 3)
        made += len(created)
        pending.clear()

    for (
        reflection_id,
        outcome,
        closed,
        deal_id,
        contact_id,
        email,
        owner_id,
        rep_label,
        rep_source,
    ) in rows.iterator(chunk_size=BATCH):
        chance = 0.85 if owner_id == demo_rep else 0.62
        if outcome not in templates or contact_id not in reachable or rng.random() > chance:
            continue
        # The demo keeps the rule it teaches: a contact is asked at most once in `days`.
        previous = last_asked.get(email)
        if previous is not None and (closed - previous).days < days:
            continue
        last_asked[email] = closed
        template, questions = templates[outcome]
        asked = timezone.make_aware(
            datetime.datetime.combine(
                closed + datetime.timedelta(days=1), datetime.time(9, rng.randint(0, 59))
            )
        )
        if asked > now:
            continue
        request = SurveyRequest(
            reflection_id=reflection_id,
            opportunity_id=deal_id,
            contact_id=contact_id,
            email=email,
            template=template,
            requested_by_id=owner_id,
            created_at=asked,
            sent_at=asked + datetime.timedelta(minutes=1),
            expires_at=asked + datetime.timedelta(days=settings.DEBRIEF_SURVEY_LINK_DAYS),
            status=SurveyStatus.SENT,
        )
        roll = rng.random()
        mine: list[SurveyAnswer] = []
        if roll < 0.04:
            request.status = SurveyStatus.BOUNCED
            request.sent_at = None
            request.status_note = "The mail server refused it: 550 mailbox unavailable"
        elif roll < 0.78 and asked + datetime.timedelta(days=3) < now:
            request.status = SurveyStatus.ANSWERED
            request.answered_at = asked + datetime.timedelta(days=rng.randint(1, 6), hours=3)
            request.revision = 1
            if rep_label and rng.random() < AGREES.get(rep_source, 0.3):
                main = rep_label
            else:
                main = _pick(rng, BUYER_WEIGHTS[outcome])
            mine.append(
                SurveyAnswer(
                    question=questions[SurveyQuestionKind.MAIN_REASON],
                    reason_id=reasons[(outcome, main)],
                )
            )
            if SurveyQuestionKind.OTHER_REASONS in questions:
                others = {_pick(rng, BUYER_WEIGHTS[outcome]) for _ in range(rng.randint(0, 2))}
                for label in sorted(others - {main}):
                    mine.append(
                        SurveyAnswer(
                            question=questions[SurveyQuestionKind.OTHER_REASONS],
                            reason_id=reasons[(outcome, label)],
                        )
                    )
            if SurveyQuestionKind.CHOSEN_INSTEAD in questions and rng.random() < 0.7:
                competitor = rng.choice(competitors) if competitors else None
                mine.append(
                    SurveyAnswer(
                        question=questions[SurveyQuestionKind.CHOSEN_INSTEAD],
                        competitor_id=competitor if rng.random() < 0.75 else None,
                        is_unknown=competitor is None or rng.random() >= 0.75,
                    )
                )
                if mine[-1].is_unknown:
                    mine[-1].competitor_id = None
            if SurveyQuestionKind.FREE_TEXT in questions and rng.random() < 0.45:
                mine.append(
                    SurveyAnswer(
                        question=questions[SurveyQuestionKind.FREE_TEXT],
                        text=rng.choice(WORDS[outcome]),
                    )
                )
            answered += 1
        pending.append((request, mine))
        if len(pending) >= BATCH:
            flush()
    if pending:
        flush()
    SurveyTemplate.objects.filter(requests__status=SurveyStatus.ANSWERED).filter(
        frozen_at__isnull=True
    ).update(frozen_at=now)
    ctx.log(f"  {made} buyer surveys, {answered} answered")
