"""Voice mode: the caller is a second Realtime session with its own voice, phoning the assistant through
our real 46elks WebSocket path with the call simulator (calls/testing), as 46elks would.

The caller's audio output is streamed into the simulator as the caller's line (real-time, so barge-in
and `sync` work as on a phone); the assistant's audio the simulator receives is fed, paced as it plays,
to the caller session's input. What the attempt is checked by comes from the records the server wrote
for the call (scenarios.selectors.voice_call_outcome); only the time to first audio is the simulator's
(from hello to the first audio chunk, as a caller hears it). Its call id starts with CALL_ID_PREFIX,
which scenarios.call_start claims so the call is marked a test call.

This is the one module of the project that may import calls.testing (see .importlinter): no module
that serves a real call imports it.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings

from assistants.realtime_config import AssistantConfig, session_update
from calls.live.realtime import RealtimeClient
from calls.testing.caller_audio import LiveAudio
from calls.testing.elks_simulator import CallSimulator
from scenarios.call_start import CALL_ID_PREFIX
from scenarios.checks import Outcome as ConversationOutcome
from scenarios.text_mode import Usage, caller_instructions

CALLER_NUMBER = "+46700000000"
FEED_MS = 20
HANG_UP_TOOL = {
    "type": "function",
    "name": "hang_up",
    "description": "Hang up the phone: call it after your goodbye, once your business is done or the "
    "assistant said goodbye.",
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
}


def voice_caller_instructions(scenario: Any) -> str:
    return caller_instructions(scenario).replace(
        "set hang_up to true (say may then be a short goodbye or empty)", "say goodbye and call hang_up"
    )


def voice_url() -> str:
    """The server's 46elks WebSocket URL, as 46elks would connect (SCENARIO_VOICE_URL + the secret)."""
    return f"{settings.SCENARIO_VOICE_URL.rstrip('/')}/ws/elks/{settings.ELKS_WS_SECRET}/"


class VoiceConversation:
    """One phone conversation; `await run()` gives what the checks read (from the call's records)."""

    def __init__(self, scenario: Any, config: AssistantConfig, *, to_number: str) -> None:
        self.scenario = scenario
        self.config = config
        self.to_number = to_number
        self.call_id = f"{CALL_ID_PREFIX}{scenario.pk}-{uuid.uuid4().hex}"
        self.outcome = ConversationOutcome()
        self.usage = Usage()
        self.call_pk: int | None = None
        self.call_cost: Decimal = Decimal(0)  # the assistant's side, priced by the server
        self.heard = LiveAudio(24000)  # what the caller hears, fed to its session as it plays
        self.speaks = LiveAudio(24000)  # what the caller says, streamed by the simulator
        self._hang_up = asyncio.Event()
        self._turns = 0

    async def run(self) -> ConversationOutcome:
        if not self.to_number:
            raise RuntimeError("Voice mode needs a phone number of the assistant: add one under Phone numbers.")
        self.caller = await RealtimeClient.connect(
            settings.OPENAI_REALTIME_URL,
            api_key=settings.OPENAI_API_KEY,
            model=self.config.model,
            on_event=self._on_caller_event,
            timeout=settings.OPENAI_CONNECT_TIMEOUT,
        )
        try:
            self.caller.send(self._caller_session())
            if not self.config.welcome_message.strip():
                self.caller.send({"type": "response.create"})  # nobody greets: the caller speaks first
            self.sim = CallSimulator(
                voice_url(),
                to=self.to_number,
                from_=CALLER_NUMBER,
                callid=self.call_id,
                caller_audio=self.speaks,
                on_audio=self._on_assistant_audio,
            )
            call = asyncio.create_task(self.sim.run())
            feeder = asyncio.create_task(self._feed())
            ender = asyncio.create_task(self._end_when_asked())
            try:
                result = await asyncio.wait_for(asyncio.shield(call), settings.SCENARIO_VOICE_TIMEOUT)
            except TimeoutError:
                self.outcome.ended_with = "turn_limit"
                await self.sim.hang_up()
                result = await call
            finally:
                feeder.cancel()
                ender.cancel()
            if result.first_audio_at is not None and result.hello_sent_at is not None:
                self.outcome.first_reply_ms = (result.first_audio_at - result.hello_sent_at) * 1000
        finally:
            await self.caller.close()
        await self._read_records()
        return self.outcome

    def _caller_session(self) -> dict:
        cfg = AssistantConfig(
            id=None,
            name="scenario caller",
            instructions=voice_caller_instructions(self.scenario),
            voice=settings.SCENARIO_CALLER_VOICE,
            model=self.config.model,
            audio_format="pcm_24000",
            language=self.scenario.caller_language or "",
        )
        return session_update(cfg, tools=[HANG_UP_TOOL])

    def _on_assistant_audio(self, raw: bytes, fmt: Any) -> None:
        from calls.live.audio import decode, resample

        samples = decode(raw, fmt)
        self.heard.push(resample(samples, fmt.sample_rate, 24000) if fmt.sample_rate != 24000 else samples)

    def _on_caller_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            self.speaks.push(base64.b64decode(event.get("delta") or ""))
        elif kind == "response.done":
            response = event.get("response") or {}
            self.usage.realtime.append(response.get("usage") or {})
            outputs = response.get("output") or []
            if any(o.get("type") == "message" for o in outputs):
                self._turns += 1
            if any(o.get("type") == "function_call" and o.get("name") == "hang_up" for o in outputs):
                self._hang_up.set()
            elif self._turns >= self.scenario.turn_limit:
                self.outcome.ended_with = "turn_limit"
                self._hang_up.set()

    async def _feed(self) -> None:
        """Every 20 ms, what the caller heard in it (or silence) goes to the caller session; an interrupt
        empties what was still to be played."""
        loop = asyncio.get_running_loop()
        interrupts = 0
        start = loop.time()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * FEED_MS / 1000 - loop.time()))
            if self.sim.count("interrupt") != interrupts:
                interrupts = self.sim.count("interrupt")
                self.heard.clear()
            samples, _ = self.heard.take(24000 * FEED_MS // 1000, 24000)
            audio = base64.b64encode(samples.tobytes()).decode()
            self.caller.send({"type": "input_audio_buffer.append", "audio": audio})

    async def _end_when_asked(self) -> None:
        """The caller hangs up once its last words have been sent down the line."""
        await self._hang_up.wait()
        # response.done follows the last audio delta: what is still waiting plays at real time.
        await asyncio.sleep(min(10.0, self.speaks.pending / self.speaks.rate) + 0.2)
        await self.sim.hang_up()

    async def _read_records(self) -> None:
        from scenarios.selectors import voice_call_outcome

        deadline = time.monotonic() + 15
        priced_by = None
        while True:
            found = await asyncio.to_thread(voice_call_outcome, self.call_id)
            now = time.monotonic()
            if found is not None and priced_by is None:
                priced_by = now + 3
            if (found is not None and (found["usage_written"] or now > priced_by)) or now > deadline:
                break
            await asyncio.sleep(0.1)  # the records are written by another process: nothing here to await
        if found is None:
            raise RuntimeError("The server never recorded the end of the scenario's call.")
        self.call_cost = found["cost"] or Decimal(0)
        self.call_pk = found["pk"]
        self.outcome.transcript = found["transcript"]
        self.outcome.tool_calls = found["tool_calls"]
        self.outcome.turns = sum(1 for line in found["transcript"] if line["role"] == "caller")
        if not self.outcome.ended_with:
            self.outcome.ended_with = found["ended_with"]
