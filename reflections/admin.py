from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import redirect, render

from reflections import services
from reflections.models import (
    Answer,
    CallDebrief,
    Objection,
    PromptSet,
    Question,
    Reason,
    Reflection,
    ReflectionRevision,
)


class FrozenQuestionsInline(admin.TabularInline):
    """The questions of a versioned set (prompt set, buyer survey): fixed once it is frozen."""

    fields = ("order", "kind", "label", "help_text", "required")
    extra = 0
    ordering = ("order", "id")

    def _frozen(self, obj) -> bool:
        return obj is not None and obj.is_frozen

    def has_add_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_delete_permission(request, obj)


class QuestionInline(FrozenQuestionsInline):
    model = Question


class VersionedSetAdmin(admin.ModelAdmin):
    """
    The admin of a versioned question set (prompt sets, buyer surveys): one active version per
    `active_per` value, a frozen version's fields read-only, and an action that copies a
    version into a new, editable one through `revise` (a service taking the set).
    """

    actions = ["new_version"]
    readonly_fields = ("frozen_at", "created_at")
    frozen_fields: tuple[str, ...] = ()
    active_per = "family"
    frozen_message = ""

    @staticmethod
    def revise(obj):
        raise NotImplementedError

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            return (*self.frozen_fields, "frozen_at", "created_at")
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if obj.active:
            siblings = {self.active_per: getattr(obj, self.active_per), "active": True}
            type(obj).objects.filter(**siblings).exclude(pk=obj.pk).update(active=False)
        super().save_model(request, obj, form, change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and obj.is_frozen and request.method == "GET":
            messages.info(request, self.frozen_message)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Create a new version (copies the questions, makes it active)")
    def new_version(self, request, queryset):
        for obj in queryset:
            try:
                new = self.revise(obj)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"Created {new}; edit its questions now.")


@admin.register(PromptSet)
class PromptSetAdmin(VersionedSetAdmin):
    list_display = ("name", "version", "outcome", "product_line", "active", "frozen_at")
    list_filter = ("outcome", "active", "product_line")
    search_fields = ("name", "family", "questions__label")
    list_select_related = ("product_line",)
    inlines = [QuestionInline]
    # A frozen version never changes; only switching it off is allowed.
    frozen_fields = ("family", "version", "name", "outcome", "product_line")
    frozen_message = (
        "This version has been answered, so it is frozen: old reflections keep exactly these "
        "questions. Use the “Create a new version” action to edit."
    )

    @staticmethod
    def revise(obj):
        return services.prompt_set_revise(prompt_set=obj)


class MergeForm(forms.Form):
    into = forms.ModelChoiceField(queryset=Reason.objects.none(), label="Count these under")

    def __init__(self, *args, outcome: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["into"].queryset = Reason.objects.filter(
            outcome=outcome, active=True, merged_into__isnull=True
        )


@admin.register(Reason)
class ReasonAdmin(admin.ModelAdmin):
    list_display = ("label", "outcome", "active", "order", "merged_into", "times_used")
    list_filter = ("outcome", "active")
    search_fields = ("label",)
    list_editable = ("order",)
    list_select_related = ("merged_into",)
    readonly_fields = ("merged_into",)
    actions = ["retire", "merge"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_used=Count("answers"))

    @admin.display(description="Times used", ordering="_used")
    def times_used(self, obj):
        return obj._used

    @admin.action(description="Retire selected reasons (kept for history)")
    def retire(self, request, queryset):
        updated = queryset.update(active=False)
        self.message_user(request, f"Retired {updated} reason(s). Past answers keep them.")

    @admin.action(description="Merge selected retired-to-be reasons into another…")
    def merge(self, request, queryset):
        outcomes = set(queryset.values_list("outcome", flat=True))
        if len(outcomes) != 1:
            self.message_user(request, "Pick reasons of one outcome to merge.", messages.ERROR)
            return None
        outcome = outcomes.pop()
        form = MergeForm(request.POST if "apply" in request.POST else None, outcome=outcome)
        if form.is_bound and form.is_valid():
            into = form.cleaned_data["into"]
            try:
                for reason in queryset:
                    services.reason_merge(reason=reason, into=into)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"Merged {queryset.count()} reason(s) into {into}.")
            return redirect(request.get_full_path())
        return render(
            request,
            "admin/reflections/reason_merge.html",
            {
                **self.admin_site.each_context(request),
                "title": "Merge reasons",
                "reasons": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(Objection)
class ObjectionAdmin(admin.ModelAdmin):
    list_display = ("label", "active", "order")
    list_filter = ("active",)
    list_editable = ("active", "order")
    search_fields = ("label",)


class AnswerInline(admin.TabularInline):
    model = Answer
    fields = ("question", "display_value", "reason_source")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("question", "reason", "competitor", "objection")
        )


class RevisionInline(admin.TabularInline):
    model = ReflectionRevision
    fields = ("edited_at", "edited_by", "answers")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Reflection)
class ReflectionAdmin(admin.ModelAdmin):
    list_display = (
        "opportunity",
        "outcome",
        "author",
        "closed_date",
        "current",
        "origin",
        "in_reports",
        "edited_at",
    )
    list_filter = ("outcome", "current", "origin", "in_reports", "prompt_set")
    search_fields = ("opportunity__title", "opportunity__company__name", "author__full_name")
    list_select_related = ("opportunity", "author")
    date_hierarchy = "closed_date"
    readonly_fields = (
        "opportunity",
        "author",
        "outcome",
        "prompt_set",
        "closed_date",
        "current",
        "origin",
        "in_reports",
        "submitted_at",
        "edited_at",
    )
    inlines = [AnswerInline, RevisionInline]

    def has_add_permission(self, request):
        return False  # reflections are written by closing a deal


@admin.register(CallDebrief)
class CallDebriefAdmin(admin.ModelAdmin):
    list_display = ("company", "call_date", "author", "high_card")
    list_filter = ("high_card", "call_date")
    search_fields = ("company__name", "customer_said", "author__full_name")
    list_select_related = ("company", "author")
    raw_id_fields = ("company", "contact", "opportunity", "author")
    filter_horizontal = ("objections",)
    date_hierarchy = "call_date"
