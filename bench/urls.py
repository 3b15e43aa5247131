"""The site's URLs plus the floor pages (bench/floor.py), for the benchmark settings."""

from django.urls import path

from bench import floor
from crm_site.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    path("bench/floor/", floor.pipeline_floor, name="bench_floor"),
    path("bench/floor/company/<int:company_id>/", floor.company_floor, name="bench_company_floor"),
    path("bench/floor/insights/", floor.insights_floor, name="bench_insights_floor"),
    *site_urlpatterns,
]
