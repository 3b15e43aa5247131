from django.apps import AppConfig


class SurveysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "surveys"
    verbose_name = "Buyer surveys"

    def ready(self):
        from surveys import receivers  # noqa: F401  (connects the signal receivers)
