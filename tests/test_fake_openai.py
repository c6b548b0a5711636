"""Tests of the fake OpenAI Realtime GA server, driven by a bare `websockets` client.

No Django: the fake must be usable from any test, and these tests are its contract with them (and
with the benchmark, which serves it on lean connections under its load knobs).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import copy
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from assistants.audio_formats import PCM_24000, ULAW, AudioFormat
from calls.live.audio import encode, silence
from calls.testing.fake_openai import (
    BETA_ERROR,
    CLIENT_EVENT_TYPES,
    SERVER_EVENT_TYPES,
    ClientEventError,
    FakeRealtimeServer,
    add_arguments,
    server_from_options,
    tone,
    validate_client_event,
    validate_server_event,
)

KEY = "sk-test"
AUTH = {"Authorization": f"Bearer {KEY}"}

# Reference §3a and §3b, verbatim apart from the elided instructions.
SAMPLE_PCM = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "model": "gpt-realtime-2.1",
        "output_modalities": ["audio"],
        "instructions": "Du är en svensk telefonassistent för ... Svara kort.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "noise_reduction": {"type": "near_field"},
                "transcription": {"model": "gpt-4o-mini-transcribe", "language": "sv"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.6,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": 8000,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
        },
        "tools": [
            {
                "type": "function",
                "name": "end_call",
                "description": "Hang up when the caller says goodbye.",
                "parameters": {
                    "type": "object",
                    "properties": {"reason": {"type": "string"}},
                    "required": [],
                },
            }
        ],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "truncation": {"type": "retention_ratio", "retention_ratio": 0.8},
        "tracing": None,
    },
}
SAMPLE_PCMU = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "model": "gpt-realtime-2.1-mini",
        "output_modalities": ["audio"],
        "instructions": "…",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "noise_reduction": None,
                "transcription": {"model": "gpt-transcribe", "language": "sv"},
                "turn_detection": {
                    "type": "semantic_vad",
                    "eagerness": "auto",
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "cedar"},
        },
        "tools": [],
        "tool_choice": "auto",
    },
}
BETA_FLAT = {
    "type": "session.update",
    "session": {"modalities": ["audio", "text"], "voice": "alloy", "input_audio_format": "g711_ulaw"},
}


def _session(**fields: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": {"type": "realtime", **fields}}


class Client:
    """A bare GA client: reads every server event in order and checks it against the SDK's GA union."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def append(self, audio: bytes) -> None:
        await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()})

    async def next(self, type_: str | None = None, within: float = 3) -> dict[str, Any]:
        """The next event (of `type_`, skipping others, which stay recorded in self.events)."""
        async with asyncio.timeout(within):
            while True:
                event = json.loads(await self.ws.recv())
                validate_server_event(event)
                self.events.append(event)
                if type_ is None or event["type"] == type_:
                    return event

    async def until(self, type_: str, within: float = 3) -> list[dict[str, Any]]:
        """All events up to and including the next `type_`."""
        start = len(self.events)
        await self.next(type_, within)
        return self.events[start:]


