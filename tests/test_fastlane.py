"""The server's fast lane for call audio (voiceagent.fastlane) keeps the WebSocket protocol whole.

Simple frames take the fast lane; fragmented messages, 64-bit lengths, pings and frames split
across reads go through autobahn. Mixed on one socket, every caller frame must still reach OpenAI
once, in order, byte for byte, and the socket's control traffic must keep working.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from calls.live.wsframes import client_text_frame, server_text_frame, take_text_frames
from tests.bridge_helpers import CALLER, NUMBER_A, fake_openai, make_assistant, simulator, wait_call_ended
from tests.conftest import FAST_TIMEOUTS, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def assistant(transactional_db):
    return make_assistant("Lane", NUMBER_A, audio_format="pcm_24000", welcome_message="")


def _audio(n: int, nbytes: int = 960) -> str:
    """Caller audio whose first bytes name it, so its arrival can be recognised."""
    return base64.b64encode(n.to_bytes(4, "little") + bytes(nbytes - 4)).decode()


def _message(data: str) -> str:
    return json.dumps({"t": "audio", "data": data})


@pytest.fixture(scope="module")
def public_lane_daphne(django_db_setup, django_db_blocker):
    """A daphne with the experimental lane on autobahn's public API (voiceagent.publiclane)."""
    from django.db import connection

    server = start_daphne(connection.settings_dict["NAME"], extra_env=FAST_TIMEOUTS, args=("--lane", "public"))
    yield server
    stop_daphne(server)


@pytest.fixture(params=["fast lane", "public-API lane"])
def lane_server(request):
    return request.getfixturevalue("daphne_server" if request.param == "fast lane" else "public_lane_daphne")


async def test_frames_of_every_shape_reach_openai_once_and_in_order(lane_server, assistant):
    daphne_server = lane_server
    sent: list[str] = []
    async with fake_openai(daphne_server) as fake:
        async with connect(daphne_server.elks_url, max_size=None) as ws:
            callid = f"lane-{uuid.uuid4().hex}"
            await ws.send(json.dumps({"t": "hello", "callid": callid, "from": CALLER, "to": NUMBER_A}))
            session = await fake.next_session()
            await session.wait_for("session.update")
            for n in range(60):
                data = _audio(n, nbytes=50_000 if n % 10 == 7 else 960)  # a 64-bit length now and then
                sent.append(data)
                text = _message(data)
                if n % 10 == 3:
                    await ws.send([text[:100], text[100:700], text[700:]])  # a fragmented message
                elif n % 10 == 5:
                    pong = await ws.ping()
                    await ws.send(text)
                    await asyncio.wait_for(pong, 5)  # the server still answers control frames
                else:
                    await ws.send(text)
            await session.wait_for("input_audio_buffer.append", predicate=lambda e: e.get("audio") == sent[-1])
            await ws.send(json.dumps({"t": "bye", "reason": "hangup", "message": "the caller hung up"}))
            await ws.wait_closed()
    appended = [e["audio"] for _, e in session.received if e.get("type") == "input_audio_buffer.append"]
    assert appended == sent
    call = await wait_call_ended(daphne_server, callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")


async def test_the_public_api_lane_carries_replies_to_the_caller(public_lane_daphne, transactional_db):
    await sync_to_async(make_assistant)("Public", NUMBER_A, welcome_message="Hello from the public lane.")
    async with fake_openai(public_lane_daphne, answer_ms=300):
        sim = simulator(public_lane_daphne, caller_audio=[("silence", 600)])
        task = asyncio.ensure_future(sim.run())
        await sim.wait_played_ms(200)  # the greeting's audio, sent with autobahn's sendMessage
        await sim.hang_up()
        result = await task
    call = await wait_call_ended(public_lane_daphne, result.callid)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    assert any("public-API lane" in line for line in public_lane_daphne.log)


async def test_text_that_is_not_utf8_costs_one_message_not_the_call(daphne_server, assistant):
    """The fast lane does not check UTF-8 (orjson does, while parsing): a bad frame is dropped, nothing else."""
    async with fake_openai(daphne_server) as fake:
        async with connect(daphne_server.elks_url) as ws:
            callid = f"lane-{uuid.uuid4().hex}"
            await ws.send(json.dumps({"t": "hello", "callid": callid, "from": CALLER, "to": NUMBER_A}))
            session = await fake.next_session()
            await session.wait_for("session.update")
            ws.transport.write(client_text_frame(b'{"t":"audio","data":"\xff\xfe"}'))
            await ws.send(_message(_audio(1)))
            await session.wait_for("input_audio_buffer.append", predicate=lambda e: e.get("audio") == _audio(1))
            await ws.send(json.dumps({"t": "bye", "reason": "hangup", "message": "the caller hung up"}))
            await ws.wait_closed()
    call = await wait_call_ended(daphne_server, callid)
    assert call.status == "completed"
    assert any("bad message: invalid JSON" in line for line in daphne_server.log)


def test_frame_helpers_round_trip_and_stop_at_what_they_do_not_handle():
    payloads = [b"x" * n for n in (0, 1, 125, 126, 127, 65535)]
    stream = b"".join(client_text_frame(p) for p in payloads)
    got: list[bytes] = []
    assert take_text_frames(stream, lambda p: got.append(bytes(p)) is None) == len(stream)
    assert got == payloads
    # Half a frame, a 64-bit length, a ping, an unmasked frame: left for the full protocol.
    for rest in (
        client_text_frame(b"q" * 300)[:-3],
        client_text_frame(b"y" * 65536),
        b"\x89\x80abcd",
        server_text_frame(b"{}"),
    ):
        got.clear()
        used = take_text_frames(client_text_frame(b"a") + rest, lambda p: got.append(bytes(p)) is None)
        assert got == [b"a"] and used == len(client_text_frame(b"a"))
    # The receiver can stop the fast lane after a frame (e.g. its socket started closing).
    assert take_text_frames(stream, lambda p: False) == len(client_text_frame(b""))
    assert server_text_frame(b"z" * 200)[:4] == b"\x81\x7e\x00\xc8"
