from django.urls import path

from suppressions import views

app_name = "suppressions"

urlpatterns = [
    path("suppressions/check/", views.call_list_check, name="call_list_check"),
    path("suppressions/check/<int:job_id>/", views.call_list_job, name="call_list_job"),
    path(
        "suppressions/check/<int:job_id>/cancel/",
        views.call_list_job_cancel,
        name="call_list_job_cancel",
    ),
    path(
        "suppressions/check/<int:job_id>/retry/",
        views.call_list_job_retry,
        name="call_list_job_retry",
    ),
    path(
        "suppressions/check/<int:job_id>/download/",
        views.call_list_job_download,
        name="call_list_job_download",
    ),
    path("suppressions/status/", views.pitch_status, name="pitch_status"),
    path("suppressions/exceptions/", views.override_list, name="override_list"),
    path("suppressions/exceptions/new/", views.override_request, name="override_request"),
    path(
        "suppressions/exceptions/<int:override_id>/decide/",
        views.override_decide,
        name="override_decide",
    ),
    path(
        "suppressions/<int:suppression_id>/lift/",
        views.suppression_lift,
        name="suppression_lift",
    ),
    path(
        "companies/<int:company_id>/do-not-contact/",
        views.do_not_contact,
        name="do_not_contact",
    ),
]
