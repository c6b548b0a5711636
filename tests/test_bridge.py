"""Whole calls through real daphne: the 46elks simulator on one side, the fake OpenAI on the other."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from assistants.audio_formats import FORMATS
from tests.bridge_helpers import (
    CALLER,
    NUMBER_A,
    NUMBER_B,
    fake_openai,
    get_call,
    make_assistant,
    simulator,
    transcript,
    wait_call_ended,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def assistants(transactional_db):
    a = make_assistant("Anna", NUMBER_A, audio_format="pcm_24000", voice="marin")
    b = make_assistant("Bertil", NUMBER_B, audio_format="ulaw", voice="cedar", turn_detection="semantic_vad")
    return a, b


async def test_happy_path_greeting_reply_transcript(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=600) as fake:
        fake.reply_texts[:] = ["Hello, this is Anna.", "Sure, one margherita."]
        fake.caller_transcripts[:] = ["I would like a pizza."]
        sim = simulator(daphne_server, caller_audio=[("silence", 1200), ("speech", 700), ("silence", 900)])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_played_ms(600)  # the greeting
        await session.wait_for("input_audio_buffer.append")
        await sim.wait_speech_started()
        await session.wait_for("response.done", predicate=lambda e: len(session.responses) >= 2, timeout=8)
        await sim.wait_played_ms(1200)  # the reply, heard to the end
        await sim.hang_up()
        result = await task

    assert result.listening_format == "pcm_24000" and result.sending_formats == ["pcm_24000"]
    assert result.violations == []
    # Byte-exact both ways: every delta reached the caller in order, every caller byte reached OpenAI.
    assert bytes(result.played_audio) == b"".join(bytes(a) for a in session.sent_audio.values())
    assert bytes(session.input_audio) == bytes(result.sent_audio)
    headers = {k.lower(): v for k, v in session.request_headers.items()}
    assert headers["authorization"].startswith("Bearer ") and "openai-beta" not in headers
    assert "model=gpt-realtime-2.1" in session.request_path
    assert session.errors == []

    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason, call.assistant.name) == ("completed", "caller_hangup", "Anna")
    assert call.from_number == CALLER and call.to_number == NUMBER_A and call.duration.total_seconds() > 2
    assert await transcript(result.callid) == [
        ("assistant", "Hello, this is Anna.", False),
        ("caller", "I would like a pizza.", False),
        ("assistant", "Sure, one margherita.", False),
    ]


async def test_two_numbers_reach_two_assistants_at_once(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=300) as fake:
        sims = [simulator(daphne_server, to=NUMBER_A), simulator(daphne_server, to="0046 700 000 002")]
        tasks = [asyncio.ensure_future(s.run()) for s in sims]
        for s in sims:
            await s.wait_played_ms(300)
            await s.hang_up()
        results = await asyncio.gather(*tasks)
        sessions = list(fake.sessions)

    by_voice = {}
    for session in sessions:
        update = (await session.wait_for("session.update"))["session"]
        by_voice[update["audio"]["output"]["voice"]] = update
    assert by_voice["marin"]["instructions"] == "You are Anna."
    assert by_voice["marin"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert by_voice["cedar"]["instructions"] == "You are Bertil."
    assert by_voice["cedar"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert by_voice["cedar"]["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert results[0].sending_formats == ["pcm_24000"] and results[1].sending_formats == ["ulaw"]
    assert all(r.violations == [] for r in results)
    for result, name in zip(results, ("Anna", "Bertil"), strict=True):
        call = await wait_call_ended(daphne_server, result.callid)
        assert call.assistant.name == name and call.status == "completed"


async def test_barge_in_interrupts_truncates_and_resends_sending(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=4000) as fake:
        fake.reply_texts[:] = ["One two three four five six seven eight nine ten.", "Yes?"]
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_played_ms(1500)
        sim.speak(600)
        interrupt = await sim.wait_for("interrupt", timeout=5)
        truncate = await session.wait_for("conversation.item.truncate", timeout=5)
        await sim.wait_for("sending", count=2, timeout=8)
        await sim.wait_played_ms(sim.played_ms() + 200)  # the answer after the interruption is heard
        await sim.hang_up()
        result = await task

    speech_at = result.speech_started_at[0]
    cut = result.interrupts[0]
    print(
        f"barge-in: interrupt {1000 * (cut.at - speech_at):.0f} ms after speech start; truncate at "
        f"{truncate['audio_end_ms']} ms, caller heard {cut.segment_played_ms:.0f} ms "
        f"(off by {truncate['audio_end_ms'] - cut.segment_played_ms:+.0f} ms)"
    )
    assert interrupt is not None
    assert 0 <= cut.at - speech_at < 0.150, f"interrupt {1000 * (cut.at - speech_at):.0f} ms after speech start"
    assert abs(truncate["audio_end_ms"] - cut.segment_played_ms) <= 150, (truncate, cut)
    assert truncate["audio_end_ms"] <= session.truncations[0][2] + 1
    assert result.sending_formats == ["pcm_24000", "pcm_24000"]
    assert result.violations == [] and result.ignored_audio_bytes == 0
    lines = await transcript(result.callid)
    assert lines[0][0] == "assistant" and lines[0][2] is True
    assert lines[0][1].startswith("One two") and "ten" not in lines[0][1]


async def test_no_interruptions_when_the_assistant_disallows_them(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Strict", NUMBER_A, allow_interruptions=False)
    async with fake_openai(daphne_server, answer_ms=2000) as fake:
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        update = await session.wait_for("session.update")
        assert update["session"]["audio"]["input"]["turn_detection"]["interrupt_response"] is False
        await sim.wait_played_ms(500)
        sim.speak(500)
        await session.wait_for("input_audio_buffer.speech_started")
        await sim.wait_played_ms(2000)
        await sim.hang_up()
        result = await task
    assert result.interrupts == [] and result.played_ms >= 2000
    assert "conversation.item.truncate" not in session.received_types()


async def test_unknown_number_is_recorded_as_rejected_and_contacts_nobody(daphne_server, assistants):
    async with fake_openai(daphne_server) as fake:
        sim = simulator(daphne_server, to="+46766861234")
        result = await sim.run()
        assert fake.sessions == [] and fake.handshakes == []
    assert result.ended_by == "server" and result.bye_received == {"t": "bye"}
    assert result.listening_format is None
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason, call.to_number) == ("rejected", "unknown_number", "+46766861234")
    assert "+46766861234" in call.end_detail


async def test_inactive_assistant_refuses_its_numbers(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Off", NUMBER_A, is_active=False)
    async with fake_openai(daphne_server) as fake:
        result = await simulator(daphne_server).run()
        assert fake.handshakes == []
    assert (await get_call(result.callid)).status == "rejected"


async def test_bad_secret_is_refused_before_accept(daphne_server, assistants):
    async with fake_openai(daphne_server) as fake:
        url = daphne_server.elks_url.replace(daphne_server.secret, "wrong-secret")
        with pytest.raises(InvalidStatus) as exc:
            async with connect(url):
                pass
        assert exc.value.response.status_code == 403
        assert fake.handshakes == []


async def test_no_hello_closes_the_socket(daphne_server, assistants):
    async with connect(daphne_server.elks_url) as ws:
        await asyncio.wait_for(ws.wait_closed(), 5)


async def test_caller_hangup_closes_openai(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=5000) as fake:
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_first_audio()
        await sim.hang_up()
        result = await task
        await session.wait_closed()
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")


@pytest.mark.parametrize(
    ("knob", "expect"),
    [
        ({"handshake_status": 401}, "refused the API key"),
        ({"handshake_status": 429}, "rate limit"),
        ({"reject_session_update": True}, "rejected the session settings"),
        ({"never_answer_session_update": True}, "did not confirm the session settings"),
    ],
)
async def test_openai_failure_at_start_ends_the_call_politely(daphne_server, assistants, knob, expect):
    async with fake_openai(daphne_server, **knob):
        result = await simulator(daphne_server).run()
    assert result.ended_by == "server" and result.violations == []
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("failed", "openai_error")
    assert expect in call.end_detail


async def test_openai_closing_mid_call_lets_queued_audio_finish_then_byes(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=1500) as fake:
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await session.wait_for("response.done")
        await session.close(1011, "internal error")
        result = await task
    assert result.ended_by == "server" and result.cut_ms_at_bye == 0
    assert result.played_ms == pytest.approx(1500, abs=30)
    assert [s.answered_at is not None for s in result.syncs][-1]
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("failed", "openai_error")
    assert "1011" in call.end_detail


async def test_elks_socket_dropping_without_bye_is_recorded(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=3000) as fake:
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_first_audio()
        sim._ws.transport.abort()
        await task
        await session.wait_closed()
    call = await wait_call_ended(daphne_server, sim.result.callid)
    assert (call.status, call.end_reason) == ("failed", "connection_lost")


async def test_ulaw_audio_passes_byte_exact(daphne_server, assistants):
    async with fake_openai(daphne_server, answer_ms=500) as fake:
        sim = simulator(daphne_server, to=NUMBER_B, frame_ms=[20, 7, 33])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_played_ms(500)
        await sim.hang_up()
        result = await task
    assert session.input_format is FORMATS["ulaw"]
    assert bytes(result.played_audio) == b"".join(bytes(a) for a in session.sent_audio.values())
    assert bytes(session.input_audio) == bytes(result.sent_audio)


async def test_call_setup_adds_little_to_the_first_greeting_audio(daphne_server, assistants):
    """hello → OpenAI connect → session.update → greeting request → first delta → caller, step by step."""
    async with fake_openai(daphne_server, answer_ms=300, chunk_interval_ms=0) as fake:
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_first_audio()
        await sim.hang_up()
        result = await task
    received = {e["type"]: t for t, e in reversed(session.received)}
    sent = {e["type"]: t for t, e in reversed(session.sent)}
    steps = {
        "hello → OpenAI socket open": session.connected_at - result.hello_sent_at,
        "socket open → session.update": received["session.update"] - session.connected_at,
        "session.updated → greeting response.create": received["response.create"] - sent["session.updated"],
        "first delta → caller": result.first_audio_at - sent["response.output_audio.delta"],
    }
    print("call setup: " + "; ".join(f"{k} {1000 * v:.1f} ms" for k, v in steps.items()))
    assert steps["session.updated → greeting response.create"] < 0.05
    assert steps["first delta → caller"] < 0.05
