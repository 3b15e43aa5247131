from django.core.management.base import BaseCommand

from opportunities.currency import reprice


class Command(BaseCommand):
    help = (
        "Recompute every deal's amount in the reporting currency at the configured rates "
        "(DEBRIEF_CURRENCY_RATES). Run it after changing the rates."
    )

    def handle(self, *args, **options):
        changed = reprice()
        self.stdout.write(f"Repriced {changed} deal{'s' if changed != 1 else ''}.")
