from django.core.management.base import BaseCommand, CommandError

from insights import services


class Command(BaseCommand):
    help = "Recompute every insight report now, in this process (recorded as an insight run)."

    def handle(self, *args, **options):
        try:
            run = services.insights_rebuild_now(detail="manage.py insights_rebuild")
        except Exception as exc:
            raise CommandError(f"The rebuild failed: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"{run.facts_written} facts written (run #{run.pk})."))