@pytest.fixture(params=[False, True], ids=["websockets", "lean"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeRealtimeServer]:
    """Every contract test runs on both kinds of connection: the lean one must speak the same protocol."""
    async with FakeRealtimeServer(api_key=KEY, lean=request.param) as server:
        yield server


@contextlib.asynccontextmanager
async def client(
    fake: FakeRealtimeServer, model: str = "gpt-realtime-2.1", headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    async with connect(fake.url_for(model), additional_headers=headers or AUTH, open_timeout=2) as ws:
        c = Client(ws)
        created = await c.next()
        assert created["type"] == "session.created"
        yield c


def loud(fmt: AudioFormat, ms: float) -> bytes:
    """Caller speech for the fake's energy VAD."""
    return tone(fmt, ms, freq=300, amplitude=9000)


# ---------------------------------------------------------------------------------------------------
# Handshake
# ---------------------------------------------------------------------------------------------------


async def test_handshake_ok_sends_ga_session_created(fake: FakeRealtimeServer) -> None:
    async with client(fake) as c:
        created = c.events[0]
        assert created["event_id"].startswith("event_")
        session = created["session"]
        assert session["type"] == "realtime"
        assert session["model"] == "gpt-realtime-2.1"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert session["audio"]["output"]["voice"] == "alloy"
        assert session["instructions"] == ""
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        s = await fake.next_session(1)
        assert s is fake.sessions[0] and s.model == "gpt-realtime-2.1"
        assert s.sent_types() == ["session.created"]
    assert fake.handshakes[-1].status == 101
    assert fake.url.startswith("ws://127.0.0.1:") and fake.url.endswith("/v1/realtime")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer sk-wrong"}, {"X-Nothing": "1"}])
async def test_bad_or_missing_key_is_401(fake: FakeRealtimeServer, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(fake.url_for(), additional_headers=headers):
            pass
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body)["error"]["code"] == "invalid_api_key"
    assert fake.sessions == []


async def test_any_key_when_api_key_is_none() -> None:
    async with FakeRealtimeServer(api_key=None) as fake:
        async with client(fake, headers={"Authorization": "Bearer whatever"}):
            pass


@pytest.mark.parametrize("status", [403, 429, 500])
async def test_handshake_status_knob(fake: FakeRealtimeServer, status: int) -> None:
    fake.handshake_status = status
    with pytest.raises(InvalidStatus) as info:
        async with connect(fake.url_for(), additional_headers=AUTH):
            pass
    assert info.value.response.status_code == status
    assert "error" in json.loads(info.value.response.body)


async def test_beta_header_is_refused_with_4000(fake: FakeRealtimeServer) -> None:
    headers = {**AUTH, "OpenAI-Beta": "realtime=v1"}
    async with connect(fake.url_for(), additional_headers=headers) as ws:
        event = json.loads(await ws.recv())
        assert event["type"] == "error"
        assert event["error"] == BETA_ERROR
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
    assert info.value.rcvd.code == 4000
    assert info.value.rcvd.reason == "invalid_request_error.beta_api_shape_disabled"


async def test_unknown_model_is_refused(fake: FakeRealtimeServer) -> None:
    async with connect(fake.url_for("gpt-4o-realtime-preview"), additional_headers=AUTH) as ws:
        event = json.loads(await ws.recv())
        assert event["error"]["code"] == "model_not_found"
        with pytest.raises(ConnectionClosed):
            await ws.recv()


async def test_hang_on_connect_never_completes_the_handshake(fake: FakeRealtimeServer) -> None:
    fake.hang_on_connect = True
    with pytest.raises(TimeoutError):
        async with connect(fake.url_for(), additional_headers=AUTH, open_timeout=0.2):
            pass
    # stop() (fixture teardown) must still return promptly


# ---------------------------------------------------------------------------------------------------
# session.update validation and state
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sample", "fmt"), [(SAMPLE_PCM, PCM_24000), (SAMPLE_PCMU, ULAW)])
async def test_ga_session_update_is_echoed(fake: FakeRealtimeServer, sample: dict, fmt: AudioFormat) -> None:
    async with client(fake, sample["session"]["model"]) as c:
        await c.send(sample)
        updated = (await c.next("session.updated"))["session"]
        assert updated["audio"]["input"]["format"] == fmt.openai
        assert updated["audio"]["output"]["format"] == fmt.openai
        assert updated["audio"]["output"]["voice"] == sample["session"]["audio"]["output"]["voice"]
        assert updated["instructions"] == sample["session"]["instructions"]
        assert updated["tools"] == sample["session"]["tools"]
        # Only fields present change.
        await c.send(_session(instructions="Ny instruktion"))
        again = (await c.next("session.updated"))["session"]
        assert again["instructions"] == "Ny instruktion"
        assert again["audio"] == updated["audio"]
        session = fake.sessions[0]
        assert session.errors == []
        assert session.output_format is fmt


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        (BETA_FLAT, "missing_required_parameter", "session.type"),
        (_session(voice="alloy", input_audio_format="g711_ulaw"), "unknown_parameter", "session.voice"),
        (_session(temperature=0.8), "unknown_parameter", "session.temperature"),
        (
            _session(audio={"output": {"format": {"type": "audio/pcm"}}}),
            "missing_required_parameter",
            "session.audio.output.format.rate",
        ),
        (_session(audio={"input": {"format": "g711_ulaw"}}), "invalid_value", "session.audio.input.format"),
    ],
)
async def test_invalid_session_update_is_rejected_and_changes_nothing(
    fake: FakeRealtimeServer, event: dict, code: str, param: str
) -> None:
    async with client(fake) as c:
        session = fake.sessions[0]
        before = copy.deepcopy(session.state)
        await c.send({**event, "event_id": "evt_client_1"})
        error = (await c.next("error"))["error"]
        assert error["type"] == "invalid_request_error"
        assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_client_1")
        assert session.errors == [error]
        assert session.state == before
        # The session carries on, like the real one.
        await c.send(_session(instructions="ok"))
        assert (await c.next())["type"] == "session.updated"
    assert not any(e["type"] == "session.updated" for e in c.events[:-1])


