"""No Docker engine runs here, so docker-compose.yml is checked by reading it."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.smoke
def test_compose_has_every_service_with_a_healthcheck(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "db", "redis"} <= set(services)
    for name in ("web", "worker", "beat", "db", "redis"):
        assert "test" in services[name]["healthcheck"], name


def test_compose_keeps_state_in_named_volumes(compose):
    volumes = set(compose["volumes"])
    services = compose["services"]
    for name in ("db", "redis"):
        mounted = {v.split(":")[0] for v in services[name]["volumes"]}
        assert mounted & volumes, name


def test_compose_app_services_use_postgres_redis_and_no_debug(compose):
    for name in ("web", "worker", "beat"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")
        assert env["DEBUG"] == "false"
        assert "SECRET_KEY" in env and "?" in env["SECRET_KEY"]  # required, never a literal
        assert compose["services"][name]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "gunicorn" in compose["services"]["web"]["command"]
    assert "worker" in compose["services"]["worker"]["command"]
    assert "beat" in compose["services"]["beat"]["command"]
