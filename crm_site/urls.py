from django.contrib import admin
from django.urls import include, path

from accounts.urls import auth_urlpatterns
from crm_site import health, views
from suppressions import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("api/suppressions/check", api.suppression_check, name="api_suppression_check"),
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
