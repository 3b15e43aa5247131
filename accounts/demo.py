"""Demo teams and logins for seed_demo. Deterministic and safe to run twice."""

from dataclasses import dataclass, field
from random import Random

from django.conf import settings
from django.contrib.auth.hashers import make_password

from accounts.models import Role, Team, User

TEAMS = {
    "small": ["Enterprise North", "Enterprise South", "Mid-market", "SMB"],
    "large": [
        "Enterprise North",
        "Enterprise South",
        "Mid-market",
        "SMB",
        "Public sector",
        "Healthcare",
        "Channel partners",
        "Nordics",
    ],
}
REPS_PER_TEAM = {"small": 5, "large": 10}

FIRST = [
    "Riley", "Sam", "Jordan", "Alex", "Priya", "Tomasz", "Amara", "Lena", "Hiro", "Chloé",
    "Mateo", "Ines", "Kwame", "Sofia", "Oskar", "Zara", "Felix", "Mina", "Diego", "Aisha",
]  # fmt: skip
LAST = [
    "Reyes", "Okafor", "Lindqvist", "Novak", "Sharma", "Kowalski", "Dubois", "Tanaka", "Moreau",
    "Haddad", "Fischer", "Costa", "Mensah", "Rossi", "Berg", "Ali", "Keller", "Park", "Silva",
]  # fmt: skip


@dataclass
class DemoContext:
    """Shared between seed steps: the random source and what earlier steps made."""

    rng: Random
    scale: str
    stdout: object = None
    data: dict = field(default_factory=dict)

    def log(self, message: str) -> None:
        if self.stdout is not None:
            self.stdout.write(message)


# The logins printed by `make run`; the first rep and manager are the personas in the README.
PERSONAS = [
    ("admin@debrief.example", "Ada Admin", Role.ADMIN, None),
    ("manager@debrief.example", "Maya Manager", Role.MANAGER, None),
    ("manager2@debrief.example", "Noah Manager", Role.MANAGER, None),
    ("rep@debrief.example", "Riley Rep", Role.REP, "Mid-market"),
    ("rep2@debrief.example", "Sam Rep", Role.REP, "Enterprise North"),
]
MANAGED = {
    "manager@debrief.example": ["Mid-market", "SMB"],
    "manager2@debrief.example": ["Enterprise North", "Enterprise South"],
}


def _upsert_user(email: str, name: str, role: str, team: Team | None, hashed: str) -> User:
    user, _ = User.objects.get_or_create(
        email=email,
        defaults={"full_name": name, "role": role, "team": team, "password": hashed},
    )
    return user


def seed(ctx: DemoContext) -> None:
    # One hash for every demo login: hashing is deliberately slow, and they share a password.
    password = make_password(settings.DEBRIEF_DEMO_PASSWORD)
    teams = {name: Team.objects.get_or_create(name=name)[0] for name in TEAMS[ctx.scale]}
    for email, name, role, team_name in PERSONAS:
        _upsert_user(email, name, role, teams.get(team_name), password)
    for email, team_names in MANAGED.items():
        manager = User.objects.get(email=email)
        manager.managed_teams.add(*(teams[n] for n in team_names))
    # Remaining teams (large scale) are managed by the second manager.
    spare = [t for n, t in teams.items() if not any(n in v for v in MANAGED.values())]
    if spare:
        User.objects.get(email="manager2@debrief.example").managed_teams.add(*spare)

    reps = []
    for team_index, team in enumerate(teams.values()):
        for i in range(REPS_PER_TEAM[ctx.scale]):
            n = team_index * REPS_PER_TEAM[ctx.scale] + i
            name = f"{FIRST[n % len(FIRST)]} {LAST[(n * 7) % len(LAST)]}"
            email = f"rep.{team_index + 1}.{i + 1}@debrief.example"
            reps.append(_upsert_user(email, name, Role.REP, team, password))
    personas = list(User.objects.filter(role=Role.REP, email__in=[p[0] for p in PERSONAS]))
    ctx.data["teams"] = teams
    ctx.data["reps"] = personas + reps
    ctx.log(f"  teams: {len(teams)}, reps: {len(ctx.data['reps'])}")
