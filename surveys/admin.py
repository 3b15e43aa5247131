from django.contrib import admin

from reflections.admin import FrozenQuestionsInline, VersionedSetAdmin
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
class SurveyTemplateAdmin(VersionedSetAdmin):
    list_display = ("name", "version", "outcome", "send_on_close", "active", "frozen_at")
    list_filter = ("outcome", "active", "send_on_close")
    search_fields = ("name", "family", "questions__label")
    inlines = [SurveyQuestionInline]
    # A frozen version never changes its questions or wording; the rule and the active switch
    # stay editable.
    frozen_fields = ("family", "version", "name", "outcome", "intro")
    active_per = "outcome"
    frozen_message = (
        "Buyers have answered this version, so it is frozen: their answers keep exactly these "
        "questions. Use the “Create a new version” action to edit."
    )

    @staticmethod
    def revise(obj):
        return services.survey_template_revise(template=obj)


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
