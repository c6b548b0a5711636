"""Text mode: the assistant, with its real instructions and tools, in a Realtime session that answers in
text; the caller is a text model that plays the scenario's person.

Plain asyncio around the project's Realtime client; the database is only touched by the tool
runner's webhook look-ups (in its own threads) — the caller's text model runs in a thread too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from assistants.realtime_config import AssistantConfig, greeting, session_update
from calls.live.realtime import RealtimeClient
from calls.live.types import Outcome
from insights.llm import structured_response
from scenarios.checks import Outcome as ConversationOutcome

CALLER_SCHEMA = {
    "type": "object",
    "properties": {"say": {"type": "string"}, "hang_up": {"type": "boolean"}},
    "required": ["say", "hang_up"],
    "additionalProperties": False,
}


def caller_instructions(scenario: Any) -> str:
    text = (
        "You play a person phoning a business, to test its phone assistant. Stay in your role; never say you "
        "are an AI. Say one short, natural phone utterance at a time. When your business is done or the "
        "assistant has said goodbye, set hang_up to true (say may then be a short goodbye or empty).\n\n"
        f"Who you are and what you want:\n{scenario.caller_instructions}"
    )
    if scenario.caller_language:
        text += f"\n\nSpeak this language: {scenario.caller_language}."
    if scenario.facts:
        text += f"\n\nFacts you know:\n{scenario.facts}"
    return text


class _Handle:
    """The CallHandle a tool runner sees in text mode: no call record, no phone."""

    call_pk = None
    hello = None

    def __init__(self, config: AssistantConfig) -> None:
        self.config = config
        self.started_at = time.monotonic()
        self.outcome: Outcome | None = None
        self.pending: Outcome | None = None
        self.finished = asyncio.Event()
        self.tools = None
        self.notes: list[str] = []

    @property
    def openai_received_at(self) -> float | None:
        return None

    def add_transcript(self, role: str, text: str) -> None:
        self.notes.append(text)

    def end_after_reply(self, outcome: Outcome) -> None:
        self.pending = outcome

    def request_hang_up(self, outcome: Outcome) -> None:
        self.outcome = outcome


@dataclasses.dataclass
class Usage:
    realtime: list[dict] = dataclasses.field(default_factory=list)
    text: list[dict] = dataclasses.field(default_factory=list)


class TextConversation:
    """One conversation; `await run()` gives what the checks read and the usage to price."""

    def __init__(self, scenario: Any, config: AssistantConfig, *, caller_model: str) -> None:
        self.scenario = scenario
        # Mock answers reach tools' runner as on a voice-mode call: through the call's extras.
        config = dataclasses.replace(config, extra={**config.extra, "tool_mocks": scenario.tool_mocks or {}})
        self.config = config
        self.caller_model = caller_model
        self.handle = _Handle(config)
        self.runner = import_string(settings.CALL_TOOL_RUNNER)(self.handle)
        self.handle.tools = self.runner
        self.outcome = ConversationOutcome()
        self.usage = Usage()
        self._events: asyncio.Queue[dict] = asyncio.Queue()

    async def run(self) -> ConversationOutcome:
        client = await RealtimeClient.connect(
            settings.OPENAI_REALTIME_URL,
            api_key=settings.OPENAI_API_KEY,
            model=self.config.model,
            on_event=self._events.put_nowait,
            timeout=settings.OPENAI_CONNECT_TIMEOUT,
        )
        self.client = client
        try:
            await self._converse()
        finally:
            self.handle.finished.set()
            await client.close()
        return self.outcome

    def _session_update(self) -> dict:
        tools = self.runner.definitions()
        event = session_update(self.config, tools=tools)
        event["session"]["output_modalities"] = ["text"]
        event["session"]["audio"]["input"]["turn_detection"] = None  # turns are taken by us, in text
        return event

    async def _converse(self) -> None:
        self.client.send(self._session_update())
        await self._wait_for("session.updated")
        hello = greeting(self.config)
        if hello is not None:
            await self._respond(hello)
        limit = self.scenario.turn_limit
        while not self.outcome.ended_with:
            if self.outcome.turns >= limit:
                self.outcome.ended_with = "turn_limit"
                break
            said, hang_up = await asyncio.to_thread(self._caller_turn)
            if said:
                self.outcome.turns += 1
                self.outcome.transcript.append({"role": "caller", "text": said})
            if hang_up or not said:
                self.outcome.ended_with = "caller_hangup"
                break
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": said}]}
            self.client.send({"type": "conversation.item.create", "item": item})
            await self._respond({"type": "response.create"})

    def _caller_turn(self) -> tuple[str, bool]:
        heard = "\n".join(
            f"{'You' if line['role'] == 'caller' else 'Assistant'}: {line['text']}" for line in self.outcome.transcript
        )
        prompt = (heard or "(The assistant has not spoken yet; you start.)") + "\n\nWhat do you say next?"
        data, usage = structured_response(
            self.caller_model,
            caller_instructions(self.scenario),
            prompt,
            CALLER_SCHEMA,
            name="caller_turn",
            timeout=settings.SCENARIO_TEXT_TIMEOUT,
        )
        self.usage.text.append({"model": self.caller_model, **usage})
        return str(data.get("say") or "").strip(), bool(data.get("hang_up"))

    async def _wait_for(self, kind: str, timeout: float = 30.0) -> dict:
        while True:
            event = await asyncio.wait_for(self._events.get(), timeout)
            if event["type"] == kind:
                return event
            if event["type"] == "error" and kind == "session.updated":
                raise RuntimeError(f"OpenAI refused the session: {event.get('error')}")

    async def _respond(self, create: dict) -> None:
        """One response and, while it calls tools, the responses after their outputs."""
        while True:
            sent = time.monotonic()
            self.client.send(create)
            done = await self._collect(sent)
            calls = [o for o in done["response"].get("output") or [] if o.get("type") == "function_call"]
            if not calls:
                if self.handle.pending is not None and not self.outcome.ended_with:
                    self.outcome.ended_with = self._ending(self.handle.pending)
                return
            for call in calls:
                await self._run_tool(call)
            create = {"type": "response.create"}

    async def _collect(self, sent: float) -> dict:
        while True:
            event = await self._wait_for_any()
            kind = event["type"]
            if kind == "response.output_text.delta" and self.outcome.first_reply_ms is None:
                self.outcome.first_reply_ms = (time.monotonic() - sent) * 1000
            elif kind == "response.done":
                response = event["response"]
                self.usage.realtime.append(response.get("usage") or {})
                for item in response.get("output") or []:
                    if item.get("type") == "message":
                        text = "".join(c.get("text") or c.get("transcript") or "" for c in item.get("content") or [])
                        if text:
                            self.outcome.transcript.append({"role": "assistant", "text": text})
                if response.get("status") == "failed":
                    raise RuntimeError(f"OpenAI's response failed: {response.get('status_details')}")
                return event

    async def _wait_for_any(self) -> dict:
        return await asyncio.wait_for(self._events.get(), 60.0)

    def _ending(self, outcome: Outcome) -> str:
        if outcome.end_reason == "transferred":
            return f"transfer:{self.config.transfer_number}"
        return outcome.end_reason

    async def _run_tool(self, call: dict) -> None:
        name, arguments = call.get("name", ""), call.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = arguments
        self.outcome.tool_calls.append({"name": name, "arguments": parsed})
        # No phone line to transfer in text mode: the transfer is the ending.
        if name == "transfer_call" and name not in (self.scenario.tool_mocks or {}):
            self.handle.pending = Outcome("completed", "transferred")
            output = json.dumps({"ok": True, "next": "Tell the caller you are connecting them now."})
        else:
            output = await asyncio.wait_for(
                self.runner.run(self.handle, name, arguments, call.get("call_id", "")), self.runner.timeout
            )
        item = {"type": "function_call_output", "call_id": call.get("call_id", ""), "output": output}
        self.client.send({"type": "conversation.item.create", "item": item})
