from django import forms
from django.contrib import admin
from django.db import models

from crm_site.admin import ReadOnlyAdmin
from opportunities.models import Competitor, Opportunity, Product, ProductLine, StageChange


class ProductInline(admin.TabularInline):
    model = Product
    fields = ("name", "active")
    extra = 0
    show_change_link = True


@admin.register(ProductLine)
class ProductLineAdmin(admin.ModelAdmin):
    list_display = ("name", "active")
    list_filter = ("active",)
    search_fields = ("name",)
    inlines = [ProductInline]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "line", "active")
    list_filter = ("line", "active")
    list_select_related = ("line",)
    search_fields = ("name", "line__name")


@admin.register(Competitor)
class CompetitorAdmin(admin.ModelAdmin):
    list_display = ("name", "website", "active")
    list_filter = ("active",)
    search_fields = ("name",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


class StageChangeInline(admin.TabularInline):
    model = StageChange
    fields = ("from_stage", "to_stage", "changed_by", "changed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("changed_at", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OpportunityAdminForm(forms.ModelForm):
    class Meta:
        model = Opportunity
        fields = (
            "title",
            "company",
            "contact",
            "product",
            "owner",
            "amount",
            "currency",
            "primary_competitor",
            "expected_close_date",
            "next_step",
            "next_step_due",
        )

    def clean(self):
        cleaned = super().clean()
        company, contact = cleaned.get("company"), cleaned.get("contact")
        if company and contact and contact.company_id != company.pk:
            self.add_error("contact", f"{contact} works at {contact.company}, not at {company}.")
        next_step, due = cleaned.get("next_step", ""), cleaned.get("next_step_due")
        if due and not next_step.strip():
            self.add_error("next_step", "Say what the next step is, not only when.")
        return cleaned


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):
    form = OpportunityAdminForm
    list_display = (
        "title",
        "company",
        "owner",
        "product",
        "stage",
        "amount",
        "currency",
        "expected_close_date",
        "closed_date",
    )
    list_filter = ("stage", "product__line", "currency", "owner__team")
    list_select_related = ("company", "owner", "product")
    search_fields = (
        "title",
        "company__name",
        "company__domain",
        "owner__full_name",
        "owner__email",
    )
    autocomplete_fields = ("company", "contact", "owner")
    # Stages move through the pipeline and the close-with-reflection flow, which record the
    # history and derived data; editing them here would bypass both.
    readonly_fields = ("stage", "closed_date", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("title", "company", "contact", "product", "owner")}),
        ("Value", {"fields": ("amount", "currency", "primary_competitor")}),
        (
            "Stage and dates",
            {"fields": ("stage", "expected_close_date", "closed_date", "created_at", "updated_at")},
        ),
        ("Next step", {"fields": ("next_step", "next_step_due")}),
    )
    inlines = [StageChangeInline]
    # A count over every deal on each page load is slow at scale and rarely useful here.
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            # A deal added here starts its stage history like one opened in the app.
            StageChange.objects.create(
                opportunity=obj, from_stage="", to_stage=obj.stage, changed_by=request.user
            )


@admin.register(StageChange)
class StageChangeAdmin(ReadOnlyAdmin):
    """Stage history is an audit trail: readable, never edited by hand."""

    list_display = ("opportunity", "from_stage", "to_stage", "changed_by", "changed_at")
    list_filter = ("to_stage", "from_stage")
    list_select_related = ("opportunity", "changed_by")
    search_fields = ("opportunity__title", "changed_by__full_name", "changed_by__email")
    raw_id_fields = ("opportunity", "changed_by")
    show_full_result_count = False
