"""Insights in the admin: runs and facts are read-only records; recomputing is an action."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from crm_site.admin import ReadOnlyAdmin
from insights import queue
from insights.models import DigestDelivery, InsightFact, InsightRun, PendingPeriod


@admin.register(InsightRun)
class InsightRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "progress",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "facts_written",
        "short_error",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["error", "detail"]
    date_hierarchy = "created_at"
    actions = ["recompute_insights"]
    list_select_related = ["requested_by"]

    @admin.display(description="error")
    def short_error(self, run):
        return run.error[:80]

    @admin.action(description="Recompute insights (full rebuild)")
    def recompute_insights(self, request, queryset):
        run = queue.insight_run_request_rebuild(requested_by=request.user)
        url = reverse("admin:insights_insightrun_change", args=[run.pk])
        self.message_user(
            request,
            format_html(
                'A full rebuild is queued as <a href="{}">run #{}</a>; it shows its progress '
                "here and on the insights dashboard.",
                url,
                run.pk,
            ),
            messages.SUCCESS,
        )


@admin.register(InsightFact)
class InsightFactAdmin(ReadOnlyAdmin):
    list_display = [
        "period_kind",
        "period_start",
        "scope_kind",
        "scope_key",
        "dimension",
        "source",
        "label",
        "deals",
        "base",
        "rate",
        "prev_rate",
        "p_value",
        "q_value",
        "test",
        "significant",
        "echo_of",
    ]
    list_filter = ["period_kind", "scope_kind", "dimension", "source", "significant", "test"]
    search_fields = ["label", "headline", "scope_key"]
    date_hierarchy = "period_start"
    show_full_result_count = False


@admin.register(PendingPeriod)
class PendingPeriodAdmin(ReadOnlyAdmin):
    list_display = ["period_kind", "period_start", "marked_at"]


@admin.register(DigestDelivery)
class DigestDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["recipient", "week_start", "sent_at", "shifts"]
    list_select_related = ["recipient"]
    date_hierarchy = "week_start"
