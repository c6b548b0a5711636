"""Fault injection: every misbehaviour we can think of, each next to a healthy call that must not notice.

Each test asserts what the caller receives, what the Call and its transcript hold afterwards,
and that a second, healthy call in the same process was not affected.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.utils import timezone
from websockets.asyncio.client import connect

from calls.models import Call, CallStatus
from tests.bridge_helpers import (
    NUMBER_A,
    NUMBER_B,
    fake_openai,
    get_call,
    make_assistant,
    simulator,
    transcript,
    wait_call_ended,
)
from tests.conftest import FAST_TIMEOUTS, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def assistants(transactional_db):
    a = make_assistant("Faulty", NUMBER_A, welcome_message="Hello faulty.")
    b = make_assistant("Healthy", NUMBER_B, welcome_message="Hello healthy.", audio_format="ulaw")
    return a, b


class HealthyCall:
    """A call that runs next to the fault: its greeting must arrive whole and in order."""

    def __init__(self, server, fake, answer_ms: float = 1500) -> None:
        self.sim = simulator(server, to=NUMBER_B)
        self.fake = fake
        self.answer_ms = answer_ms

    async def __aenter__(self) -> HealthyCall:
        self.task = asyncio.ensure_future(self.sim.run())
        self.session = await self.fake.next_session()
        self.session.answer_ms = self.answer_ms
        await self.session.wait_for("session.updated")
        return self

    async def __aexit__(self, *exc) -> None:
        if exc[0] is not None:
            self.task.cancel()
            return
        await self.sim.wait_played_ms(self.answer_ms, timeout=10)
        await self.sim.hang_up()
        result = await self.task
        assert result.violations == []
        assert bytes(result.played_audio) == b"".join(bytes(a) for a in self.session.sent_audio.values())
        assert bytes(self.session.input_audio) == bytes(result.sent_audio)
        assert result.interrupts == []


async def faulty_call_survives(server, fake, messages: list, *, expect_log: str) -> None:
    """Send bad messages during a call; the call and its neighbour go on, and the log says why."""
    async with HealthyCall(server, fake):
        sim = simulator(server, to=NUMBER_A)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await session.wait_for("session.updated")
        for message in messages:
            await sim.send_raw(message)
        await sim.wait_played_ms(1500)
        await sim.hang_up()
        result = await task
    assert result.violations == []
    call = await wait_call_ended(server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    assert (await transcript(result.callid))[0][:2] == ("assistant", "Hello faulty.")
    server.wait_log(expect_log, timeout=1)


FRAME = base64.b64encode(bytes(960)).decode()


@pytest.mark.parametrize(
    ("messages", "log"),
    [
        (["{not json"], "invalid JSON"),
        ([b"\x00\x01binary"], "binary frame"),
        (['{"t":"dance"}', '{"t":42}', "[1,2]", '"hello"'], "unknown message type"),
        (['{"t":"hello","callid":"second","from":"+46700","to":"+46700000002"}'], "second hello"),
        (['{"t":"audio","data":"!!!not base64!!"}', '{"t":"audio"}'], "not base64"),
        (['{"t":"audio","data":"AA=="}'], "whole number"),
        (['{"t":"audio","data":"' + "A" * 400_000 + '"}'], "oversized message"),
        (['{"t":"sync"}'], "sync we did not ask for"),
        (['{"t":"audio","data":"' + FRAME + '","extra":{"deep":[1,2,3]}}'], "hello from"),
    ],
    ids=[
        "invalid-json",
        "binary",
        "unknown-t",
        "second-hello",
        "bad-base64",
        "partial-sample",
        "oversized",
        "unsolicited-sync",
        "extra-keys",
    ],
)
async def test_bad_46elks_messages_are_logged_and_ignored(daphne_server, assistants, messages, log):
    async with fake_openai(daphne_server) as fake:
        await faulty_call_survives(daphne_server, fake, messages, expect_log=log)


async def test_messages_before_hello_are_ignored_then_the_call_works(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=500) as fake:
        async with connect(daphne_server.elks_url) as ws:
            await ws.send('{"t":"audio","data":"' + FRAME + '"}')
            await ws.send('{"t":"bye"}')
            await ws.send('{"t":"hello","callid":"early-bird","from":"+46709999999","to":"' + NUMBER_A + '"}')
            assert await asyncio.wait_for(ws.recv(), 5) == '{"t":"listening","format":"pcm_24000"}'
            session = await fake.next_session()
            await session.wait_for("response.done")
            await ws.send('{"t":"bye","reason":"hangup","message":"the caller hung up"}')
    await daphne_server.await_log("audio before hello")
    call = await wait_call_ended(daphne_server, "early-bird")
    assert call.status == "completed"


async def flood(sim, *, per_second: int, seconds: float, until: asyncio.Future | None = None) -> None:
    """Send audio messages at `per_second`, paced in 20 ms steps, for `seconds` (or until `until` is done)."""
    loop = asyncio.get_running_loop()
    message = '{"t":"audio","data":"' + FRAME + '"}'
    start = loop.time()
    step = 0
    while loop.time() - start < seconds and not (until is not None and until.done()):
        for _ in range(per_second // 50):
            await sim.send_raw(message)
        step += 1
        await asyncio.sleep(max(0.0, start + step * 0.02 - loop.time()))


async def test_a_sustained_message_flood_is_cut_politely_and_spares_the_neighbour(daphne_server, assistants):
    async with fake_openai(daphne_server) as fake:
        async with HealthyCall(daphne_server, fake, answer_ms=7000):
            sim = simulator(daphne_server, to=NUMBER_A)
            task = asyncio.ensure_future(sim.run())
            await fake.next_session()
            await sim.wait_first_audio()
            started = asyncio.get_running_loop().time()
            await flood(sim, per_second=2000, seconds=5, until=task)
            result = await task
            took = asyncio.get_running_loop().time() - started
    assert result.ended_by == "server"
    assert took < 7, f"the flood was cut only after {took:.1f} s"
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("failed", "protocol_error")
    assert "too fast" in call.end_detail
    daphne_server.wait_log("message flood", timeout=1)


async def test_a_catch_up_burst_of_audio_reaches_openai_whole_and_in_order(daphne_server, assistants):
    """500 frames (10 s of 20 ms audio) back to back, as TCP delivers audio held up by a network stall."""
    burst = [i.to_bytes(2, "big") * 480 for i in range(500)]  # each 20 ms frame of PCM 24 kHz is different
    async with fake_openai(daphne_server) as fake:
        async with HealthyCall(daphne_server, fake, answer_ms=3000):
            sim = simulator(daphne_server, to=NUMBER_A)
            task = asyncio.ensure_future(sim.run())
            session = await fake.next_session()
            await sim.wait_first_audio()
            await sim.send_audio_burst(burst)
            await sim.send_audio_burst(burst)  # and a second stall right after
            await sim.wait_played_ms(1000)
            await sim.hang_up()
            result = await task
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    assert bytes(session.input_audio) == bytes(result.sent_audio)
    assert b"".join(burst) * 2 in bytes(session.input_audio)


async def test_control_messages_pass_a_flood_limit(daphne_server, assistants):
    """While audio is being dropped as a flood, the caller's bye still ends the call as a hang-up."""
    async with fake_openai(daphne_server) as fake:
        sim = simulator(daphne_server, to=NUMBER_A)
        task = asyncio.ensure_future(sim.run())
        await fake.next_session()
        await sim.wait_first_audio()
        await flood(sim, per_second=2000, seconds=1.5)
        await sim.hang_up()
        result = await task
    assert result.ended_by == "caller"
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    daphne_server.wait_log("message flood", timeout=1)


