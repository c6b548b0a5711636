"""Settings are read from the environment; each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "db": settings.DATABASES["default"]["ENGINE"], "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "hosts": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "debug": settings.DEBUG, "realtime": settings.OPENAI_REALTIME_URL, "hsts": settings.SECURE_HSTS_SECONDS,
}))
"""


OURS = (
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ELKS_WS_SECRET",
    "SECURE_SSL_REDIRECT",
    "VOICEAGENT_DB_NAME",
)


def load(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in OURS}
    clean.update(DJANGO_SETTINGS_MODULE="voiceagent.settings", VOICEAGENT_ENV_FILE="", **env)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)


def settings_for(**env: str) -> dict:
    base = {"SECRET_KEY": "x" * 50, "ELKS_WS_SECRET": "y" * 32}
    result = load({**base, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_sqlite_and_in_memory_layer():
    s = settings_for()
    assert s["db"] == "django.db.backends.sqlite3" and s["db_name"].endswith("db.sqlite3")
    assert s["layer"] == "voiceagent.layers.InMemoryChannelLayer"
    assert s["realtime"] == "wss://api.openai.com/v1/realtime"
    assert s["debug"] is False


def test_database_url_selects_postgresql():
    s = settings_for(DATABASE_URL="postgres://u:p@db.example:5433/voice")
    assert s["db"] == "django.db.backends.postgresql" and s["db_name"] == "voice"


def test_redis_url_selects_channels_redis():
    s = settings_for(REDIS_URL="redis://127.0.0.1:6379/1")
    assert s["layer"] == "channels_redis.core.RedisChannelLayer"
    assert s["hosts"] == [{"address": "redis://127.0.0.1:6379/1", "socket_timeout": None}]


def test_rediss_url_skips_certificate_verification():
    s = settings_for(REDIS_URL="rediss://:pw@redis.example:6380")
    assert s["hosts"][0]["ssl_cert_reqs"] is None


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ELKS_WS_SECRET"])
def test_missing_secret_is_a_clear_startup_error_without_debug(missing):
    env = {"SECRET_KEY": "x" * 50, "ELKS_WS_SECRET": "y" * 32}
    del env[missing]
    result = load(env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_debug_runs_on_embedded_defaults():
    result = load({"DEBUG": "1"})
    assert result.returncode == 0, result.stderr


def test_check_deploy_passes_with_the_documented_production_env():
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    env.update(
        DJANGO_SETTINGS_MODULE="voiceagent.settings",
        VOICEAGENT_ENV_FILE="",
        SECRET_KEY="k" * 60 + "Zq7#",
        ELKS_WS_SECRET="s" * 40,
        ALLOWED_HOSTS="voice.example.com",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_secret_is_one_clear_line_from_manage_py_not_a_traceback():
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    env.update(DJANGO_SETTINGS_MODULE="voiceagent.settings", VOICEAGENT_ENV_FILE="")
    result = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--help"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECRET_KEY is not set" in lines[0], result.stderr


def test_the_dev_env_file_make_run_writes_gives_a_working_local_setup(tmp_path):
    from voiceagent.devenv import write_dev_env

    path = tmp_path / ".env"
    assert write_dev_env(path)
    first = path.read_text()
    assert not write_dev_env(path) and path.read_text() == first  # an existing file is never touched
    clean = {k: v for k, v in os.environ.items() if k not in OURS}
    clean.update(DJANGO_SETTINGS_MODULE="voiceagent.settings", VOICEAGENT_ENV_FILE=str(path))
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is True
