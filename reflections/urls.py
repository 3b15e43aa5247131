from django.urls import path

from reflections import views

app_name = "reflections"

urlpatterns = [
    path(
        "opportunities/<int:opportunity_id>/close/<str:outcome>/",
        views.close_opportunity,
        name="close",
    ),
    path("opportunities/<int:opportunity_id>/reopen/", views.reopen_opportunity, name="reopen"),
    path("reflections/<int:reflection_id>/", views.reflection_detail, name="detail"),
    path("reflections/<int:reflection_id>/amend/", views.reflection_amend, name="amend"),
    path("companies/<int:company_id>/debriefs/", views.debrief_create, name="debrief_create"),
]
