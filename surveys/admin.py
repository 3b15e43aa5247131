from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from reflections.admin import FrozenQuestionsInline
from surveys import services
from surveys.models import (
    SurveyAnswer,
    SurveyOptOut,
    SurveyQuestion,
    SurveyRequest,
    SurveyStatus,
    SurveyTemplate,
)


class SurveyQuestionInline(FrozenQuestionsInline):
    model = SurveyQuestion


@admin.register(SurveyTemplate)
class SurveyTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "outcome", "send_on_close", "active", "frozen_at")
    list_filter = ("outcome", "active", "send_on_close")
    search_fields = ("name", "family", "questions__label")
    inlines = [SurveyQuestionInline]
    actions = ["new_version"]
    readonly_fields = ("frozen_at", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            # A frozen version never changes its questions or wording; the rule and the
            # active switch stay editable.
            return ("family", "version", "name", "outcome", "intro", "frozen_at", "created_at")
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if obj.active:
            SurveyTemplate.objects.filter(outcome=obj.outcome, active=True).exclude(
                pk=obj.pk
            ).update(active=False)
        super().save_model(request, obj, form, change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and obj.is_frozen and request.method == "GET":
            messages.info(
                request,
                "Buyers have answered this version, so it is frozen: their answers keep "
                "exactly these questions. Use the “Create a new version” action to edit.",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Create a new version (copies the questions, makes it active)")
    def new_version(self, request, queryset):
        for template in queryset:
            try:
                new = services.survey_template_revise(template=template)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"Created {new}; edit its questions now.")


class SurveyAnswerInline(admin.TabularInline):
    model = SurveyAnswer
    fields = ("question", "display_value")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SurveyRequest)
class SurveyRequestAdmin(admin.ModelAdmin):
    list_display = ("email", "opportunity", "status", "created_at", "sent_at", "answered_at")
    list_filter = ("status", "template__outcome", "created_at")
    search_fields = ("email", "contact__full_name", "opportunity__title")
    list_select_related = ("opportunity",)
    date_hierarchy = "created_at"
    inlines = [SurveyAnswerInline]
    actions = ["mark_bounced"]
    readonly_fields = (
        "reflection",
        "opportunity",
        "contact",
        "email",
        "template",
        "requested_by",
        "status",
        "revision",
        "created_at",
        "sent_at",
        "answered_at",
        "expires_at",
        "status_note",
    )

    def has_add_permission(self, request):
        return False  # asked from the deal page, where the refusals are checked

    @admin.action(description="Mark as bounced (the provider reported it undeliverable)")
    def mark_bounced(self, request, queryset):
        marked = sum(
            services.survey_mark_bounced(survey=s, note="Marked bounced by an administrator.")
            for s in queryset.filter(status=SurveyStatus.SENT)
        )
        self.message_user(request, f"Marked {marked} sent survey(s) as bounced.")


@admin.register(SurveyOptOut)
class SurveyOptOutAdmin(admin.ModelAdmin):
    list_display = ("email", "created_at")
    search_fields = ("email",)
    readonly_fields = ("email", "created_at", "request")

    def has_add_permission(self, request):
        return True

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ("created_at", "request")