@pytest.mark.parametrize(
    ("inject", "log"),
    [
        ("not json at all", "not JSON"),
        ('{"no_type": true}', "without a type"),
        ('{"type":"totally.new.event","x":1}', None),
        ('{"type":"error","error":{"type":"invalid_request_error","code":"x","message":"odd"}}', "openai error"),
        (
            '{"type":"error","error":{"message":"Cancellation failed: no active response found"}}',
            None,
        ),
    ],
    ids=["invalid-json", "no-type", "unknown-event", "error-event", "benign-error"],
)
async def test_bad_openai_events_are_tolerated(daphne_server, assistants, inject, log):
    async with fake_openai(daphne_server, answer_ms=1000) as fake:
        async with HealthyCall(daphne_server, fake):
            sim = simulator(daphne_server, to=NUMBER_A)
            task = asyncio.ensure_future(sim.run())
            session = await fake.next_session()
            await session.wait_for("session.updated")
            await session.send_raw(inject)
            await sim.wait_played_ms(1000)
            await sim.hang_up()
            result = await task
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    if log:
        daphne_server.wait_log(log, timeout=1)


async def test_openai_session_expiry_ends_the_call_with_the_reason(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=800) as fake:
        async with HealthyCall(daphne_server, fake):
            sim = simulator(daphne_server, to=NUMBER_A)
            task = asyncio.ensure_future(sim.run())
            session = await fake.next_session()
            await session.wait_for("response.done")
            await session.expire()
            result = await task
    assert result.ended_by == "server" and result.cut_ms_at_bye == 0
    call = await wait_call_ended(daphne_server, result.callid)
    assert call.status == "failed" and "60-minute" in call.end_detail


