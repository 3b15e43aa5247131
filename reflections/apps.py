from django.apps import AppConfig


class ReflectionsConfig(AppConfig):
    name = "reflections"
    verbose_name = "Reflections"

    def ready(self):
        from auditlog.registry import auditlog

        # Audit trail: reflection edits, prompt-set and taxonomy changes.
        for name in ("Reflection", "ReflectionRevision", "PromptSet", "Question", "Reason"):
            auditlog.register(self.get_model(name))
