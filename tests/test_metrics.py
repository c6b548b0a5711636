"""The Prometheus endpoint: its token, its content, and a real call seen through a daphne of its own
(started with METRICS_TOKEN and LOG_FORMAT=json, so its log lines are checked too)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from assistants.realtime_config import AssistantConfig
from calls.live.types import Outcome
from calls.models import Call
from insights import metrics
from insights.observers import CallInsights
from tests.bridge_helpers import fake_openai, make_assistant, simulator, wait_call_ended
from tests.conftest import FAST_TIMEOUTS, start_daphne, stop_daphne
from voiceagent.logfmt import JsonFormatter

TOKEN = "metrics-token-for-tests-0123456789"


def sample(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_off_until_a_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 404 and b"set METRICS_TOKEN" in response.content


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"bearer{TOKEN}"]
)
def test_a_missing_or_wrong_token_is_refused(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer") and b"Authorization: Bearer" in response.content


@pytest.mark.django_db(transaction=True)
def test_the_content_counts_calls_from_the_database_and_this_process(client, settings):
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    for n, (status, reason) in enumerate(
        [("completed", "caller_hangup"), ("completed", "caller_hangup"), ("failed", "openai_error"), ("active", "")]
    ):
        Call.objects.create(call_id=f"m{n}", started_at=now, status=status, end_reason=reason)
    turns, bridge = sample("voiceagent_turn_latency_seconds_count"), sample("voiceagent_bridge_latency_seconds_count")
    fast = sample("voiceagent_turn_latency_seconds_bucket", le="0.8")
    errors = sample("voiceagent_openai_errors_total", code="rate_limit_exceeded")

    # One call's events, as the session reports them.
    session = SimpleNamespace(
        config=AssistantConfig(id=1, name="A", instructions="x"),
        started_at=time.monotonic() - 30,
        openai_received_at=time.monotonic() - 0.0005,
        hello=SimpleNamespace(callid="metrics-call"),
        call_pk=None,
    )
    observer = CallInsights(session)
    observer.speech_stopped(session, 100.0)
    observer.first_audio(session, 100.7, "resp_1")
    observer.openai_error(session, {"type": "rate_limits", "code": "rate_limit_exceeded", "message": "Slow down"})
    asyncio.run(observer.ended(session, Outcome("completed", "caller_hangup")))

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert 'voiceagent_calls_total{end_reason="caller_hangup",status="completed"} 2.0' in text
    assert 'voiceagent_calls_total{end_reason="openai_error",status="failed"} 1.0' in text
    assert "voiceagent_active_calls 1.0" in text and "voiceagent_process_active_calls 0.0" in text
    assert sample("voiceagent_turn_latency_seconds_count") == turns + 1
    assert sample("voiceagent_turn_latency_seconds_bucket", le="0.8") == fast + 1  # 0.7 s
    assert sample("voiceagent_bridge_latency_seconds_count") == bridge + 1
    assert sample("voiceagent_openai_errors_total", code="rate_limit_exceeded") == errors + 1
    for name in ("voiceagent_call_duration_seconds", "voiceagent_bridge_latency_seconds", "voiceagent_openai_errors"):
        assert f"# HELP {name}" in text


def test_calls_openai_failed_without_an_error_event_are_labelled_from_their_record():
    assert metrics.failure_code("OpenAI refused the API key (HTTP 401): check OPENAI_API_KEY.") == "http_401"
    assert metrics.failure_code("OpenAI did not answer within 3 s.") == "connect_timeout"
    assert metrics.failure_code("OpenAI closed the session (close code 1006)") == "connection_closed"
    assert metrics.error_code({"type": "server_error", "code": None}) == "server_error"


def test_json_log_lines_carry_the_call_id():
    formatter = JsonFormatter()
    record = logging.makeLogRecord(
        {"name": "calls.live.setup", "levelname": "INFO", "msg": "call %s: hello from %s", "args": ("c42", "+4670")}
    )
    line = json.loads(formatter.format(record))
    assert line["call_id"] == "c42" and line["message"] == "call c42: hello from +4670" and line["level"] == "INFO"
    extra = logging.makeLogRecord({"msg": "saved", "call_id": "c7", "seconds": 1.5})
    assert json.loads(formatter.format(extra))["seconds"] == 1.5


@pytest.fixture(scope="module")
def metered_daphne(django_db_setup, django_db_blocker):
    """A daphne of this module's own: /metrics switched on, logs as JSON."""
    server = start_daphne(
        connection.settings_dict["NAME"], extra_env={**FAST_TIMEOUTS, "METRICS_TOKEN": TOKEN, "LOG_FORMAT": "json"}
    )
    yield server
    stop_daphne(server)