async def test_openai_dropping_tcp_ends_the_call_politely(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=800) as fake:
        async with HealthyCall(daphne_server, fake):
            sim = simulator(daphne_server, to=NUMBER_A)
            task = asyncio.ensure_future(sim.run())
            session = await fake.next_session()
            await session.wait_for("response.done")
            session.drop()
            result = await task
    assert result.ended_by == "server"
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("failed", "openai_error")


async def test_openai_refusing_a_new_call_spares_the_running_one(daphne_server, assistants):
    async with fake_openai(daphne_server) as fake:
        async with HealthyCall(daphne_server, fake):
            fake.handshake_status = 403
            result = await simulator(daphne_server, to=NUMBER_A).run()
            fake.handshake_status = None
    call = await wait_call_ended(daphne_server, result.callid)
    assert call.status == "failed" and "HTTP 403" in call.end_detail


async def test_openai_unreachable_fails_fast_with_a_reason(daphne_server, assistants):
    # Nothing listens on the OpenAI port in this test.
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await simulator(daphne_server, to=NUMBER_A).run()
    assert result.ended_by == "server" and loop.time() - started < 3
    call = await wait_call_ended(daphne_server, result.callid)
    assert call.status == "failed" and "Could not connect to OpenAI" in call.end_detail


async def test_failed_response_does_not_end_the_call(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=600) as fake:
        sim = simulator(daphne_server, to=NUMBER_A, caller_audio=[("silence", 1000), ("speech", 600)])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await session.wait_for("response.done")
        session.error_on_response = {"type": "server_error", "message": "boom"}
        await session.wait_for(
            "response.done",
            after=len(session.sent) - 1,
            timeout=8,
            predicate=lambda e: e["response"]["status"] == "failed",
        )
        await sim.hang_up()
        result = await task
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")


