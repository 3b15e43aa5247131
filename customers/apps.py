from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self):
        from auditlog.registry import auditlog

        # Audit trail: suppression overrides and lifts, rule changes.
        for name in ("SuppressionRule", "Suppression", "SuppressionOverride"):
            auditlog.register(self.get_model(name))
