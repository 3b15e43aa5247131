from django import forms
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from crm_site.admin import ReadOnlyAdmin
from imports import views
from imports.models import HistoryImport, ImportedDeal, MappingAction, MappingKind, ValueMapping


@admin.register(HistoryImport)
class HistoryImportAdmin(admin.ModelAdmin):
    """
    The list of imports; "Add" opens the upload page and an import's page walks it through
    its steps (columns, values, check, run). Those pages are views of their own
    (imports/views.py), reached through get_urls and the admin's login and permission checks.
    """

    list_display = (
        "file_name",
        "system",
        "status",
        "rows",
        "deals",
        "created_by",
        "created_at",
    )
    list_display_links = ("file_name",)
    list_filter = ("status", "preset", "system")
    search_fields = ("file_name", "system")
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        from imports import selectors

        return selectors.history_imports_visible_to(request.user).select_related("created_by")

    def has_delete_permission(self, request, obj=None):
        return False  # the deals it brought in keep pointing at it

    @admin.display(description="Rows", ordering="rows_total")
    def rows(self, obj):
        return obj.rows_total

    @admin.display(description="Deals created", ordering="deals_created")
    def deals(self, obj):
        return obj.deals_created

    def get_urls(self):
        def wrap(view):
            return self.admin_site.admin_view(
                lambda request, *args, **kwargs: view(request, self, *args, **kwargs)
            )

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("upload/", wrap(views.upload), name=f"{prefix}_upload"),
            path("<int:import_id>/columns/", wrap(views.columns), name=f"{prefix}_columns"),
            path("<int:import_id>/values/", wrap(views.values), name=f"{prefix}_values"),
            path("<int:import_id>/check/", wrap(views.check), name=f"{prefix}_check"),
            path("<int:import_id>/start/", wrap(views.start), name=f"{prefix}_start"),
            path("<int:import_id>/cancel/", wrap(views.cancel), name=f"{prefix}_cancel"),
            path("<int:import_id>/reports/", wrap(views.in_reports), name=f"{prefix}_reports"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:imports_historyimport_upload")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            import_id = int(object_id)
        except ValueError:
            import_id = 0  # a forged id: 404 like any other unknown one
        return views.page(request, self, import_id)


class ValueMappingForm(forms.ModelForm):
    class Meta:
        model = ValueMapping
        fields = ("action", "reason", "product")

    def clean(self):
        cleaned = super().clean()
        action = cleaned.get("action")
        kind = self.instance.kind
        reason, product = cleaned.get("reason"), cleaned.get("product")
        if kind == MappingKind.PRODUCT and action == MappingAction.UNKNOWN:
            self.add_error(
                "action", "A product text is mapped to a product or skipped; it cannot be unknown."
            )
        if action == MappingAction.MAP:
            if kind == MappingKind.REASON and reason is None:
                self.add_error("reason", "Choose the reason this text means.")
            if kind == MappingKind.PRODUCT and product is None:
                self.add_error("product", "Choose the product this text means.")
            if kind == MappingKind.REASON and reason and reason.outcome != self.instance.outcome:
                self.add_error(
                    "reason",
                    f"Choose a reason for {self.instance.get_outcome_display().lower()} deals: "
                    "this text was given for those.",
                )
        # Only the target that the action uses is kept.
        if action != MappingAction.MAP or kind != MappingKind.REASON:
            cleaned["reason"] = None
        if action != MappingAction.MAP or kind != MappingKind.PRODUCT:
            cleaned["product"] = None
        return cleaned


@admin.register(ValueMapping)
class ValueMappingAdmin(admin.ModelAdmin):
    """
    The saved meanings of other CRMs' texts, offered again for the next file. Created by the
    mapping page of an import; here they can be corrected.
    """

    form = ValueMappingForm
    list_display = ("text", "kind", "outcome", "action", "target", "updated_by", "updated_at")
    list_filter = ("kind", "outcome", "action")
    search_fields = ("text",)
    list_select_related = ("reason", "product", "updated_by")
    readonly_fields = ("kind", "outcome", "text", "updated_by", "updated_at")
    fields = ("kind", "outcome", "text", "action", "reason", "product", "updated_by", "updated_at")

    def has_add_permission(self, request):
        return False  # made by an import's mapping page, where the texts come from a file

    @admin.display(description="Means")
    def target(self, obj):
        if obj.action != MappingAction.MAP:
            return obj.get_action_display()
        return obj.reason or obj.product

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(ImportedDeal)
class ImportedDealAdmin(ReadOnlyAdmin):
    """Read-only: which deal each row of which import became, with its own words."""

    list_display = ("external_id", "system_key", "deal", "history_import", "row", "reason_text")
    list_filter = ("history_import", "system_key")
    search_fields = ("external_id", "opportunity__title", "reason_text")
    list_select_related = ("opportunity", "history_import")
    readonly_fields = (
        "history_import",
        "system_key",
        "external_id",
        "deal",
        "row",
        "reason_text",
        "notes",
    )
    fields = readonly_fields

    @admin.display(description="Deal", ordering="opportunity__title")
    def deal(self, obj):
        url = reverse("admin:opportunities_opportunity_change", args=[obj.opportunity_id])
        return format_html('<a href="{}">{}</a>', url, obj.opportunity)