def test_validate_client_event_directly() -> None:
    assert type(validate_client_event(json.dumps(SAMPLE_PCM))).__name__ == "SessionUpdateEvent"
    assert type(validate_client_event(json.dumps(SAMPLE_PCMU).encode())).__name__ == "SessionUpdateEvent"
    bad = {
        '{"type":"response.audio.delta"}': ("invalid_value", "type"),
        '{"type":"response.create","response":{"modalities":["audio"]}}': (
            "unknown_parameter",
            "response.modalities",
        ),
        '{"type":"conversation.item.truncate","item_id":"x","content_index":0}': (
            "missing_required_parameter",
            "audio_end_ms",
        ),
        '{"type":"input_audio_buffer.append","audio":"AAAA","x":1}': ("unknown_parameter", "x"),
        "not json": ("invalid_json", None),
    }
    for raw, (code, param) in bad.items():
        with pytest.raises(ClientEventError) as info:
            validate_client_event(raw)
        assert (info.value.code, info.value.param) == (code, param), raw


async def test_session_update_knobs(fake: FakeRealtimeServer) -> None:
    async with client(fake) as c:
        session = fake.sessions[0]
        session.reject_session_update = True
        await c.send(SAMPLE_PCM)
        assert (await c.next())["error"]["code"] == "invalid_value"
        session.reject_session_update = None
        fake.never_answer_session_update = True
        await c.send(SAMPLE_PCM)
        await c.send({"type": "input_audio_buffer.clear"})
        assert (await c.next())["type"] == "input_audio_buffer.cleared"  # no session.updated came first
        assert session.state["audio"]["output"]["voice"] == "alloy"
        received = await session.wait_for("session.update", predicate=lambda e: "event_id" not in e)
        assert received["session"]["type"] == "realtime"


# ---------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------


