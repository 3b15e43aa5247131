"""The administrators' screens for suppression rules, suppressions and exception requests."""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.shortcuts import render

from crm_site.admin import ReadOnlyAdmin
from suppressions import feed, services, webhooks
from suppressions.models import (
    ChangeKind,
    Suppression,
    SuppressionChange,
    SuppressionOverride,
    SuppressionRule,
    WebhookDelivery,
    WebhookEndpoint,
)


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


SNAPSHOT_FIELDS = (
    "company",
    "contact",
    "scope",
    "product",
    "product_line",
    "reason",
    "source_opportunity",
    "rule",
    "starts_on",
    "until",
)


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

    def get_readonly_fields(self, request, obj=None):
        # The change feed told receivers what this suppression covers: it cannot change under
        # them. Lift it and add another instead; only the note stays editable.
        if obj is not None:
            return (*self.readonly_fields, *SNAPSHOT_FIELDS)
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # in the admin's transaction, like every other start
            feed.changes_record_ids(ChangeKind.STARTED, [obj.pk])

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


# --- the change feed and outbound webhooks -----------------------------------------------------


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Receivers of suppression changes. The secret is shown once, when it is made."""

    list_display = ("name", "url", "active", "consecutive_failures", "disabled_reason")
    list_filter = ("active",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    search_fields = ("name", "url")
    fields = (
        "name",
        "url",
        "secret_hint",
        "active",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_at",
    )
    readonly_fields = (
        "secret_hint",
        "active",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_at",
    )
    actions = ["enable", "disable", "rotate_secret"]

    @admin.display(description="secret")
    def secret_hint(self, obj):
        if obj is None or obj.pk is None:
            return "Made when you save; shown once then."
        return f"{obj.secret[:10]}… (shown once; “Make a new secret” replaces it)"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request,
                f"The signing secret of “{obj}” is {obj.secret} . Copy it into the receiver "
                "now: it is not shown again.",
                messages.WARNING,
            )

    @admin.action(description="Enable and send the deliveries they held")
    def enable(self, request, queryset):
        for endpoint in queryset:
            held = webhooks.webhook_endpoint_enable(endpoint=endpoint)
            self.message_user(request, f"{endpoint}: enabled; {held} waiting delivery(ies) sent.")

    @admin.action(description="Disable (deliveries wait until enabled)")
    def disable(self, request, queryset):
        for endpoint in queryset:
            webhooks.webhook_endpoint_disable(
                endpoint=endpoint, reason=f"Disabled by {request.user} in the admin."
            )
        self.message_user(request, "Disabled. Changes are kept for them until enabled again.")

    @admin.action(description="Make a new secret (shown once)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            secret = webhooks.webhook_endpoint_rotate_secret(endpoint=endpoint)
            self.message_user(
                request,
                f"The new signing secret of “{endpoint}” is {secret} . Deliveries are signed "
                "with it from now on; it is not shown again.",
                messages.WARNING,
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log: what was sent where, how often, and the last answer."""

    list_display = (
        "id",
        "endpoint",
        "change",
        "status",
        "attempts",
        "last_status",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "endpoint")
    list_select_related = ("endpoint", "change")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["send_again"]

    @admin.action(description="Send again now")
    def send_again(self, request, queryset):
        sent = webhooks.deliveries_resend(delivery_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            f"{sent} delivery(ies) sent again (delivered ones and disabled endpoints' "
            "are left out).",
        )


@admin.register(SuppressionChange)
class SuppressionChangeAdmin(ReadOnlyAdmin):
    """The change log behind the feed and the webhooks (append-only)."""

    list_display = (
        "id",
        "kind",
        "suppression_id",
        "reason",
        "scope",
        "company_domain",
        "contact_email",
        "starts_on",
        "until",
        "occurred_at",
    )
    list_filter = ("kind", "reason", "scope")
    search_fields = ("company_domain", "contact_email", "=suppression__id")
    readonly_fields = [f.name for f in SuppressionChange._meta.fields]


# --- call-list jobs ----------------------------------------------------------------------------
def _call_list_job_model():
    from suppressions.models import CallListJob

    return CallListJob


@admin.register(_call_list_job_model())
class CallListJobAdmin(ReadOnlyAdmin):
    """Call lists checked in the background; the file is downloaded from the job's own page."""

    list_display = ("id", "file_name", "owner", "api_token", "rows", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("file_name", "owner__email")
    list_select_related = ("owner", "api_token")
    readonly_fields = (
        "file_name",
        "owner",
        "api_token",
        "rows",
        "size",
        "sha256",
        "encoding",
        "status",
        "counts",
        "error",
        "created_at",
        "finished_at",
        "expires_at",
        "page",
    )
    fields = readonly_fields

    @admin.display(description="Progress and download")
    def page(self, job):
        from django.urls import reverse
        from django.utils.html import format_html

        url = reverse("suppressions:call_list_job", args=[job.pk])
        return format_html('<a href="{}">Open the job’s page</a>', url)
