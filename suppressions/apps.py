from django.apps import AppConfig


class SuppressionsConfig(AppConfig):
    name = "suppressions"
    verbose_name = "Suppressions"

    def ready(self):
        from auditlog.registry import auditlog

        # Audit trail: suppression overrides and lifts, rule changes.
        for name in ("SuppressionRule", "Suppression", "SuppressionOverride"):
            auditlog.register(self.get_model(name))
