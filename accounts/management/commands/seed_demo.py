import time
from contextlib import nullcontext
from random import Random

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.module_loading import import_string

from accounts.demo import PERSONAS, DemoContext
from accounts.models import User


class Command(BaseCommand):
    help = (
        "Create demo teams, logins and (with later apps) a lived-in pipeline. Deterministic for "
        "a given --seed and safe to run twice. Refuses to run with DEBUG off unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            choices=["small", "large", "xl"],
            default="small",
            help="xl: ten times large, written with COPY (PostgreSQL; for make bench)",
        )
        parser.add_argument(
            "--fraction",
            type=float,
            default=1.0,
            help="with --scale xl: seed this share of it (e.g. 0.1 to rehearse)",
        )
        parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the database already has users (used by make run)",
        )
        parser.add_argument(
            "--force", action="store_true", help="run even with DEBUG off (never in production)"
        )

    def handle(self, *args, scale, seed, if_empty, force, fraction, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates well-known demo logins and refuses to run with DEBUG off. "
                "If this really is not production, pass --force."
            )
        if if_empty and User.objects.exists():
            self.stdout.write("The database already has users; demo data left as it is.")
            if User.objects.filter(email=PERSONAS[0][0]).exists():
                self.print_logins()
            return
        if scale == "xl":
            from bench.seed import xl_scale  # the extra-large scale belongs to the benchmark

            scaling = xl_scale(fraction)
        else:
            scaling = nullcontext(scale)
        with scaling as scale:
            ctx = DemoContext(rng=Random(seed), scale=scale, stdout=self.stdout)
            for path in settings.DEBRIEF_DEMO_STEPS:
                self.stdout.write(f"Seeding {path.rsplit('.', 2)[0]} ...")
                started = time.perf_counter()
                with transaction.atomic():
                    import_string(path)(ctx)
                _analyze()
                self.stdout.write(f"  ({time.perf_counter() - started:.1f} s)")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.print_logins()

    def print_logins(self):
        self.stdout.write(f"\nDemo logins (password for all: {settings.DEBRIEF_DEMO_PASSWORD})")
        for email, name, role, team in PERSONAS:
            where = f", {team}" if team else ""
            self.stdout.write(f"  {email:<28} {name} ({role}{where})")


def _analyze() -> None:
    """
    Planner statistics for what was just bulk-loaded. Without them (autovacuum not yet run, or
    off) PostgreSQL plans the next step's queries and the first page views as if the tables were
    empty: the large set's company page took 16 s instead of 0.4 s before its first ANALYZE.
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
