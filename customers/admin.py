from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect, render
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV

from customers import suppression
from customers.models import (
    Company,
    Contact,
    Suppression,
    SuppressionOverride,
    SuppressionRule,
)
from customers.resources import CompanyResource, ContactResource, SafeCSV, import_problems


class CsvImportExportAdmin(ImportExportModelAdmin):
    """
    CSV import with a preview: the first step is a dry run that shows what would change and
    every bad row; nothing is saved until the preview is confirmed, and a file with any bad
    row imports nothing.
    """

    import_formats = [CSV]
    export_formats = [SafeCSV]
    # Every problem written out in the page, not only on hover.
    import_template_name = "admin/customers/csv_import.html"

    def process_result(self, result, request):
        # The resource rolls back a file with any bad row; say so instead of "Import finished".
        if result.has_errors() or result.has_validation_errors():
            problems = import_problems(result)
            shown = "; ".join(problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            messages.error(
                request,
                f"Nothing was imported because the file has problems: {shown}{more}. "
                "Correct the file and import it again.",
            )
            opts = self.model._meta
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_import")
        return super().process_result(result, request)


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ("full_name", "title", "email", "phone", "do_not_contact")
    readonly_fields = ("do_not_contact",)
    extra = 0
    show_change_link = True


@admin.register(Company)
class CompanyAdmin(CsvImportExportAdmin):
    resource_classes = [CompanyResource]
    list_display = ("name", "domain", "segment", "size_band", "region", "created_at")
    list_filter = ("segment", "size_band", "region")
    search_fields = ("name", "domain")
    ordering = ("name",)
    readonly_fields = ("created_at",)
    inlines = [ContactInline]


@admin.register(Contact)
class ContactAdmin(CsvImportExportAdmin):
    resource_classes = [ContactResource]
    list_display = ("full_name", "company", "title", "email", "phone", "do_not_contact")
    list_filter = ("do_not_contact", "company__segment", "company__region")
    list_select_related = ("company",)
    search_fields = ("full_name", "email", "phone_normalized", "company__name", "company__domain")
    autocomplete_fields = ("company",)
    # Do-not-contact is set and lifted through suppressions, which keep the reason and history.
    readonly_fields = ("phone_normalized", "do_not_contact", "created_at")
    ordering = ("full_name",)
    fields = (
        "company",
        "full_name",
        "title",
        "email",
        "phone",
        "phone_normalized",
        "do_not_contact",
        "created_at",
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
            created = suppression.rule_rebuild(rule=rule)
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
                suppression.suppression_lift(
                    actor=request.user, suppression=row, reason=form.cleaned_data["reason"]
                )
                lifted += 1
            self.message_user(request, f"Lifted {lifted} suppression(s).")
            return None
        return render(
            request,
            "admin/customers/suppression_lift.html",
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
