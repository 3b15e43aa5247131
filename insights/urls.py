from django.urls import path

from insights import views

app_name = "insights"

urlpatterns = [
    path("insights/", views.dashboard, name="dashboard"),
    path("insights/export/<slug:table>.csv", views.export, name="export"),
    path("insights/refresh", views.refresh, name="refresh"),
    path("insights/runs/<int:run_id>/progress", views.run_progress, name="run_progress"),
    # Private to the signed-in user: no user id in the path or the query, ever.
    path("me/reflections/", views.my_reflections, name="my_reflections"),
]
