"""The health endpoint the platform polls."""

from __future__ import annotations

import pytest

from voiceagent import settings as base_settings


@pytest.mark.django_db
def test_healthz_ok_with_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_healthz_reports_a_broken_database(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(self, sql, params=None):
        raise RuntimeError("database is down")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")


@pytest.mark.django_db
def test_healthz_checks_redis_when_configured(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CHANNEL_LAYERS = base_settings.channel_layer_config(settings.REDIS_URL)
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json()["redis"].startswith("error")


@pytest.mark.django_db
@pytest.mark.redis
def test_healthz_ok_with_real_redis(client, settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = base_settings.channel_layer_config(redis_url)
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 200, response.json()
    assert response.json()["redis"] == "ok"
