import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from crm_site.settings import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k8Jx2-very-long-random-production-key-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "crm.example.com",
    "DATABASE_URL": "postgres://debrief:debrief@127.0.0.1:5432/debrief",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    ignored = {"DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "LOG_FORMAT"}
    clean = {k: v for k, v in os.environ.items() if k not in ignored}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.smoke
@pytest.mark.parametrize("raw, expected", [("true", True), ("FALSE", False), ("", True)])
def test_env_bool_accepts_only_true_and_false(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG", True) is expected


@pytest.mark.smoke
@pytest.mark.parametrize("raw", ["1", "yes", "on", "treu"])
def test_env_bool_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv("FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="FLAG must be 'true' or 'false'"):
        env_bool("FLAG", False)


def test_env_int_rejects_words(monkeypatch):
    monkeypatch.setenv("N", "ten")
    with pytest.raises(ImproperlyConfigured):
        env_int("N", 1)


def test_env_list_and_secret_file(monkeypatch, tmp_path):
    monkeypatch.setenv("HOSTS", " a.example , b.example,,")
    assert env_list("HOSTS") == ["a.example", "b.example"]
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env_str("TOKEN") == "from-a-file"


def test_production_without_secret_key_refuses_to_start():
    result = _manage("check", env={"DEBUG": "false", "ALLOWED_HOSTS": "x.example"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_in_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    assert "WARNINGS" not in result.stderr


def test_collectstatic_works_with_production_settings():
    # The manifest storage used with DEBUG off refuses any reference to a missing file (such
    # as a vendored library's source map): without a manifest, every page would be a 500.
    result = _manage("collectstatic", "--noinput", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (ROOT / "var" / "staticfiles" / "staticfiles.json").exists()


def test_seed_demo_refuses_with_debug_off():
    env = {**PRODUCTION_ENV}
    env.pop("DATABASE_URL")
    env.pop("REDIS_URL")
    env["SQLITE_PATH"] = ":memory:"
    result = _manage("seed_demo", env=env)
    assert result.returncode != 0
    assert "refuses to run with DEBUG off" in result.stderr