async def test_response_streams_faster_than_real_time_and_is_recorded(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 1000
    async with client(fake) as c:
        t0 = time.monotonic()
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        elapsed = time.monotonic() - t0
        types = [e["type"] for e in events]
        assert types[:5] == [
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
        ]
        assert types[-6:] == [
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
        assert len(deltas) == 10
        assert 0.15 < elapsed < 0.6  # 1000 ms of audio in ~180 ms: 5x real time
        item_id = deltas[0]["item_id"]
        audio = b"".join(base64.b64decode(d["delta"]) for d in deltas)
        session = fake.sessions[0]
        assert audio == bytes(session.sent_audio[item_id]) == tone(PCM_24000, 1000)
        assert len(audio) == 48 * 1000
        transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
        assert transcript == "How can I help you today?"
        done = events[-1]["response"]
        assert done["status"] == "completed"
        assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": transcript}
        usage = done["usage"]
        assert usage["output_token_details"]["audio_tokens"] == 20  # 1000 ms / 50
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert "cached_tokens_details" in usage["input_token_details"]
        assert session.responses[-1]["id"] == done["id"]


async def test_pcmu_reply_and_instruction_echo(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 300
    fake.chunk_interval_ms = 0
    async with client(fake) as c:
        await c.send(SAMPLE_PCMU)
        await c.next("session.updated")
        greeting = "Greet the caller by saying exactly the following:\nHej, välkommen!"
        await c.send({"type": "response.create", "response": {"instructions": greeting}})
        events = await c.until("response.done")
        audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
        assert audio == tone(ULAW, 300) and len(audio) == 8 * 300
        done = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
        assert done["transcript"] == "Hej, välkommen!"


async def test_second_response_create_while_active_is_rejected(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 1000
    fake.reply_texts = ["First reply."]
    async with client(fake) as c:
        await c.send({"type": "response.create"})
        created = await c.next("response.created")
        await c.send({"type": "response.create", "event_id": "evt_2"})
        error = (await c.next("error"))["error"]
        assert error["code"] == "conversation_already_has_active_response"
        assert error["message"].startswith(
            f"Conversation already has an active response in progress: {created['response']['id']}"
        )
        assert error["event_id"] == "evt_2"
        done = await c.next("response.done")
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "First reply."


async def test_response_cancel_without_active_response_is_benign(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 200
    async with client(fake) as c:
        await c.send({"type": "response.cancel"})
        error = (await c.next("error"))["error"]
        assert error["code"] == "response_cancel_not_active"
        assert error["message"] == "Cancellation failed: no active response found"
        await c.send({"type": "response.create"})
        assert (await c.next("response.done"))["response"]["status"] == "completed"


async def test_error_on_response_fails_the_response(fake: FakeRealtimeServer) -> None:
    fake.error_on_response = {"code": "rate_limit_exceeded", "message": "slow down"}
    async with client(fake) as c:
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        response = events[-1]["response"]
        assert response["status"] == "failed"
        assert response["status_details"]["error"]["code"] == "rate_limit_exceeded"
        assert not any(e["type"] == "response.output_audio.delta" for e in events)


async def test_function_call_response_then_output_and_reply(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 200
    fake.reply_tool_calls = [{"name": "end_call", "arguments": {"reason": "bye"}}]
    async with client(fake) as c:
        await c.send(SAMPLE_PCM)
        await c.next("session.updated")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        types = [e["type"] for e in events]
        assert "response.output_audio.delta" not in types
        added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
        assert added["type"] == "function_call" and added["name"] == "end_call"
        args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert json.loads(args_done["arguments"]) == {"reason": "bye"}
        assert args_done["call_id"] == added["call_id"] and args_done["name"] == "end_call"
        arg_deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
        assert arg_deltas == args_done["arguments"]
        assert types.index("response.output_item.done") < types.index("response.done")
        output = events[-1]["response"]["output"][0]
        assert output["type"] == "function_call" and output["status"] == "completed"

        result = {"type": "function_call_output", "call_id": added["call_id"], "output": '{"ok": true}'}
        await c.send({"type": "conversation.item.create", "item": result})
        item = (await c.next("conversation.item.added"))["item"]
        assert item["type"] == "function_call_output"
        await c.next("conversation.item.done")
        assert fake.sessions[0].function_outputs[0]["call_id"] == added["call_id"]
        await c.send({"type": "response.create"})
        final = await c.next("response.done")
        assert final["response"]["output"][0]["type"] == "message"


# ---------------------------------------------------------------------------------------------------
# Voice activity, barge-in, truncation
# ---------------------------------------------------------------------------------------------------


async def test_speech_cancels_response_then_turn_completes(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 3000  # 600 ms of streaming
    fake.caller_transcripts = ["Jag vill boka en tid."]
    async with client(fake) as c:
        await c.send(SAMPLE_PCM)
        await c.next("session.updated")
        session = fake.sessions[0]
        await c.send({"type": "response.create"})
        await c.next("response.output_audio.delta")

        await c.append(silence(PCM_24000, 200))
        await c.append(loud(PCM_24000, 100))
        started = await c.next("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 200
        done = await c.next("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert done["response"]["output"][0]["status"] == "incomplete"
        deltas = [e for e in c.events if e["type"] == "response.output_audio.delta"]
        assert 0 < len(deltas) < 30

        session.answer_ms = 200
        start = len(c.events)
        await c.append(silence(PCM_24000, 600))
        stopped = await c.next("input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] == 800 and stopped["item_id"] == started["item_id"]
        await c.next("response.done")
        await c.next("conversation.item.input_audio_transcription.completed")
        types = [e["type"] for e in c.events[start:]]
        assert types[:4] == [
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        # The transcript arrives after the reply started, as with the real service.
        assert types.index("response.created") < types.index("conversation.item.input_audio_transcription.completed")
        completed = c.events[-1]
        assert completed["transcript"] == "Jag vill boka en tid."
        assert completed["usage"]["type"] == "duration"
        assert session.input_bytes == len(session.input_audio) == 48 * 900
        assert bytes(session.input_audio[: 48 * 200]) == silence(PCM_24000, 200)


async def test_no_vad_events_when_turn_detection_is_null(fake: FakeRealtimeServer) -> None:
    async with client(fake) as c:
        await c.send(_session(audio={"input": {"turn_detection": None}}))
        await c.next("session.updated")
        await c.append(loud(PCM_24000, 300))
        await c.append(silence(PCM_24000, 700))
        await c.send({"type": "input_audio_buffer.commit"})
        committed = await c.next()
        assert committed["type"] == "input_audio_buffer.committed"
        assert (await c.next())["type"] == "conversation.item.added"
        await c.send({"type": "input_audio_buffer.clear"})
        await c.next("input_audio_buffer.cleared")
        await c.send({"type": "input_audio_buffer.commit"})
        assert (await c.next("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
        assert not any(e["type"].startswith("input_audio_buffer.speech") for e in c.events)
        assert not any(e["type"] == "response.created" for e in c.events)


async def test_invalid_base64_audio_is_an_error(fake: FakeRealtimeServer) -> None:
    async with client(fake) as c:
        await c.send({"type": "input_audio_buffer.append", "audio": "not base64!!"})
        error = (await c.next("error"))["error"]
        assert (error["code"], error["param"]) == ("invalid_value", "audio")
        assert fake.sessions[0].input_bytes == 0


async def test_truncate(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 1000
    fake.chunk_interval_ms = 0
    fake.reply_texts = ["0123456789"]
    async with client(fake) as c:
        session = fake.sessions[0]
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        item_id = next(e for e in events if e["type"] == "response.output_item.added")["item"]["id"]

        truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
        await c.send({**truncate, "audio_end_ms": 400})
        truncated = await c.next()
        assert truncated == {**truncated, "type": "conversation.item.truncated", "audio_end_ms": 400}
        assert session.truncations[-1][1:] == (item_id, 400)
        assert session.items[item_id]["content"][0]["transcript"] == "0123"

        await c.send({**truncate, "audio_end_ms": 5000})
        error = (await c.next("error"))["error"]
        assert error["message"] == "Audio content of 400ms is already shorter than 5000ms"

        await c.send({**truncate, "item_id": "item_nope", "audio_end_ms": 0})
        assert (await c.next("error"))["error"]["code"] == "invalid_value"

        # Before the first audio frame, like a caller who barges in at once.
        session.first_delta_delay_ms = 5000
        await c.send({"type": "response.create"})
        added = await c.next("response.output_item.added")
        await c.send({**truncate, "item_id": added["item"]["id"], "audio_end_ms": 0})
        error = (await c.next("error"))["error"]
        assert error["message"] == "Only model output audio messages can be truncated"
        await c.send({"type": "response.cancel"})
        done = await c.next("response.done")
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        assert len(session.truncations) == 1


# ---------------------------------------------------------------------------------------------------
# Failure modes and helpers
# ---------------------------------------------------------------------------------------------------


async def test_session_expired(fake: FakeRealtimeServer) -> None:
    async with client(fake) as c:
        session = await fake.next_session()
        await session.expire()
        error = (await c.next("error"))["error"]
        assert error["code"] == "session_expired"
        assert error["message"] == "Your session hit the maximum duration of 60 minutes."
        with pytest.raises(ConnectionClosed):
            await c.next()
        assert c.ws.close_code == 1001
        assert await session.wait_closed() == 1001


async def test_close_after_ms_closes_with_1011(fake: FakeRealtimeServer) -> None:
    fake.close_after_ms = 50
    async with client(fake) as c:
        with pytest.raises(ConnectionClosedError):
            await c.next()
        assert c.ws.close_code == 1011


async def test_drop_connection_sends_no_close_frame(fake: FakeRealtimeServer) -> None:
    async with client(fake) as c:
        assert fake.drop_connection() == 1
        with pytest.raises(ConnectionClosedError) as info:
            await c.next()
        assert info.value.rcvd is None  # abnormal closure, 1006
        await fake.sessions[0].wait_closed()


async def test_send_raw_wait_for_and_concurrent_sessions(fake: FakeRealtimeServer) -> None:
    async with client(fake) as a, client(fake) as b:
        sa, sb = await fake.next_session(), await fake.next_session()
        assert [sa, sb] == fake.sessions
        await b.send(SAMPLE_PCMU)
        await b.next("session.updated")
        assert sa.output_format is PCM_24000 and sb.output_format is ULAW

        await sa.send_raw("this is not json")
        assert await a.ws.recv() == "this is not json"
        waiter = sa.wait_for("input_audio_buffer.clear", timeout=2)
        await a.send({"type": "input_audio_buffer.clear", "event_id": "evt_c"})
        assert (await waiter)["event_id"] == "evt_c"
        sent = await sa.wait_for("input_audio_buffer.cleared", timeout=2)
        assert sent["type"] == "input_audio_buffer.cleared"
        assert [t for t, _ in sa.received] == sorted(t for t, _ in sa.received)
        with pytest.raises(TimeoutError):
            await sb.wait_for("response.create", timeout=0.05)


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args(["--port", "0", "--reply-text", "a", "--reply-text", "b", "--api-key", "k"]))
    fake = server_from_options(options, log=print)
    assert (fake.port, fake.api_key, fake.reply_texts, fake.answer_ms) == (0, "k", ["a", "b"], 1500)
    assert server_from_options(vars(parser.parse_args([]))).api_key is None


def test_tone_is_deterministic_and_loud() -> None:
    samples = array.array("h")
    samples.frombytes(tone(PCM_24000, 100))
    assert len(samples) == 2400
    assert math.sqrt(sum(s * s for s in samples) / len(samples)) > 5000
    assert len(tone(ULAW, 100)) == 800
    assert tone(ULAW, 100) == tone(ULAW, 100) != encode(array.array("h", bytes(1600)), ULAW)


def test_management_command_parses_the_same_options() -> None:
    pytest.importorskip("django")
    from calls.management.commands.fake_openai import Command

    parser = Command().create_parser("manage.py", "fake_openai")
    options = vars(parser.parse_args(["--port", "9999", "--answer-ms", "0", "--chunk-interval-ms", "0"]))
    fake = server_from_options(options)
    assert (fake.port, fake.answer_ms, fake.chunk_interval_ms, fake.api_key) == (9999, 0, 0, None)


async def test_instant_and_text_only_answers(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 0
    async with client(fake) as c:
        await c.send({"type": "response.create"})
        events = await c.until("response.done", within=1)
        assert not any(e["type"] == "response.output_audio.delta" for e in events)
        assert events[-1]["response"]["status"] == "completed"
        await c.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        events = await c.until("response.done", within=1)
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert text == "How can I help you today?"
        assert events[-1]["response"]["output"][0]["content"][0] == {"type": "output_text", "text": text}


# ---------------------------------------------------------------------------------------------------
# Load knobs and hooks (what the benchmark uses)
# ---------------------------------------------------------------------------------------------------


def test_client_and_server_event_types_are_disjoint() -> None:
    """wait_for picks the log by the event's type, which only works because no type travels both ways."""
    assert "session.update" in CLIENT_EVENT_TYPES and "session.updated" in SERVER_EVENT_TYPES
    assert len(CLIENT_EVENT_TYPES) == 11 and not CLIENT_EVENT_TYPES & SERVER_EVENT_TYPES


def test_load_option_sets_every_load_knob() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    fake = server_from_options(vars(parser.parse_args(["--load"])))
    assert (fake.lean, fake.validate, fake.keep_audio, fake.record_stream_events) == (True, False, False, False)
    fake = server_from_options(vars(parser.parse_args(["--no-validate", "--lean"])))
    assert (fake.lean, fake.validate, fake.keep_audio, fake.record_stream_events) == (True, False, True, True)
    fake = server_from_options(vars(parser.parse_args([])))
    assert (fake.lean, fake.validate, fake.keep_audio, fake.record_stream_events) == (False, True, True, True)


async def test_under_load_knobs_turns_still_work_and_nothing_per_frame_is_kept() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    fake = server_from_options(vars(parser.parse_args(["--load", "--port", "0", "--api-key", KEY])))
    fake.answer_ms = 400
    async with fake, client(fake) as c:
        await c.send(_session(audio={"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}))
        await c.next("session.updated")
        session = fake.sessions[0]
        await c.append(loud(PCM_24000, 300))
        started = await c.next("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 0
        await c.append(silence(PCM_24000, 600))
        stopped = await c.next("input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] == 800
        events = await c.until("response.done")
        assert sum(e["type"] == "response.output_audio.delta" for e in events) == 4
        await c.next("conversation.item.input_audio_transcription.completed")
        # An unknown parameter passes without the schema check.
        await c.send({"type": "response.create", "temperature": 0.5})
        assert (await c.next("response.done"))["response"]["status"] == "completed"
        assert session.input_bytes == 48 * 900 and session.input_audio == bytearray()
        assert session.sent_audio == {} and session.errors == []
        assert "input_audio_buffer.append" not in session.received_types()
        assert "response.output_audio.delta" not in session.sent_types()
        assert "response.done" in session.sent_types()


class FirstByteVoice:
    """A detector for the hook test: a chunk is speech when its first byte is 1, judged whole."""

    def __init__(self, session: Any) -> None:
        self.resets = 0

    def hear(self, audio: str, nbytes: int, fmt: AudioFormat) -> list[tuple[bool, float]]:
        return [(base64.b64decode(audio[:4])[0] == 1, fmt.ms(nbytes))]

    def reset(self) -> None:
        self.resets += 1


async def test_voice_detector_on_audio_and_on_send_hooks(fake: FakeRealtimeServer) -> None:
    fake.answer_ms = 200
    fake.voice_detector = FirstByteVoice
    heard: list[str] = []
    fake.on_audio = lambda session, audio: heard.append(audio)

    def stamp(session: Any, event: dict[str, Any]) -> None:
        if event["type"] == "response.output_audio.delta":
            event["delta"] = "AAAA" + event["delta"][4:]

    fake.on_send = stamp
    async with client(fake) as c:
        speech = b"\x01" + bytes(4799)  # 100 ms, silent to an energy detector
        await c.append(speech)
        started = await c.next("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 0
        for _ in range(5):
            await c.append(bytes(4800))
        stopped = await c.next("input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] == 600  # five 100 ms chunks of silence: 500 ms
        events = await c.until("response.done")
        deltas = [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]
        assert deltas and all(d.startswith("AAAA") for d in deltas)
        assert heard[0] == base64.b64encode(speech).decode() and len(heard) == 6
        session = fake.sessions[0]
        sent = [e["delta"] for _, e in session.sent if e["type"] == "response.output_audio.delta"]
        assert sent == deltas
