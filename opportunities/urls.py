from django.urls import path

from opportunities import views, views_plan

app_name = "opportunities"

urlpatterns = [
    # Pipeline list, deal pages and the deal form (opportunities/views.py).
    path("opportunities/", views.pipeline, name="pipeline"),
    path("opportunities/new/", views.opportunity_create, name="create"),
    path("opportunities/<int:opportunity_id>/", views.opportunity_detail, name="detail"),
    path("opportunities/<int:opportunity_id>/edit/", views.opportunity_edit, name="edit"),
    path(
        "opportunities/autocomplete/companies/",
        views.company_autocomplete,
        name="company_autocomplete",
    ),
    path("opportunities/autocomplete/contacts/", views.contact_options, name="contact_options"),
    # Stage board and the rep's plan (opportunities/views_plan.py).
    path("opportunities/board/", views_plan.board, name="board"),
    path("opportunities/<int:opportunity_id>/move/", views_plan.move_stage, name="move"),
    path(
        "opportunities/<int:opportunity_id>/next-step/",
        views_plan.next_step_edit,
        name="next_step",
    ),
    path("plan/", views_plan.plan, name="plan"),
]
