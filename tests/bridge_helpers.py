"""Helpers for tests that run whole calls through real daphne, the simulator and the fake OpenAI."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgiref.sync import sync_to_async

from assistants.models import Assistant, PhoneNumber
from calls.models import Call
from calls.testing.elks_simulator import CallSimulator
from calls.testing.fake_openai import FakeRealtimeServer
from tests.conftest import TEST_API_KEY, Daphne

NUMBER_A = "+46700000001"
NUMBER_B = "+46700000002"
CALLER = "+46709999999"


def make_assistant(name: str, number: str, **fields) -> Assistant:
    defaults = dict(
        instructions=f"You are {name}.",
        welcome_message=f"Hello, this is {name}.",
        audio_format="pcm_24000",
        language="en",
    )
    defaults.update(fields)
    assistant = Assistant.objects.create(name=name, **defaults)
    PhoneNumber.objects.create(number=number, assistant=assistant)
    return assistant


@asynccontextmanager
async def fake_openai(server: Daphne, **knobs) -> AsyncIterator[FakeRealtimeServer]:
    """A fake OpenAI on the port `server` calls, with any of its knobs (attributes) set first."""
    fake = FakeRealtimeServer(api_key=TEST_API_KEY, port=server.openai_port)
    for name, value in knobs.items():
        if not hasattr(fake, name) or name.startswith("_"):
            raise TypeError(f"FakeRealtimeServer has no knob {name!r}")
        setattr(fake, name, value)
    async with fake:
        yield fake


def simulator(server: Daphne, to: str = NUMBER_A, **kwargs) -> CallSimulator:
    kwargs.setdefault("from_", CALLER)
    kwargs.setdefault("caller_audio", [("silence", 200)])
    return CallSimulator(server.elks_url, to=to, **kwargs)


@sync_to_async
def get_call(callid: str) -> Call:
    return Call.objects.select_related("assistant").get(call_id=callid)


@sync_to_async
def transcript(callid: str) -> list[tuple[str, str, bool]]:
    call = Call.objects.get(call_id=callid)
    return [(e.role, e.text, e.interrupted) for e in call.transcript.order_by("position")]


async def wait_call_ended(server: Daphne, callid: str, timeout: float = 15.0) -> Call:
    """Wait for the server's end-of-call log line (written after the record), then read the record."""
    await server.await_log(f"call {callid} ended", timeout)
    return await get_call(callid)


def played_bytes(sim: CallSimulator) -> bytes:
    return bytes(sim.result.played_audio)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
