from django.contrib import admin, messages
from django.shortcuts import redirect
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV

from customers.models import Company, Contact
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
