"""One connection to the fake OpenAI: its session state, what it received and sent, per-call knobs.

`FakeSession` is assembled from three parts, one per side of the conversation: this module
(the connection: recording, sending, receiving, `session.update`, conversation items, ending),
`input_audio` (the caller's audio: voice activity, commit, transcription) and `responses` (the
assistant's replies: streamed audio and text, function calls, usage).

Receiving is split so that a server under load can take a caller frame without a task hop:
`receive()` does at once everything that needs no reply (record, validate, buffer, judge speech)
and returns a coroutine only for the rest, to be awaited in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from assistants.audio_formats import PCM_24000, AudioFormat, format_for_openai
from calls.testing.fake_openai.events import ConsoleLog, EventLog, Predicate
from calls.testing.fake_openai.input_audio import InputAudio
from calls.testing.fake_openai.protocol import (
    CLIENT_EVENT_TYPES,
    STREAM_EVENTS,
    TURN_DETECTION_DEFAULTS,
    ClientEventError,
    default_session,
    dumps,
    parse_client_frame,
    validate_client_dict,
)
from calls.testing.fake_openai.responses import Responses, tokens

if TYPE_CHECKING:
    from calls.testing.fake_openai.server import FakeRealtimeServer, HandshakeRecord

APPEND = "input_audio_buffer.append"


class FakeSession(InputAudio, Responses):
    """One WebSocket connection: its state, what it received and sent, and per-call knobs.

    Knobs left at None fall back to the FakeRealtimeServer's value of the same name. `ws` is a
    websockets ServerConnection, or the server's lean connection (same `request`, `send`,
    `close`, `transport`, `close_code`, `close_reason`).
    """

    def __init__(self, fake: FakeRealtimeServer, ws: Any, model: str | None) -> None:
        self.fake = fake
        self.ws = ws
        self.id = f"sess_{secrets.token_hex(8)}"
        self.model = model
        self.request_path: str = ws.request.path if ws.request else ""
        self.request_headers: dict[str, str] = dict(ws.request.headers.raw_items()) if ws.request else {}
        self.connected_at = time.monotonic()
        self.handshake: HandshakeRecord | None = None  # the HTTP upgrade, with the time it arrived
        self.state: dict[str, Any] = default_session(self.id, model or "")
        self.rejected: str | None = None  # error code if the connection was refused after the upgrade
        self._received = EventLog()
        self._sent = EventLog()
        self.errors: list[dict[str, Any]] = []
        self.input_audio = bytearray()  # what arrived; stays empty with the server's keep_audio off
        self.input_bytes = 0
        self.sent_audio: dict[str, bytearray] = {}  # per item; empty with keep_audio off
        self.truncations: list[tuple[float, str, int]] = []
        self.items: dict[str, dict[str, Any]] = {}
        self.function_outputs: list[dict[str, Any]] = []
        self.function_calls: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # final `response` objects of response.done
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        # per-session knobs (None = use the server's)
        self.answer_ms: float | None = None
        self.chunk_ms: float | None = None
        self.chunk_interval_ms: float | None = None
        self.first_delta_delay_ms: float | None = None
        self.transcription_delay_ms: float | None = None
        self.reject_session_update: bool | None = None
        self.never_answer_session_update: bool | None = None
        self.error_on_response: dict[str, Any] | None = None
        self.reply_texts: list[str] | None = None
        self.caller_transcripts: list[str] | None = None
        self.reply_tool_calls: list[Any] | None = None
        self.internal_errors: list[BaseException] = []  # bugs in the fake's own tasks
        self._tasks: set[asyncio.Task] = set()
        self._send_lock = asyncio.Lock()
        self._console = ConsoleLog(self)
        self._formats: tuple[Any, AudioFormat, Any, AudioFormat] = (None, PCM_24000, None, PCM_24000)
        self._ctx_text_tokens = 0
        self._ctx_audio_tokens = 0
        self._init_input_audio()
        self._init_responses()

    # -- knobs -------------------------------------------------------------------------------------

    def _knob(self, name: str) -> Any:
        own = getattr(self, name)
        return getattr(self.fake, name) if own is None else own

    # -- recorded traffic --------------------------------------------------------------------------

    @property
    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """Every client event as (monotonic time, parsed dict), invalid ones included.

        Without the server's `record_stream_events`, appends are not kept.
        """
        return self._received.events

    @property
    def sent(self) -> list[tuple[float, dict[str, Any]]]:
        """Every server event as (monotonic time, dict), in wire order (deltas only with record_stream_events)."""
        return self._sent.events

    def received_types(self) -> list[str | None]:
        return [e.get("type") for _, e in self.received]

    def sent_types(self) -> list[str | None]:
        return [e.get("type") for _, e in self.sent]

    async def wait_for(
        self,
        type_: str,
        timeout: float = 5,
        predicate: Predicate | None = None,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first event of `type_` (from index `after` of its log) matching `predicate`, waiting for it.

        A client event type ("session.update") is looked for in what the fake received, any other
        ("response.done") in what it sent: the GA protocol's two sets of types are disjoint.
        """
        log = self._received if type_ in CLIENT_EVENT_TYPES else self._sent
        return await log.wait(type_, timeout, predicate, after)

    async def wait_closed(self, timeout: float = 5) -> int | None:
        """Wait for the connection to end; returns the close code."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    @property
    def input_format(self) -> AudioFormat:
        fmt = self.state["audio"]["input"]["format"]
        if fmt is not self._formats[0]:
            self._formats = (fmt, format_for_openai(fmt) or PCM_24000, *self._formats[2:])
        return self._formats[1]

    @property
    def output_format(self) -> AudioFormat:
        fmt = self.state["audio"]["output"]["format"]
        if fmt is not self._formats[2]:
            self._formats = (*self._formats[:2], fmt, format_for_openai(fmt) or PCM_24000)
        return self._formats[3]

    # -- sending -----------------------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send a server event (an event_id is added if missing) and record it.

        The server's `on_send` hook sees it first, in wire order, and may change it.
        """
        event = {"event_id": self.fake._new_id("event"), **event}
        fake = self.fake
        async with self._send_lock:
            if fake.on_send is not None:
                fake.on_send(self, event)
            await self.ws.send(dumps(event))
            if fake.record_stream_events or event["type"] not in STREAM_EVENTS:
                self._sent.add(event)
        self._console.event(">>", event)
        return event

    async def send_raw(self, text: str | bytes) -> None:
        """Send anything, unvalidated and unrecorded in `sent`: for client robustness tests."""
        async with self._send_lock:
            await self.ws.send(text)
        self._console.line(f">> RAW {str(text)[:80]!r}")

    async def send_error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> dict[str, Any]:
        error = {"type": type_, "code": code, "message": message, "param": param, "event_id": event_id}
        self.errors.append(error)
        return await self.send_event({"type": "error", "error": error})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def expire(self) -> None:
        """What the service does at the 60-minute cap."""
        with contextlib.suppress(ConnectionClosed):
            await self.send_error("session_expired", "Your session hit the maximum duration of 60 minutes.")
            await self.ws.close(1001, "Session expired")

    def drop(self) -> None:
        """Cut the TCP connection with no close frame, like a network failure."""
        self.ws.transport.abort()

    # -- receiving ---------------------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> Coroutine[Any, Any, None] | None:
        """Take one client frame; returns what is left to do (await it before the next frame), or None."""
        try:
            data = parse_client_frame(raw)
        except ClientEventError as exc:
            self._received.add({"type": None, "_raw": raw if isinstance(raw, str) else raw.decode("latin-1")})
            self._console.event("<<", {"type": "<invalid json>"})
            return self._refuse(exc, None)
        type_ = data.get("type")
        fake = self.fake
        if type_ != APPEND or fake.record_stream_events:
            self._received.add(data)
        if fake.log is not None:
            self._console.event("<<", data)
        eid = data.get("event_id")
        if eid is not None and not isinstance(eid, str):
            eid = None
        if fake.validate:
            try:
                validate_client_dict(data)
            except ClientEventError as exc:
                return self._refuse(exc, eid)
        if type_ == APPEND:
            return self._take_audio(data, eid)
        handler = getattr(self, "_on_" + str(type_).replace(".", "_"), None)
        if handler is None:  # only reachable without validation
            return self._refuse(ClientEventError("invalid_value", f"Invalid value: '{type_}'.", "type"), eid)
        return handler(data, eid)

    async def _refuse(self, exc: ClientEventError, eid: str | None) -> None:
        err = exc.as_error(eid)
        self.errors.append(err)
        await self.send_event({"type": "error", "error": err})

    async def _on_session_update(self, data: dict[str, Any], eid: str | None) -> None:
        if self._knob("never_answer_session_update"):
            return
        if self._knob("reject_session_update"):
            await self.send_error("invalid_value", "The session update was rejected (fake knob).", "session", eid)
            return
        update = data["session"]
        if update.get("type") != "realtime":
            await self.send_error("invalid_value", "This fake supports only realtime sessions.", "session.type", eid)
            return
        voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        if voice is not None and voice != self.state["audio"]["output"]["voice"] and self._audio_items:
            await self.send_error(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
                eid,
            )
            return
        new = copy.deepcopy(self.state)
        for key, value in update.items():
            if key == "audio":
                for side in ("input", "output"):
                    part = (value or {}).get(side)
                    if isinstance(part, dict):
                        for k, v in part.items():
                            if k == "turn_detection" and isinstance(v, dict):
                                v = {**TURN_DETECTION_DEFAULTS[v["type"]], **v}
                            new["audio"][side][k] = copy.deepcopy(v)
            elif key not in ("model", "type"):
                new[key] = copy.deepcopy(value)
        old_input = self.state["audio"]["input"]
        if new["audio"]["input"]["format"] != old_input["format"] or not new["audio"]["input"]["turn_detection"]:
            self._reset_vad()  # a half window in the old format would be misread
        self.state = new
        await self.send_event({"type": "session.updated", "session": copy.deepcopy(self.state)})

    # -- conversation items ------------------------------------------------------------------------

    async def _on_conversation_item_create(self, data: dict[str, Any], eid: str | None) -> None:
        item = copy.deepcopy(data["item"])
        item_id = item.get("id") or self.fake._new_id("item")
        if item_id in self.items:
            await self.send_error("invalid_value", f"Item with id '{item_id}' already exists.", "item.id", eid)
            return
        item.update({"id": item_id, "object": "realtime.item", "status": "completed"})
        previous = data.get("previous_item_id") or next(reversed(self.items), None)
        self.items[item_id] = item
        if item["type"] == "function_call_output":
            self.function_outputs.append(item)
            self._ctx_text_tokens += tokens(item.get("output", ""))
        else:
            self._ctx_text_tokens += tokens(json.dumps(item.get("content", item.get("arguments", ""))))
        await self.send_event(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        await self.send_event(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )

    async def _on_conversation_item_delete(self, data: dict[str, Any], eid: str | None) -> None:
        item_id = data["item_id"]
        if self.items.pop(item_id, None) is None:
            await self.send_error(
                "invalid_value",
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                "item_id",
                eid,
            )
            return
        await self.send_event({"type": "conversation.item.deleted", "item_id": item_id})

    async def _on_conversation_item_retrieve(self, data: dict[str, Any], eid: str | None) -> None:
        item = self.items.get(data["item_id"])
        if item is None:
            await self.send_error(
                "invalid_value",
                f"Error retrieving item: the item with id '{data['item_id']}' does not exist.",
                "item_id",
                eid,
            )
            return
        await self.send_event({"type": "conversation.item.retrieved", "item": copy.deepcopy(item)})

    async def _on_conversation_item_truncate(self, data: dict[str, Any], eid: str | None) -> None:
        item_id, end_ms, index = data["item_id"], data["audio_end_ms"], data["content_index"]
        item = self.items.get(item_id)
        if item is None:
            await self.send_error(
                "invalid_value",
                f"Error truncating item: the item with id '{item_id}' does not exist.",
                "item_id",
                eid,
            )
            return
        audio = self._audio_items.get(item_id)
        if audio is None or audio.produced_bytes == 0:
            await self.send_error(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                "item_id",
                eid,
            )
            return
        if index != 0:
            await self.send_error("invalid_value", f"Invalid content index {index}.", "content_index", eid)
            return
        if end_ms < 0 or end_ms > audio.produced_ms:
            await self.send_error(
                "invalid_value",
                f"Audio content of {int(audio.produced_ms)}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
                eid,
            )
            return
        audio.truncated_ms = float(end_ms)
        keep = round(len(audio.text) * end_ms / audio.planned_ms) if audio.planned_ms else 0
        for part in item.get("content", []):
            if "transcript" in part:
                part["transcript"] = audio.text[:keep]
        self.truncations.append((time.monotonic(), item_id, end_ms))
        await self.send_event(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": index,
                "audio_end_ms": end_ms,
            }
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, ConnectionClosed):
                self.internal_errors.append(exc)
                self._console.line(f"!! task failed: {exc!r}")

    def _finish(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.close_code = self.ws.close_code
        self.close_reason = self.ws.close_reason
        self._received.close()
        self._sent.close()
        self._console.flush()
        self._console.line(f"-- closed code={self.close_code} reason={self.close_reason!r}")
        self.closed.set()