def scrape(server, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(server.http_url + "/metrics", headers=headers)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_a_call_shows_up_in_the_served_metrics_and_logs(metered_daphne, transactional_db):
    await sync_to_async(make_assistant)("Metered", "+46700000001")
    async with fake_openai(metered_daphne, answer_ms=300) as fake:
        sim = simulator(metered_daphne, caller_audio=[("silence", 800), ("speech", 500), ("silence", 900)])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await session.wait_for("session.update")
        await session.send_error("rate_limit_exceeded", "You are sending requests too quickly.", type_="rate_limits")
        await session.wait_for("response.done", predicate=lambda e: len(session.responses) >= 2, timeout=8)
        await sim.wait_played_ms(600)
        _, during = await asyncio.to_thread(scrape, metered_daphne)
        await sim.hang_up()
        result = await task
    await wait_call_ended(metered_daphne, result.callid)
    status, after = await asyncio.to_thread(scrape, metered_daphne)
    refused, _ = await asyncio.to_thread(scrape, metered_daphne, None)
    assert "voiceagent_process_active_calls 1.0" in during and "voiceagent_active_calls 1.0" in during
    assert "voiceagent_process_active_calls 0.0" in after
    assert 'voiceagent_calls_total{end_reason="caller_hangup",status="completed"} 1.0' in after
    assert "voiceagent_turn_latency_seconds_count 1.0" in after
    assert "voiceagent_bridge_latency_seconds_count 2.0" in after  # the greeting's first audio and the reply's
    assert "voiceagent_call_duration_seconds_count 1.0" in after
    assert 'voiceagent_openai_errors_total{code="rate_limit_exceeded"} 1.0' in after
    assert status == 200 and refused == 401

    lines = [json.loads(line) for line in metered_daphne.log if line.startswith("{")]
    mine = [line for line in lines if line.get("call_id") == result.callid]
    assert {"calls.live.setup", "insights.observers"} <= {line["logger"] for line in mine}
    usage = next(line for line in mine if line.get("event") == "call.usage")
    assert usage["turns"] == 1 and usage["reply_p50_ms"] is not None
    assert len(mine) < 12  # one line per call event, never one per audio frame


def _late_wakeups(text: str) -> float:
    """Observations of voiceagent_event_loop_lag_seconds above 100 ms, from a scrape."""
    buckets = {}
    for line in text.splitlines():
        if line.startswith("voiceagent_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    return buckets["+Inf"] - buckets["0.1"]


async def test_a_stalled_loop_shows_in_the_lag_histogram_and_is_logged_once(metered_daphne):
    _, before = await asyncio.to_thread(scrape, metered_daphne)
    assert 'voiceagent_event_loop_lag_seconds_bucket{le="0.001"}' in before
    late0 = _late_wakeups(before)
    mark = len(metered_daphne.log)
    for _ in range(2):  # the whole process stopped for 300 ms, twice: its loop is as late
        os.kill(metered_daphne.process.pid, signal.SIGSTOP)
        await asyncio.sleep(0.3)
        os.kill(metered_daphne.process.pid, signal.SIGCONT)
        await metered_daphne.await_log("event loop late by", start=mark)
    deadline = time.monotonic() + 5
    while True:
        _, text = await asyncio.to_thread(scrape, metered_daphne)
        if _late_wakeups(text) >= late0 + 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert _late_wakeups(text) >= late0 + 2
    lines = [line for line in metered_daphne.log[mark:] if "event loop late by" in line]
    assert len(lines) == 1 and json.loads(lines[0])["level"] == "WARNING"
