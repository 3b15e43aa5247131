"""
The Celery application. Configuration comes from Django settings (CELERY_* names); see
crm_site/settings.py. Start a worker with `celery -A crm_site worker -l info` and the scheduler
with `celery -A crm_site beat -l info`.
"""

import os

from celery import Celery
from celery.signals import setup_logging

import crm_site.logs  # noqa: F401  (connects the task log signals)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_site.settings")

app = Celery("crm_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def config_loggers(*args, **kwargs):
    """Use Django's LOGGING for workers too, so task logs look like request logs."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@app.task(name="debrief.ping")
def ping() -> str:
    """Round-trip check for the broker and a worker (used by tests and operators)."""
    return "pong"
