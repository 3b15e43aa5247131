"""
Worlds with known truth for the headline method: closed deals drawn at random for two periods,
as the rows the rollup reads (`insights.facts._reflection_rows` and `_answer_rows`), so that
the whole fact computation runs on them without a database.

A world is the same in both periods unless told otherwise (a null world); a planted shift
changes one main reason's share of one outcome (the other reasons keep their proportions,
so their shares fall or rise only mechanically: echoes) or one competitor's win rate.
"""

import datetime
import random
from dataclasses import dataclass, field
from decimal import Decimal

from insights.models import Dimension, ScopeKind, Source
from insights.periods import Period

OUTCOMES = {"won": 0.35, "lost": 0.5, "no_decision": 0.15}
# Main reasons per outcome with their shares (ids are the reason keys of the facts).
REASONS = {
    "won": {101: 0.30, 102: 0.25, 103: 0.20, 104: 0.15, 105: 0.10},
    "lost": {201: 0.20, 202: 0.25, 203: 0.20, 204: 0.15, 205: 0.12, 206: 0.08},
    "no_decision": {301: 0.5, 302: 0.3, 303: 0.2},
}
PRICE = 201
LABELS = {
    101: "Product fit",
    102: "Relationship",
    103: "Price",
    104: "Service",
    105: "Speed",
    201: "Price",
    202: "Product gaps",
    203: "Timing",
    204: "Chose a competitor",
    205: "No budget",
    206: "Service",
    301: "No urgency",
    302: "Budget frozen",
    303: "Champion left",
}
# Competitors with our win rate against each; a third of deals name none.
COMPETITORS = {11: 0.30, 12: 0.40, 13: 0.25, 14: 0.35}
OBJECTIONS = {21: 0.30, 22: 0.20, 23: 0.25, 24: 0.10}
# Contributing reasons belong to one outcome, like the taxonomy's.
CONTRIBUTING = {
    "won": {31: 0.3, 32: 0.2},
    "lost": {33: 0.3, 34: 0.2, 35: 0.15},
    "no_decision": {36: 0.3},
}
TEAMS = {1: "North", 2: "South", 3: "East", 4: "West"}
LINES = {7: "Payments", 8: "Lending"}
SEGMENTS = ["software", "retail", "finance"]


@dataclass
class World:
    """Deals per period (spread over teams, lines and segments) and what changes."""

    deals: int
    seed: int
    # (outcome, reason id, share in the second period) for a planted main-reason shift.
    reason_shift: tuple[str, int, float] | None = None
    # (competitor id, win rate in the second period) for a planted win-rate shift.
    competitor_shift: tuple[int, float] | None = None
    customer_share: float = 0.5
    periods: tuple[Period, Period] = field(
        default=(
            Period("quarter", datetime.date(2025, 4, 1)),
            Period("quarter", datetime.date(2025, 7, 1)),
        )
    )


def _pick(rng: random.Random, weights: dict) -> int | str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _shifted(weights: dict, key: int, share: float) -> dict:
    """The same reasons with `key` at `share` and the others in their old proportions."""
    rest = 1 - weights[key]
    return {k: share if k == key else w * (1 - share) / rest for k, w in weights.items()}


def rows(world: World) -> tuple[list[tuple], list[tuple]]:
    """Reflection rows and answer rows for both periods of the world."""
    rng = random.Random(world.seed)
    reflections, answers = [], []
    ident = 0
    for index, period in enumerate(world.periods):
        days = (period.end - period.start).days
        reasons = dict(REASONS)
        competitors = dict(COMPETITORS)
        if index == 1 and world.reason_shift:
            outcome, key, share = world.reason_shift
            reasons[outcome] = _shifted(REASONS[outcome], key, share)
        if index == 1 and world.competitor_shift:
            key, rate = world.competitor_shift
            competitors[key] = rate
        for _ in range(world.deals):
            ident += 1
            competitor = rng.choice([*competitors, None, None])
            if competitor is not None:
                # Against a competitor the outcome is won or lost at that competitor's rate.
                outcome = "won" if rng.random() < competitors[competitor] else "lost"
            else:
                outcome = _pick(rng, OUTCOMES)
            team = rng.choice(list(TEAMS))
            line = rng.choice(list(LINES))
            closed = period.start + datetime.timedelta(days=rng.randrange(days))
            reflections.append(
                (
                    ident,
                    closed,
                    outcome,
                    team,
                    TEAMS[team],
                    line,
                    LINES[line],
                    rng.choice(SEGMENTS),
                    competitor,
                    None if competitor is None else f"Rival {competitor}",
                    Decimal("1000.00"),
                    "GBP",
                    datetime.timedelta(days=rng.randrange(5, 90)),
                )
            )
            reason = _pick(rng, reasons[outcome])
            source = "customer" if rng.random() < world.customer_share else "rep"
            answers.append((ident, "primary_reason", source, reason, LABELS[reason], None, None))
            for key, share in CONTRIBUTING[outcome].items():
                if rng.random() < share:
                    answers.append(
                        (ident, "contributing_reasons", "", key, f"Reason {key}", None, None)
                    )
            for key, share in OBJECTIONS.items():
                if rng.random() < share:
                    answers.append((ident, "objections", "", None, None, key, f"Objection {key}"))
    return reflections, answers


def reports(facts) -> dict[tuple, list]:
    """The facts of each report view: (scope kind, scope key, source) -> facts."""
    out: dict[tuple, list] = {}
    primary = {
        Dimension.PRIMARY_REASON_WON,
        Dimension.PRIMARY_REASON_LOST,
        Dimension.PRIMARY_REASON_NO_DECISION,
    }
    slices = {(f.scope_kind, f.scope_key) for f in facts}
    for scope in slices:
        mine = [f for f in facts if (f.scope_kind, f.scope_key) == scope]
        for view in (Source.ALL, Source.CUSTOMER, Source.REP):
            out[(*scope, view)] = [
                f for f in mine if (f.source == view if f.dimension in primary else True)
            ]
    return out


def headlines(view_facts) -> list:
    return [f for f in view_facts if f.significant]


ORG = (ScopeKind.ORG, "", Source.ALL)
