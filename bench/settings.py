"""
Settings for `make bench` and `make load`: the project's own settings, read from the environment
as in production (bench/run.py and bench/load.py set DEBUG=false, a throwaway SECRET_KEY and the
benchmark DATABASE_URL), with three differences that keep the benchmark off shared state:

- ROOT_URLCONF adds the floor view (bench/floor.py) in front of the site's URLs;
- static URLs come from the plain storage, not the manifest one that DEBUG off selects: the
  benchmark measures pages, not static files, and needs no collectstatic (which, with DEBUG off,
  currently fails on the vendored Chart.js source-map comment; see BENCHMARKS.md);
- without REDIS_URL, Celery publishes to an in-memory broker instead of running tasks eagerly:
  in production a close queues the insights refresh, it does not run it inside the request.
"""

from crm_site.settings import *  # noqa: F403
from crm_site.settings import REDIS_URL, STORAGES

ROOT_URLCONF = "bench.urls"
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if not REDIS_URL:
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_TASK_ALWAYS_EAGER = False
