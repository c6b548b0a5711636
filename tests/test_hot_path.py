"""The audio path does no database query, writes no log line and sends no channel-layer message.

A call runs through the real consumer in this process (so every query, log record and layer
call of the server can be counted, whichever thread makes it), with the fake OpenAI on a real
socket. Once the greeting streams, a window follows in which only audio flows: caller frames in,
reply deltas out. Nothing may be counted in it; the call's start, outside the window, shows
that the counters see what they should.
"""

from __future__ import annotations

import base64
import json
import logging
import threading

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db.backends.utils import CursorWrapper

from tests.bridge_helpers import NUMBER_A, make_assistant
from tests.conftest import TEST_API_KEY

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_BYTES = 960  # 20 ms of 24 kHz PCM
CALLER_FRAMES = 50
REPLY_FRAMES = 25
OUR_LOGGERS = ("calls", "assistants", "voiceagent", "insights", "dashboard", "tools")


class Counters:
    """Queries (any thread), log records and channel-layer calls, split by a window flag."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_window = False
        self.window: dict[str, list[str]] = {"queries": [], "logs": [], "layer": []}
        self.outside: dict[str, list[str]] = {"queries": [], "logs": [], "layer": []}

    def add(self, kind: str, what: str) -> None:
        with self.lock:
            (self.window if self.in_window else self.outside)[kind].append(what)


class _CountingHandler(logging.Handler):
    def __init__(self, counters: Counters) -> None:
        super().__init__(logging.DEBUG)
        self.counters = counters

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name.split(".", 1)[0] in OUR_LOGGERS
        # Libraries' debug chatter (websockets logs frames at DEBUG) is off in production; ours is not.
        if ours or record.levelno >= logging.INFO:
            self.counters.add("logs", f"{record.name}: {record.getMessage()[:120]}")


@pytest.fixture
def counters(monkeypatch):
    counters = Counters()
    real_execute = CursorWrapper._execute_with_wrappers

    def counting_execute(self, sql, params, many, executor):
        counters.add("queries", sql[:120])
        return real_execute(self, sql, params, many, executor)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", counting_execute)

    layer = get_channel_layer()
    if layer is not None:
        for name in ("send", "group_send", "group_add"):
            real = getattr(layer, name)

            async def counting(*args, _real=real, _name=name, **kwargs):
                counters.add("layer", _name)
                return await _real(*args, **kwargs)

            monkeypatch.setattr(layer, name, counting)

    handler = _CountingHandler(counters)
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in OUR_LOGGERS}
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield counters
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _audio(n: int) -> str:
    """20 ms of near silence, made unique by its first sample so its arrival can be recognised."""
    return base64.b64encode(n.to_bytes(2, "little") + bytes(FRAME_BYTES - 2)).decode()


def _frame(n: int) -> str:
    return json.dumps({"t": "audio", "data": _audio(n)})


async def _receive_until_audio(comm: WebsocketCommunicator, count: int, seen: list[str]) -> None:
    """Read 46elks-bound messages until `count` audio frames have arrived; keep the others' types."""
    got = 0
    while got < count:
        msg = json.loads(await comm.receive_from(timeout=5))
        if msg["t"] == "audio":
            got += 1
        else:
            seen.append(msg["t"])


async def test_audio_frames_cause_no_query_log_or_layer_message(settings, counters):
    from calls import consumers
    from calls.testing.fake_openai import FakeRealtimeServer
    from voiceagent.routing import websocket_application

    await _create_assistant()
    async with FakeRealtimeServer(api_key=TEST_API_KEY, answer_ms=4000, chunk_ms=20, chunk_interval_ms=20) as fake:
        fake.reply_texts[:] = [""]  # the greeting streams audio only, no transcript deltas
        settings.OPENAI_REALTIME_URL = fake.url
        settings.OPENAI_API_KEY = TEST_API_KEY
        consumers._store = None
        comm = WebsocketCommunicator(websocket_application, f"/ws/elks/{settings.ELKS_WS_SECRET}/")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(
            text_data=json.dumps({"t": "hello", "callid": "hot-1", "from": "+46709999999", "to": NUMBER_A})
        )
        others: list[str] = []
        await _receive_until_audio(comm, 3, others)  # the greeting streams: the call is set up
        session = fake.sessions[0]

        counters.in_window = True
        for n in range(CALLER_FRAMES):
            await comm.send_to(text_data=_frame(n))
        await _receive_until_audio(comm, REPLY_FRAMES, others)
        last = _audio(CALLER_FRAMES - 1)
        await session.wait_for("input_audio_buffer.append", predicate=lambda e: e.get("audio") == last)
        counters.in_window = False

        await comm.send_to(text_data=json.dumps({"t": "bye", "reason": "hangup", "message": "the caller hung up"}))
        while (await comm.receive_output(timeout=10))["type"] != "websocket.close":
            pass  # the rest of the greeting; the server closes once the call is recorded
        await comm.disconnect(timeout=5)
        consumers._store = None

    appended = [e for _, e in session.received if e.get("type") == "input_audio_buffer.append"]
    assert len(appended) >= CALLER_FRAMES, "the caller's frames did not all reach OpenAI"
    assert set(others) <= {"listening", "sending"}, f"not only audio flowed in the window: {others}"
    assert counters.window == {"queries": [], "logs": [], "layer": []}
    # The counters do see the server's work: the call's start queried, logged and joined its group.
    assert counters.outside["queries"], "no query was counted at all: the query counter is broken"
    assert any("hello from" in line for line in counters.outside["logs"]), counters.outside["logs"]
    if get_channel_layer() is not None:
        assert "group_add" in counters.outside["layer"]


async def _create_assistant() -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(make_assistant)("Hot", NUMBER_A, welcome_message="Hello.")