async def test_redis_down_does_not_affect_calls(django_db_setup, assistants):
    from django.db import connection

    server = start_daphne(
        connection.settings_dict["NAME"], extra_env={**FAST_TIMEOUTS, "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    try:
        async with fake_openai(server, answer_ms=600) as fake:
            sim = simulator(server, to=NUMBER_A)
            task = asyncio.ensure_future(sim.run())
            await fake.next_session()
            await sim.wait_played_ms(600)
            await sim.hang_up()
            result = await task
        assert result.violations == [] and result.played_ms >= 600
        call = await wait_call_ended(server, result.callid)
        assert call.status == "completed"
    finally:
        stop_daphne(server)


async def test_sigterm_finalises_live_calls_with_a_goodbye(django_db_setup, assistants):
    from django.db import connection

    server = start_daphne(connection.settings_dict["NAME"], extra_env={**FAST_TIMEOUTS, "SHUTDOWN_GRACE_SECONDS": "8"})
    try:
        async with fake_openai(server, answer_ms=400):
            sims = [simulator(server, to=NUMBER_A), simulator(server, to=NUMBER_B)]
            tasks = [asyncio.ensure_future(s.run()) for s in sims]
            for s in sims:
                await s.wait_played_ms(400)
            server.process.send_signal(signal.SIGTERM)
            results = await asyncio.wait_for(asyncio.gather(*tasks), 15)
        assert await asyncio.to_thread(server.process.wait, 15) == 0
    finally:
        stop_daphne(server)
    for result in results:
        assert result.ended_by == "server" and result.cut_ms_at_bye == 0
        assert result.played_ms >= 800  # greeting and goodbye, both heard to the end
        call = await get_call(result.callid)
        assert (call.status, call.end_reason) == ("failed", "server_shutdown")
        assert call.ended_at is not None
        # The fake says what it was asked to say: here, the shutdown goodbye.
        assert "call back" in (await transcript(result.callid))[-1][1]


@pytest.mark.django_db(transaction=True)
def test_calls_left_active_by_a_dead_process_are_closed_at_release(assistants):
    from django.core.management import call_command

    old = timezone.now() - timezone.timedelta(minutes=10)
    Call.objects.create(call_id="dead", started_at=old, last_seen_at=old, status=CallStatus.ACTIVE)
    Call.objects.create(call_id="alive", started_at=old, last_seen_at=timezone.now(), status=CallStatus.ACTIVE)
    call_command("close_orphan_calls")
    dead = Call.objects.get(call_id="dead")
    assert (dead.status, dead.end_reason) == ("failed", "server_shutdown") and dead.duration is not None
    assert Call.objects.get(call_id="alive").status == "active"


async def test_limits_refuse_politely_and_record_why(django_db_setup, assistants):
    from django.db import connection

    env = {**FAST_TIMEOUTS, "MAX_CALLS_PER_NUMBER": "1", "MAX_CALLS_PER_PROCESS": "2"}
    server = start_daphne(connection.settings_dict["NAME"], extra_env=env)
    try:
        async with fake_openai(server, answer_ms=3000) as fake:
            first = simulator(server, to=NUMBER_A)
            first_task = asyncio.ensure_future(first.run())
            await fake.next_session()
            same_number = await simulator(server, to=NUMBER_A).run()
            second = simulator(server, to=NUMBER_B)
            second_task = asyncio.ensure_future(second.run())
            await fake.next_session()
            over_process = await simulator(server, to=NUMBER_B).run()
            for sim in (first, second):
                await sim.hang_up()
            await asyncio.gather(first_task, second_task)
        for result, text in ((same_number, "MAX_CALLS_PER_NUMBER"), (over_process, "MAX_CALLS_PER_PROCESS")):
            assert result.ended_by == "server" and result.listening_format is None
            call = await wait_call_ended(server, result.callid)
            assert (call.status, call.end_reason) == ("rejected", "limit") and text in call.end_detail
    finally:
        stop_daphne(server)


async def test_silence_reprompts_then_says_goodbye_and_hangs_up(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Patient", NUMBER_A, silence_timeout_seconds=1)
    async with fake_openai(daphne_server, answer_ms=300) as fake:
        fake.reply_texts[:] = ["Hello.", "Are you still there?", "Goodbye then!"]
        result = await simulator(daphne_server, to=NUMBER_A).run()
    assert result.ended_by == "server" and result.cut_ms_at_bye == 0 and result.played_ms >= 900
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "silence")
    assert [line[1] for line in await transcript(result.callid)] == ["Hello.", "Are you still there?", "Goodbye then!"]


async def test_max_duration_says_goodbye_then_hangs_up(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Brief", NUMBER_A, max_call_minutes=0, welcome_message="")
    async with fake_openai(daphne_server, answer_ms=500) as fake:
        fake.reply_texts[:] = ["I have to end the call now, goodbye!"]
        result = await simulator(daphne_server, to=NUMBER_A).run()
    assert result.ended_by == "server" and result.cut_ms_at_bye == 0 and result.played_ms >= 500
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "max_duration")


# ---------------------------------------------------------------- the database, in-process


@pytest.fixture
async def inprocess(settings, assistants):
    """The real consumer served from this process (so its database can fail), a fake OpenAI beside it."""
    from calls import consumers
    from tests.conftest import TEST_API_KEY, free_port
    from tests.inprocess import serve_app
    from voiceagent.routing import websocket_application

    port = free_port()
    settings.OPENAI_REALTIME_URL = f"ws://127.0.0.1:{port}/v1/realtime"
    settings.OPENAI_API_KEY = TEST_API_KEY
    consumers._store = None
    async with serve_app(websocket_application) as base:
        server = type("InProcess", (), {})()
        server.elks_url = f"{base}/ws/elks/{settings.ELKS_WS_SECRET}/"
        server.openai_port = port
        yield server
    consumers._store = None


async def test_database_down_mid_call_keeps_the_call_and_writes_the_transcript_later(inprocess, monkeypatch):
    from calls import services

    real_write = services.transcript_write
    outage = {"on": False, "failures": 0}

    def flaky_write(**kwargs):
        if outage["on"]:
            outage["failures"] += 1
            raise OperationalError("connection refused (injected)")
        return real_write(**kwargs)

    monkeypatch.setattr(services, "transcript_write", flaky_write)
    async with fake_openai(inprocess, answer_ms=500) as fake:
        fake.reply_texts[:] = ["Hello faulty.", "Still here."]
        fake.caller_transcripts[:] = ["Are you there?"]
        sim = simulator(inprocess, to=NUMBER_A, caller_audio=[("silence", 900), ("speech", 600)])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        live = _live_session(sim.result.callid)
        outage["on"] = True
        await session.wait_for("response.done", predicate=lambda e: len(session.responses) >= 2, timeout=8)
        await sim.wait_played_ms(1000)
        assert outage["failures"] > 0
        outage["on"] = False  # the database is back before the call ends
        await sim.hang_up()
        result = await task
    assert result.violations == [] and result.played_ms >= 1000
    await asyncio.wait_for(live.finished.wait(), 15)
    call = await get_call(result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    assert [line[1] for line in await transcript(result.callid)] == ["Hello faulty.", "Are you there?", "Still here."]


def _live_session(callid: str):
    from calls.live.registry import PROCESS_CALLS as registry

    return next(s for s in registry.live if s.hello and s.hello.callid == callid)


async def test_slow_database_delays_no_audio(inprocess, monkeypatch):
    import time

    from calls import services

    for name in ("transcript_write", "call_start", "call_finish"):
        real = getattr(services, name)

        def slow(*args, _real=real, **kwargs):
            time.sleep(0.2)
            return _real(*args, **kwargs)

        monkeypatch.setattr(services, name, slow)
    async with fake_openai(inprocess, answer_ms=1500):
        sims = [simulator(inprocess, to=n) for n in (NUMBER_A, NUMBER_B)]
        tasks = [asyncio.ensure_future(s.run()) for s in sims]
        for sim in sims:
            await sim.wait_played_ms(1500)
            await sim.hang_up()
        results = await asyncio.gather(*tasks)
    for result in results:
        assert result.violations == [] and result.played_ms >= 1500
        # Audio went out as fast as OpenAI produced it: at 5x real time, 1.5 s in about 0.3 s.
        chunks = result.audio_chunks
        assert chunks[-1][0] - chunks[0][0] < 0.6, "audio was held up"


def test_fault_table_is_documented():
    """docs/security.md lists the faults this file injects."""
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "security.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for fault in ("invalid JSON", "binary", "flood", "SIGTERM", "database", "Redis"):
        assert fault in text
