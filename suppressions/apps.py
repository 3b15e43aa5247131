from django.apps import AppConfig


class SuppressionsConfig(AppConfig):
    name = "suppressions"
    verbose_name = "Suppressions"

    def ready(self):
        from auditlog.registry import auditlog

        # Audit trail: suppression overrides and lifts, rule changes.
        for name in ("SuppressionRule", "Suppression", "SuppressionOverride"):
            auditlog.register(self.get_model(name))

        # A call-list job's files go with its row (deleted with its owner or token, too).
        from django.db.models.signals import post_delete

        from suppressions import jobs

        post_delete.connect(
            jobs.job_deleted, sender=self.get_model("CallListJob"), dispatch_uid="calllist-files"
        )
