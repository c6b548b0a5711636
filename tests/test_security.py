"""Security settings that are not about bad input: the login limit, the allowlist, the secret in logs."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import override_settings
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from calls.access import ip_allowed, real_client_ip
from tests.bridge_helpers import NUMBER_A, fake_openai, make_assistant, simulator
from tests.conftest import FAST_TIMEOUTS, start_daphne, stop_daphne


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_admin_login_is_rate_limited_per_address_and_user(client, settings):
    settings.LOGIN_MAX_ATTEMPTS = 3
    User.objects.create_superuser("boss", password="right-horse-battery")
    for _ in range(3):
        response = client.post("/admin/login/", {"username": "boss", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "boss", "password": "right-horse-battery"})
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content
    # Another address trying the same user is refused too: the limit is per user name as well.
    other = client.__class__(REMOTE_ADDR="10.9.8.7")
    assert other.post("/admin/login/", {"username": "boss", "password": "x"}).status_code == 429


@pytest.mark.django_db
def test_successful_login_is_not_counted(client, settings):
    settings.LOGIN_MAX_ATTEMPTS = 2
    User.objects.create_superuser("boss", password="right-horse-battery")
    for _ in range(3):
        response = client.post("/admin/login/", {"username": "boss", "password": "right-horse-battery"})
        assert response.status_code == 302
        client.logout()


@override_settings(TRUSTED_PROXY_COUNT=0)
def test_forwarded_for_is_ignored_without_a_trusted_proxy():
    assert real_client_ip("203.0.113.9", "176.10.154.199") == "203.0.113.9"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_only_the_entry_our_proxy_appended_is_believed():
    # The client forged the first entry; Heroku's router appended the real address last.
    assert real_client_ip("10.0.0.1", "176.10.154.199, 198.51.100.7") == "198.51.100.7"
    assert real_client_ip("10.0.0.1", None) == "10.0.0.1"


def test_allowlist_matches_addresses_and_networks():
    allowed = ["176.10.154.199", "85.24.146.0/24", "2001:9b0:2:902::199"]
    assert ip_allowed("176.10.154.199", allowed) and ip_allowed("85.24.146.132", allowed)
    assert ip_allowed("2001:9b0:2:902::199", allowed)
    assert not ip_allowed("198.51.100.7", allowed) and not ip_allowed("unknown", allowed)
    assert ip_allowed("198.51.100.7", [])


@pytest.mark.django_db(transaction=True)
async def test_allowlist_refuses_other_sources_and_trusts_only_our_proxy(django_db_setup, transactional_db):
    from django.db import connection

    await sync_to_async(make_assistant)("Guarded", NUMBER_A)
    env = {**FAST_TIMEOUTS, "ELKS_ALLOWED_IPS": "176.10.154.199", "TRUSTED_PROXY_COUNT": "1"}
    server = start_daphne(connection.settings_dict["NAME"], extra_env=env)
    try:
        # A client that forges the header gets its own address appended by "our proxy": refused.
        with pytest.raises(InvalidStatus) as exc:
            async with connect(server.elks_url, additional_headers={"X-Forwarded-For": "176.10.154.199, 6.6.6.6"}):
                pass
        assert exc.value.response.status_code == 403
        async with fake_openai(server, answer_ms=300):
            sim = simulator(server, to=NUMBER_A, extra_headers={"X-Forwarded-For": "176.10.154.199"}, seconds=1)
            result = await sim.run()
        assert result.listening_format == "pcm_24000"
        await server.await_log("not in ELKS_ALLOWED_IPS")
    finally:
        stop_daphne(server)
    assert server.secret not in server.logs(), "the 46elks secret must never reach the logs"
