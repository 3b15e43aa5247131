"""The administrators' screens for suppression rules, suppressions and exception requests."""

from django import forms
from django.contrib import admin
from django.shortcuts import render

from suppressions import services
from suppressions.models import Suppression, SuppressionOverride, SuppressionRule


@admin.register(SuppressionRule)
class SuppressionRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "trigger_outcome", "scope", "target", "days", "active")
    list_filter = ("trigger_outcome", "scope", "target", "active")
    search_fields = ("name",)
    actions = ["rebuild"]

    @admin.action(description="Rebuild suppressions from closed-deal history")
    def rebuild(self, request, queryset):
        for rule in queryset:
            created = services.rule_rebuild(rule=rule)
            self.message_user(request, f"{rule}: {created} suppression(s) now derived from it.")


class LiftForm(forms.Form):
    reason = forms.CharField(max_length=255, label="Why does it end early?")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "reason",
        "scope",
        "starts_on",
        "until",
        "source_opportunity",
        "rule",
        "lifted_at",
    )
    list_filter = ("reason", "scope", ("lifted_at", admin.EmptyFieldListFilter), "rule")
    search_fields = ("company__name", "contact__full_name", "contact__email", "note")
    list_select_related = ("company", "contact", "source_opportunity", "rule")
    raw_id_fields = ("company", "contact", "product", "product_line", "source_opportunity")
    date_hierarchy = "starts_on"
    readonly_fields = ("created_by", "created_at", "lifted_at", "lifted_by", "lift_reason")
    actions = ["lift"]

    def has_delete_permission(self, request, obj=None):
        return False  # lift instead, so that the history stays

    @admin.action(description="Lift selected suppressions (asks for a reason)")
    def lift(self, request, queryset):
        form = LiftForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            lifted = 0
            for row in queryset.filter(lifted_at__isnull=True):
                services.suppression_lift(
                    actor=request.user, suppression=row, reason=form.cleaned_data["reason"]
                )
                lifted += 1
            self.message_user(request, f"Lifted {lifted} suppression(s).")
            return None
        return render(
            request,
            "admin/suppressions/suppression_lift.html",
            {
                **self.admin_site.each_context(request),
                "title": "Lift suppressions",
                "rows": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(SuppressionOverride)
class SuppressionOverrideAdmin(admin.ModelAdmin):
    list_display = ("company", "product", "requested_by", "status", "decided_by", "used_at")
    list_filter = ("status",)
    search_fields = ("company__name", "requested_by__full_name", "justification")
    list_select_related = ("company", "product", "requested_by", "decided_by")
    readonly_fields = [f.name for f in SuppressionOverride._meta.fields]

    def has_add_permission(self, request):
        return False  # requested by reps, decided by their managers, in the app
