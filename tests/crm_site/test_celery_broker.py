"""A task sent through the real Redis broker to a real worker that the test starts."""

import pytest
from celery.contrib.testing.worker import start_worker

from crm_site.celery import app, ping


@pytest.mark.needs_redis
def test_task_round_trip_through_redis_and_a_worker(settings):
    assert not app.conf.task_always_eager
    assert app.conf.broker_url.startswith("redis://")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        result = ping.apply_async(ignore_result=False)  # results are off by default
        assert result.get(timeout=20) == "pong"
        assert result.status == "SUCCESS"


def test_embedded_default_runs_tasks_eagerly(settings):
    if settings.REDIS_URL:
        assert not app.conf.task_always_eager
    else:
        assert app.conf.task_always_eager
        assert ping.delay().get() == "pong"
