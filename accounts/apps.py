from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and teams"

    def ready(self):
        from auditlog.registry import auditlog

        from accounts import signals  # noqa: F401  (connects the receivers)

        auditlog.register(
            self.get_model("User"), exclude_fields=["password", "last_login"], m2m_fields=set()
        )
        auditlog.register(self.get_model("Team"), m2m_fields={"managers"})
        auditlog.register(self.get_model("ApiToken"), exclude_fields=["key_hash", "last_used_at"])
