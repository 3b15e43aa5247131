from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_schedules(sender, **kwargs):
    from insights import schedules

    schedules.install()


class InsightsConfig(AppConfig):
    name = "insights"
    verbose_name = "Insights"

    def ready(self):
        from insights import receivers  # noqa: F401  (connects the signal receivers)

        # After every migrate, so a fresh database (and the embedded default) has them.
        post_migrate.connect(_install_schedules, sender=self, dispatch_uid="insights_schedules")
