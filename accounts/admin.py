from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group

from accounts.forms import UserAdminChangeForm, UserAdminCreationForm
from accounts.models import ApiToken, Team, User
from accounts.tokens import api_token_create, api_token_revoke

# Roles are the permission model; Django's groups would be a second, confusing one.
admin.site.unregister(Group)
admin.site.site_header = "Debrief administration"
admin.site.site_title = "Debrief admin"


class MemberInline(admin.TabularInline):
    model = User
    fk_name = "team"
    fields = ("full_name", "email", "role", "is_active")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "member"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "manager_names", "member_count")
    search_fields = ("name", "managers__full_name", "managers__email")
    list_filter = ("managers",)
    filter_horizontal = ("managers",)
    inlines = [MemberInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return (
            super()
            .get_queryset(request)
            .annotate(_members=Count("members", distinct=True))
            .prefetch_related("managers")
        )

    @admin.display(description="Managers")
    def manager_names(self, obj):
        return ", ".join(m.full_name for m in obj.managers.all()) or "—"

    @admin.display(description="Members", ordering="_members")
    def member_count(self, obj):
        return obj._members


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserAdminChangeForm
    add_form = UserAdminCreationForm
    list_display = ("email", "full_name", "role", "team", "is_active", "last_login")
    list_filter = ("role", "team", "is_active")
    list_select_related = ("team",)
    search_fields = ("email", "full_name", "team__name")
    ordering = ("full_name",)
    readonly_fields = ("last_login", "date_joined")
    filter_horizontal = ()
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Person", {"fields": ("full_name", "role", "team", "is_active")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "role", "team", "password1", "password2"),
            },
        ),
    )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, plain = api_token_create(name=obj.name, created_by=request.user)
        obj.pk = token.pk
        obj.prefix = token.prefix
        self.message_user(
            request,
            f"Token for “{token.name}”: {plain} — copy it now, it is not shown again.",
            messages.WARNING,
        )
        return None

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so that the record stays

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
