"""CallSession on its own: 46elks' messages are plain calls, and endings may race the call's setup.

The store and the OpenAI connection are stand-ins here (the session only knows them through
their interfaces); whole calls through real sockets are in test_bridge.py and test_fastlane.py.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistants.realtime_config import AssistantConfig
from calls.live.session import CallSession
from calls.live.types import CALLER_HANGUP, Opened, SessionSettings

HELLO = orjson.dumps({"t": "hello", "callid": "unit-1", "from": "+46709999999", "to": "+46700000001"})
BYE = b'{"t":"bye","reason":"hangup","message":"the caller hung up"}'
CONFIG = AssistantConfig(id=1, name="Unit", instructions="Be brief.", audio_format="ulaw", welcome_message="Hej!")
ULAW = {"type": "audio/pcmu"}


class GatedStore:
    """A CallStore whose `open` waits for the test to let it finish."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.entered = loop.create_future()
        self.gate = loop.create_future()
        self.finished: list = []
        self.lines: list = []

    async def open(self, hello, *, refuse=None, on_assistant=None) -> Opened:
        on_assistant(CONFIG)
        self.entered.set_result(None)
        await self.gate
        return Opened(1, CONFIG)

    def transcript(self, call_pk, line) -> None:
        self.lines.append(line)

    async def finish(self, call_pk, outcome) -> None:
        await asyncio.sleep(0)  # a write takes a while: other tasks run meanwhile
        self.finished.append(outcome)


async def never_connects(*args, **kwargs):
    await asyncio.Event().wait()


def make_session(store, sent: list[bytes], connect=never_connects) -> CallSession:
    async def close() -> None:
        pass

    session = CallSession(
        send=sent.append,
        close=close,
        store=store,
        settings=SessionSettings(openai_url="ws://127.0.0.1:9/v1/realtime", openai_api_key="sk-unit", bye_timeout=0.5),
        connect=connect,
    )
    session.start()
    return session


@pytest.fixture
def spawned(monkeypatch) -> list[asyncio.Task]:
    """Every task the sessions of a test start, to check how each one ended."""
    tasks: list[asyncio.Task] = []
    real_spawn = CallSession._spawn

    def spawn(self, coro):
        tasks.append(real_spawn(self, coro))
        return tasks[-1]

    monkeypatch.setattr(CallSession, "_spawn", spawn)
    return tasks


async def test_a_bye_that_lands_as_the_call_is_recorded_ends_it_cleanly(spawned):
    """The ending may start between the record's arrival and the OpenAI task's first step."""
    store = GatedStore()
    sent: list[bytes] = []
    session = make_session(store, sent)
    session.on_message(HELLO)
    await store.entered
    store.gate.set_result(None)  # the record is written; the task that waited for it resumes next...
    session.on_message(BYE)  # ...and the caller's bye is handled right behind it
    await asyncio.wait_for(session.finished.wait(), 5)
    outcomes = await asyncio.gather(*spawned, return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, Exception)] == []
    assert [o.end_reason for o in store.finished] == ["caller_hangup"]
    assert sent[:2] == [b'{"t":"listening","format":"ulaw"}', b'{"t":"sending","format":"ulaw"}']


async def test_caller_audio_that_comes_while_the_assistant_is_looked_up_is_kept():
    store = GatedStore()
    session = make_session(store, [])
    session.on_message(HELLO)
    for _ in range(3):
        session.on_message(b'{"t":"audio","data":"AAAA"}')
    session.on_message(b'{"t":"audio","data":"A"}')  # not base64: dropped on its own, nothing else
    assert [data for data, _ in session._pending_audio] == ["AAAA"] * 3
    assert session.problems["bad message"] == 1
    store.gate.set_result(None)
    await session.abort(CALLER_HANGUP)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
messages = st.one_of(
    st.builds(lambda d: {"t": "audio", "data": d}, st.text(alphabet="AB+/=x\u00e9", max_size=12) | json_values),
    st.builds(lambda extra: {"t": "hello", **extra}, st.dictionaries(st.sampled_from(["callid", "to"]), json_values)),
    st.builds(lambda t: {"t": t}, st.sampled_from(["sync", "bye", "interrupt", "??"])),
    json_values,
).map(orjson.dumps)
frames = st.one_of(messages, messages.map(lambda b: b[: len(b) // 2]), st.binary(max_size=40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.booleans(), batch=st.lists(frames, max_size=25))
def test_any_message_in_any_order_costs_at_most_itself(caplog, first, batch):
    """on_message never raises and never logs a failure of ours, whatever 46elks sends."""

    async def run() -> None:
        store = GatedStore()
        session = make_session(store, [])
        if first:
            session.on_message(HELLO)
        for frame in batch:
            session.on_message(frame)
        if not store.gate.done():
            store.gate.set_result(None)
        await session.abort(CALLER_HANGUP)

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="calls"):
        asyncio.run(run())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_hello_after_the_call_ended_is_not_recorded(spawned):
    store = GatedStore()
    session = make_session(store, [])
    await session.abort(CALLER_HANGUP)  # e.g. no hello came in time
    session.on_message(HELLO)
    assert session.hello is None and spawned == [] and session.problems["hello after the end"] == 1


class StandInOpenAI:
    """What the session sees of its OpenAI client; the test speaks for OpenAI through `event`."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.audio: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()
        self.event = None
        self.configured = asyncio.get_running_loop().create_future()

    async def connect(self, *args, on_event, **kwargs):
        self.event = on_event
        return self

    def send(self, event: dict) -> None:
        self.sent.append(event)
        if event["type"] == "session.update" and not self.configured.done():
            self.configured.set_result(event)

    def append_audio(self, b64: bytes) -> bool:
        self.audio.append(b64)
        return True

    async def wait_closed(self) -> None:
        await self.closed

    async def close(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def test_openai_is_set_up_while_the_call_is_recorded_and_relays_only_once_it_is():
    """session.update does not wait for the record; the greeting, audio and OpenAI's events do, losing none."""
    store, openai, sent = GatedStore(), StandInOpenAI(), []
    session = make_session(store, sent, connect=openai.connect)
    session.on_message(HELLO)
    await openai.configured  # the record is still being written
    openai.event(
        {"type": "session.updated", "session": {"audio": {"input": {"format": ULAW}, "output": {"format": ULAW}}}}
    )
    openai.event(
        {"type": "error", "error": {"type": "rate_limits", "code": "rate_limit_exceeded", "message": "Slow down."}}
    )
    session.on_message(b'{"t":"audio","data":"AAAA"}')
    assert [e["type"] for e in openai.sent] == ["session.update"] and openai.audio == []
    store.gate.set_result(None)
    await session.opened()
    assert [e["type"] for e in openai.sent] == ["session.update", "response.create"]  # the greeting
    assert openai.audio == [b"AAAA"] and session.problems["openai error"] == 1
    session.on_message(b'{"t":"audio","data":"BBBB"}')
    assert openai.audio == [b"AAAA", b"BBBB"]
    await session.abort(CALLER_HANGUP)
