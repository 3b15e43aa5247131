from django.contrib import admin
from django.urls import include, path

from accounts.urls import auth_urlpatterns
from crm_site import health, views
from suppressions import api, api_feed, api_lists

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("api/suppressions/check", api.suppression_check, name="api_suppression_check"),
    path("api/suppressions/lists", api_lists.lists, name="api_call_lists"),
    path("api/suppressions/lists/<int:job_id>", api_lists.list_detail, name="api_call_list"),
    path(
        "api/suppressions/lists/<int:job_id>/result",
        api_lists.list_result,
        name="api_call_list_result",
    ),
    path(
        "api/suppressions/lists/<int:job_id>/retry",
        api_lists.list_retry,
        name="api_call_list_retry",
    ),
    path("api/suppressions/changes", api_feed.suppression_changes, name="api_suppression_changes"),
    path("api/schema", api.schema, name="api_schema"),
    path("accounts/", include(auth_urlpatterns)),
    path("", include("accounts.urls")),
    path("", include("customers.urls")),
    path("", include("opportunities.urls")),
    path("", include("suppressions.urls")),
    path("", include("reflections.urls")),
    path("", include("surveys.urls")),
    path("", include("insights.urls")),
    path("admin/", admin.site.urls),
]
