from django.urls import path

from surveys import views

app_name = "surveys"

urlpatterns = [
    path("opportunities/<int:opportunity_id>/survey/", views.survey_ask, name="ask"),
    path("survey/<str:token>/", views.survey_answer, name="answer"),
    path("survey/<str:token>/thanks/", views.survey_thanks, name="thanks"),
    path("survey/<str:token>/opt-out/", views.survey_opt_out, name="opt_out"),
]
