from django.urls import path

from customers import views, views_suppression

app_name = "customers"

urlpatterns = [
    path("companies/", views.company_list, name="company_list"),
    path("companies/new/", views.company_create, name="company_create"),
    path("companies/<int:company_id>/", views.company_detail, name="company_detail"),
    path("companies/<int:company_id>/edit/", views.company_edit, name="company_edit"),
    path("companies/<int:company_id>/contacts/new/", views.contact_create, name="contact_create"),
    path("suppressions/check/", views_suppression.call_list_check, name="call_list_check"),
    path("suppressions/status/", views_suppression.pitch_status, name="pitch_status"),
    path("suppressions/exceptions/", views_suppression.override_list, name="override_list"),
    path(
        "suppressions/exceptions/new/",
        views_suppression.override_request,
        name="override_request",
    ),
    path(
        "suppressions/exceptions/<int:override_id>/decide/",
        views_suppression.override_decide,
        name="override_decide",
    ),
    path(
        "suppressions/<int:suppression_id>/lift/",
        views_suppression.suppression_lift,
        name="suppression_lift",
    ),
    path(
        "companies/<int:company_id>/do-not-contact/",
        views_suppression.do_not_contact,
        name="do_not_contact",
    ),
]
