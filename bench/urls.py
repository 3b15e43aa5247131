"""The site's URLs plus the floor page, for bench/settings.py and the in-process suite."""

from django.urls import path

from bench import floor
from crm_site.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    path("bench/floor/", floor.pipeline_floor, name="bench_floor"),
    *site_urlpatterns,
]
