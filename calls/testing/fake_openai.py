"""A fake OpenAI Realtime GA server that speaks the real protocol over a real WebSocket.

Tests and demos of the phone bridge need an OpenAI that (1) rejects what the real service rejects,
because a silently accepted beta-shaped `session.update` is the classic failure of this API, and
(2) behaves like it in time: audio arrives faster than real time, barge-in cancels the reply, the
caller's transcript arrives after the reply has started. Every client event is validated against
the `openai` package's GA models plus the checks the SDK leaves out (unknown keys, pcm rate).

No Django here: tests import this module without settings, and `python -m calls.fake_realtime`
runs it standalone.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import binascii
import contextlib
import copy
import http
import itertools
import json
import math
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Self
from urllib.parse import parse_qs, urlsplit

from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from openai.types.realtime.realtime_audio_formats import AudioPCM
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from assistants.audio_formats import PCM_24000, AudioFormat, format_for_openai
from calls.live.audio import decode, encode, rms

MODELS = (
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2",
    "gpt-realtime-1.5",
    "gpt-realtime",
    "gpt-realtime-mini",
)
DEFAULT_REPLY = "How can I help you today?"
DEFAULT_CALLER_TRANSCRIPT = "Hello, I'd like some help."
BETA_ERROR = {
    "type": "invalid_request_error",
    "code": "beta_api_shape_disabled",
    "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
    "param": None,
}
VAD_WINDOW_MS = 20
AUDIO_EVENTS = ("input_audio_buffer.append", "response.output_audio.delta")
# Logged as one summary line per burst, not one line each.
STREAM_EVENTS = (
    *AUDIO_EVENTS,
    "response.output_audio_transcript.delta",
    "response.output_text.delta",
    "response.function_call_arguments.delta",
)

# ---------------------------------------------------------------------------------------------------
# Validation of client events
# ---------------------------------------------------------------------------------------------------

_CLIENT_TA: TypeAdapter[Any] = TypeAdapter(Annotated[RealtimeClientEvent, Field(discriminator="type")])
_SERVER_TA: TypeAdapter[Any] = TypeAdapter(Annotated[RealtimeServerEvent, Field(discriminator="type")])
# Union members the smart union also tries; their errors only matter if the input chose them.
_SECONDARY_BRANCHES = {"RealtimeTranscriptionSessionCreateRequest": "transcription"}


class ClientEventError(ValueError):
    """A client event the real service would answer with an `error` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param

    def as_error(self, event_id: str | None = None) -> dict[str, Any]:
        return {
            "type": "invalid_request_error",
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": event_id,
        }


def validate_client_event(raw: str | bytes) -> BaseModel:
    """Parse one client frame as the GA service would, or raise ClientEventError."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ClientEventError(
            "invalid_json", "We could not parse the JSON body of your request. Expected a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise ClientEventError("invalid_json", "Expected the event to be a JSON object.")
    return validate_client_dict(data)


def validate_client_dict(data: dict[str, Any]) -> BaseModel:
    """Like validate_client_event, for an already decoded event."""
    try:
        event = _CLIENT_TA.validate_python(data)
    except ValidationError as exc:
        raise _error_from_validation(exc, data) from None
    for path, model in _walk_models(event, ""):
        for key in model.model_extra or {}:
            raise ClientEventError("unknown_parameter", f"Unknown parameter: '{path}{key}'.", f"{path}{key}")
        if isinstance(model, AudioPCM) and model.rate is None:
            # The SDK marks rate optional; the service requires it (reference §3).
            raise ClientEventError(
                "missing_required_parameter", f"Missing required parameter: '{path}rate'.", f"{path}rate"
            )
        modalities = getattr(model, "output_modalities", None) if path.count(".") <= 1 else None
        if isinstance(modalities, list) and len(set(modalities)) > 1:
            raise ClientEventError(
                "invalid_value",
                "Invalid value for 'output_modalities': audio and text cannot be requested together.",
                f"{path}output_modalities",
            )
    return event


def validate_server_event(raw: str | bytes | dict[str, Any]) -> BaseModel:
    """Parse a server event with the SDK's GA union (raises pydantic.ValidationError)."""
    if isinstance(raw, dict):
        return _SERVER_TA.validate_python(raw)
    return _SERVER_TA.validate_json(raw)


def _walk_models(value: Any, path: str):
    """Every nested pydantic model with its dotted path prefix ("session.audio.")."""
    if isinstance(value, BaseModel):
        yield path, value
        for name in type(value).model_fields:
            yield from _walk_models(getattr(value, name), f"{path}{name}.")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk_models(item, f"{path}{i}.")


def _locate(loc: tuple[Any, ...], data: Any) -> tuple[list[str], list[str], Any]:
    """Split a pydantic error location into real input keys and union labels (class names, tags)."""
    keys: list[str] = []
    labels: list[str] = []
    node = data
    for seg in loc:
        if isinstance(node, dict) and isinstance(seg, str) and seg in node:
            keys.append(seg)
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            keys.append(str(seg))
            node = node[seg]
        else:
            labels.append(str(seg))
    return keys, labels, node


def _describe(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return names.get(type(value), "a value")


def _error_from_validation(exc: ValidationError, data: dict[str, Any]) -> ClientEventError:
    """The one error the service would report, phrased like it."""
    errors = exc.errors(include_url=False)
    candidates = []
    for err in errors:
        keys, labels, _ = _locate(tuple(err["loc"]), data)
        if err["type"] == "missing" and err["loc"] and (not keys or keys[-1] != str(err["loc"][-1])):
            keys.append(str(err["loc"][-1]))
        wrong_branch = err["type"] == "literal_error" and keys and keys[-1] == "type"
        secondary = 0
        for label in labels:
            wanted = _SECONDARY_BRANCHES.get(label)
            if wanted is not None:
                node = data
                for k in keys[:1]:
                    node = node.get(k) if isinstance(node, dict) else None
                if not (isinstance(node, dict) and node.get("type") == wanted):
                    secondary = 1
        candidates.append((int(bool(wrong_branch)) + secondary, keys, err))
    candidates.sort(key=lambda c: c[0])
    _, keys, err = candidates[0]
    param = ".".join(keys)
    kind = err["type"]
    value = err.get("input")
    if kind == "union_tag_not_found":
        param = ".".join([*keys, "type"])
        return ClientEventError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)
    if kind == "union_tag_invalid":
        param = ".".join([*keys, "type"])
        tag = (err.get("ctx") or {}).get("tag")
        expected = (err.get("ctx") or {}).get("expected_tags", "")
        return ClientEventError("invalid_value", f"Invalid value: '{tag}'. Supported values are: {expected}.", param)
    if kind == "missing":
        return ClientEventError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)
    if kind in ("literal_error", "enum"):
        shown = f"'{value}'" if isinstance(value, str) else json.dumps(value)
        # A union of tagged objects fails once per member: list every member's tag.
        expected = ", ".join(
            dict.fromkeys(
                str((e.get("ctx") or {}).get("expected", ""))
                for _, k, e in candidates
                if k == keys and e["type"] == kind
            )
        )
        return ClientEventError("invalid_value", f"Invalid value: {shown}. Supported values are: {expected}.", param)
    if kind.endswith("_type") or kind in ("model_attributes_type", "dataclass_type"):
        wanted = {
            "model_type": "an object",
            "dict_type": "an object",
            "list_type": "an array",
            "string_type": "a string",
            "int_type": "an integer",
            "float_type": "a number",
            "bool_type": "a boolean",
        }.get(kind, "another type")
        return ClientEventError(
            "invalid_value",
            f"Invalid type for '{param}': expected {wanted}, but got {_describe(value)} instead.",
            param,
        )
    return ClientEventError("invalid_value", f"Invalid value for '{param}': {err['msg']}.", param)


# ---------------------------------------------------------------------------------------------------
# Session defaults and small helpers
# ---------------------------------------------------------------------------------------------------

_TURN_DETECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "server_vad": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    },
    "semantic_vad": {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    },
}


def default_session(session_id: str, model: str) -> dict[str, Any]:
    """The GA session object `session.created` carries before any update."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(_TURN_DETECTION_DEFAULTS["server_vad"]),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
    }


_TONE_CACHE: dict[tuple[str, int, float], bytes] = {}


def tone(fmt: AudioFormat, ms: float, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """Deterministic, clearly non-silent wire audio: what the fake 'says'."""
    n = int(ms * fmt.sample_rate / 1000)
    key = (fmt.name, n, freq)
    if key not in _TONE_CACHE:
        step = 2 * math.pi * freq / fmt.sample_rate
        samples = array.array("h", (int(amplitude * math.sin(step * i)) for i in range(n)))
        _TONE_CACHE[key] = encode(samples, fmt)
    return _TONE_CACHE[key]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def _reply_from_instructions(instructions: str) -> str:
    """What a model told 'say exactly the following:\\n<text>' would say: the text after the colon."""
    _, sep, tail = instructions.rpartition(":\n")
    return tail.strip() if sep and tail.strip() else instructions.strip()


def _error_body(status: int) -> dict[str, Any]:
    """Bodies shaped like the real API's HTTP errors."""
    bodies = {
        401: (
            ("Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."),
            "invalid_request_error",
            "invalid_api_key",
        ),
        403: (
            "You are not allowed to access this resource.",
            "invalid_request_error",
            "unsupported_country_region_territory",
        ),
        404: ("Invalid URL (GET /v1/realtime).", "invalid_request_error", None),
        429: (
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        500: (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }
    message, type_, code = bodies.get(status, (http.HTTPStatus(status).phrase, "server_error", None))
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class SessionClosedError(RuntimeError):
    """Raised by wait helpers when the connection ended before the awaited event."""


@dataclass
class HandshakeRecord:
    """One HTTP upgrade attempt, including the ones the fake refused."""

    t: float
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class _Response:
    id: str
    instructions: str | None
    modalities: list[str]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str | None = None
    finishing: bool = False
    task: asyncio.Task | None = None
    output: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _AudioItem:
    fmt: AudioFormat
    planned_ms: float
    text: str
    produced_bytes: int = 0
    truncated_ms: float | None = None

    @property
    def produced_ms(self) -> float:
        if self.truncated_ms is not None:
            return self.truncated_ms
        return self.fmt.ms(self.produced_bytes)


class _EventLog:
    """A list of (monotonic time, event) with awaitable lookups, so tests never poll."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._waiters: list[tuple[str | None, Callable[[dict], bool] | None, int, asyncio.Future]] = []
        self.closed = False

    @staticmethod
    def _match(event: dict[str, Any], type_: str | None, predicate: Callable[[dict], bool] | None) -> bool:
        return (type_ is None or event.get("type") == type_) and (predicate is None or bool(predicate(event)))

    def add(self, event: dict[str, Any]) -> None:
        self.events.append((time.monotonic(), event))
        index = len(self.events) - 1
        for waiter in list(self._waiters):
            type_, predicate, after, fut = waiter
            if fut.done():
                self._waiters.remove(waiter)
            elif index >= after and self._match(event, type_, predicate):
                fut.set_result(event)
                self._waiters.remove(waiter)

    def close(self) -> None:
        self.closed = True
        for *_, fut in self._waiters:
            if not fut.done():
                fut.set_exception(SessionClosedError("the connection closed before the awaited event"))
        self._waiters.clear()

    async def wait(
        self,
        type_: str | None,
        timeout: float,
        predicate: Callable[[dict], bool] | None,
        after: int,
    ) -> dict[str, Any]:
        for _, event in self.events[after:]:
            if self._match(event, type_, predicate):
                return event
        if self.closed:
            raise SessionClosedError(f"connection closed; no {type_!r} event")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        waiter = (type_, predicate, after, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            seen = [e.get("type") for _, e in self.events[-15:]]
            raise TimeoutError(f"no {type_!r} event within {timeout}s; last events: {seen}") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


# ---------------------------------------------------------------------------------------------------
# One connection
# ---------------------------------------------------------------------------------------------------


class FakeSession:
    """One WebSocket connection: its state, what it received and sent, and per-call knobs.

    Knobs left at None fall back to the FakeRealtimeServer's value of the same name.
    """

    def __init__(self, fake: FakeRealtimeServer, ws: ServerConnection, model: str | None) -> None:
        self.fake = fake
        self.ws = ws
        self.id = f"sess_{secrets.token_hex(8)}"
        self.model = model
        self.request_path: str = ws.request.path if ws.request else ""
        self.request_headers: dict[str, str] = dict(ws.request.headers.raw_items()) if ws.request else {}
        self.connected_at = time.monotonic()
        self.state: dict[str, Any] = default_session(self.id, model or "")
        self.rejected: str | None = None  # error code if the connection was refused after the upgrade
        self._received = _EventLog()
        self._sent = _EventLog()
        self.errors: list[dict[str, Any]] = []
        self.input_audio = bytearray()
        self.input_bytes = 0
        self.sent_audio: dict[str, bytearray] = {}
        self.truncations: list[tuple[float, str, int]] = []
        self.items: dict[str, dict[str, Any]] = {}
        self.function_outputs: list[dict[str, Any]] = []
        self.function_calls: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # final `response` objects of response.done
        self.active_response: _Response | None = None
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
        # internals
        self._audio_items: dict[str, _AudioItem] = {}
        self._tasks: set[asyncio.Task] = set()
        self.internal_errors: list[BaseException] = []  # bugs in the fake's own tasks
        self._send_lock = asyncio.Lock()
        self._buffer_ms = 0.0
        self._vad_pending = bytearray()
        self._input_ms = 0.0  # all input audio so far, in ms
        self._in_speech = False
        self._silence_ms = 0.0
        self._speech_item_id: str | None = None
        self._responses_started = 0
        self._ctx_text_tokens = 0
        self._ctx_audio_tokens = 0
        self._last_input_tokens = 0
        self._log_pending: dict[tuple[str, str], list[float]] = {}

    # -- knobs -------------------------------------------------------------------------------------

    def _knob(self, name: str) -> Any:
        own = getattr(self, name)
        return getattr(self.fake, name) if own is None else own

    def _queue(self, name: str) -> list[Any]:
        own = getattr(self, name)
        return getattr(self.fake, name) if own is None else own

    # -- recorded traffic --------------------------------------------------------------------------

    @property
    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """Every client event as (monotonic time, parsed dict), invalid ones included."""
        return self._received.events

    @property
    def sent(self) -> list[tuple[float, dict[str, Any]]]:
        """Every server event as (monotonic time, dict), in wire order."""
        return self._sent.events

    def received_types(self) -> list[str | None]:
        return [e.get("type") for _, e in self.received]

    def sent_types(self) -> list[str | None]:
        return [e.get("type") for _, e in self.sent]

    async def wait_for(
        self,
        type_: str | None = None,
        timeout: float = 5,
        predicate: Callable[[dict], bool] | None = None,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first received client event (from index `after`) matching type and predicate."""
        return await self._received.wait(type_, timeout, predicate, after)

    async def wait_sent(
        self,
        type_: str | None = None,
        timeout: float = 5,
        predicate: Callable[[dict], bool] | None = None,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first sent server event (from index `after`) matching type and predicate."""
        return await self._sent.wait(type_, timeout, predicate, after)

    async def wait_closed(self, timeout: float = 5) -> int | None:
        """Wait for the connection to end; returns the close code."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    @property
    def input_format(self) -> AudioFormat:
        return format_for_openai(self.state["audio"]["input"]["format"]) or PCM_24000

    @property
    def output_format(self) -> AudioFormat:
        return format_for_openai(self.state["audio"]["output"]["format"]) or PCM_24000

    # -- sending -----------------------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send a server event (an event_id is added if missing) and record it."""
        event = {"event_id": self.fake._new_id("event"), **event}
        text = json.dumps(event)
        async with self._send_lock:
            await self.ws.send(text)
            self._sent.add(event)
        self._log(">>", event)
        return event

    async def send_raw(self, text: str | bytes) -> None:
        """Send anything, unvalidated and unrecorded in `sent`: for client robustness tests."""
        async with self._send_lock:
            await self.ws.send(text)
        self._log_line(f">> RAW {str(text)[:80]!r}")

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

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            self._received.add(data)
        else:
            self._received.add({"type": None, "_raw": raw if isinstance(raw, str) else raw.decode("latin-1")})
        self._log("<<", data if isinstance(data, dict) else {"type": "<invalid json>"})
        client_event_id = data.get("event_id") if isinstance(data, dict) else None
        try:
            if data is None or not isinstance(data, dict):
                validate_client_event(raw)  # raises the right error
            elif self.fake.validate:
                validate_client_dict(data)
        except ClientEventError as exc:
            err = exc.as_error(client_event_id if isinstance(client_event_id, str) else None)
            self.errors.append(err)
            await self.send_event({"type": "error", "error": err})
            return
        handler = getattr(self, "_on_" + data["type"].replace(".", "_"))
        await handler(data, client_event_id)

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
                                v = {**_TURN_DETECTION_DEFAULTS[v["type"]], **v}
                            new["audio"][side][k] = copy.deepcopy(v)
            elif key not in ("model", "type"):
                new[key] = copy.deepcopy(value)
        old_input = self.state["audio"]["input"]
        if new["audio"]["input"]["format"] != old_input["format"] or not new["audio"]["input"]["turn_detection"]:
            self._reset_vad()  # a half window in the old format would be misread
        self.state = new
        await self.send_event({"type": "session.updated", "session": copy.deepcopy(self.state)})

    async def _on_input_audio_buffer_append(self, data: dict[str, Any], eid: str | None) -> None:
        try:
            chunk = base64.b64decode(data["audio"], validate=True)
        except (binascii.Error, ValueError):
            await self.send_error(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio", eid
            )
            return
        fmt = self.input_format
        self.input_audio += chunk
        self.input_bytes += len(chunk)
        self._buffer_ms += fmt.ms(len(chunk))
        self._input_ms += fmt.ms(len(chunk))
        td = self.state["audio"]["input"]["turn_detection"]
        if not td:
            return
        self._vad_pending += chunk
        window = VAD_WINDOW_MS * fmt.bytes_per_ms
        # semantic_vad has no silence setting; 500 ms stands in for "the model judged the turn over".
        silence_needed = (td.get("silence_duration_ms") or 500) if td["type"] == "server_vad" else 500
        while len(self._vad_pending) >= window:
            # Positions count all audio since the session started, as the service's do.
            start_ms = self._input_ms - fmt.ms(len(self._vad_pending))
            frame = bytes(self._vad_pending[:window])
            del self._vad_pending[:window]
            end_ms = start_ms + VAD_WINDOW_MS
            loud = rms(decode(frame, fmt)) > self.fake.vad_threshold
            if loud:
                self._silence_ms = 0.0
                if not self._in_speech:
                    self._in_speech = True
                    prefix = td.get("prefix_padding_ms") or 0
                    self._buffer_ms = min(self._buffer_ms, prefix + VAD_WINDOW_MS)
                    await self._speech_started(td, round(start_ms))
            elif self._in_speech:
                self._silence_ms += VAD_WINDOW_MS
                if self._silence_ms >= silence_needed:
                    self._in_speech = False
                    self._silence_ms = 0.0
                    await self._speech_stopped(td, round(end_ms))

    async def _speech_started(self, td: dict[str, Any], audio_start_ms: int) -> None:
        self._speech_item_id = self.fake._new_id("item")
        await self.send_event(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        if self.active_response is not None and td.get("interrupt_response", True) is not False:
            await self._cancel_active("turn_detected")

    async def _speech_stopped(self, td: dict[str, Any], audio_end_ms: int) -> None:
        item_id = self._speech_item_id or self.fake._new_id("item")
        self._speech_item_id = None
        await self.send_event(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        await self._commit(item_id)
        if td.get("create_response", True) is not False and self.active_response is None:
            self._start_response(None, None)

    async def _commit(self, item_id: str) -> None:
        previous = next(reversed(self.items), None)
        audio_ms = self._buffer_ms
        self._buffer_ms = 0.0
        self._ctx_audio_tokens += math.ceil(audio_ms / 100)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.items[item_id] = item
        await self.send_event(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        await self.send_event(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        await self.send_event(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        if self.state["audio"]["input"].get("transcription"):
            self._spawn(self._transcribe(item_id, audio_ms))

    async def _transcribe(self, item_id: str, audio_ms: float) -> None:
        # A timer on purpose: the real transcript arrives asynchronously, often after the reply began.
        await asyncio.sleep(self._knob("transcription_delay_ms") / 1000)
        queue = self._queue("caller_transcripts")
        text = queue.pop(0) if queue else DEFAULT_CALLER_TRANSCRIPT
        item = self.items.get(item_id)
        if item is not None:
            item["content"][0]["transcript"] = text
        self._ctx_text_tokens += _tokens(text)
        await self.send_event(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": text,
            }
        )
        await self.send_event(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": round(audio_ms / 1000, 3)},
            }
        )

    async def _on_input_audio_buffer_commit(self, data: dict[str, Any], eid: str | None) -> None:
        if self._buffer_ms < 100:
            await self.send_error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {self._buffer_ms:.2f}ms of audio.",
                None,
                eid,
            )
            return
        item_id = self._speech_item_id or self.fake._new_id("item")
        self._reset_vad()
        await self._commit(item_id)

    async def _on_input_audio_buffer_clear(self, data: dict[str, Any], eid: str | None) -> None:
        self._buffer_ms = 0.0
        self._reset_vad()
        await self.send_event({"type": "input_audio_buffer.cleared"})

    def _reset_vad(self) -> None:
        self._vad_pending.clear()
        self._in_speech = False
        self._silence_ms = 0.0
        self._speech_item_id = None

    async def _on_output_audio_buffer_clear(self, data: dict[str, Any], eid: str | None) -> None:
        await self.send_error(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            None,
            eid,
        )

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
            self._ctx_text_tokens += _tokens(item.get("output", ""))
        else:
            self._ctx_text_tokens += _tokens(json.dumps(item.get("content", item.get("arguments", ""))))
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

    async def _on_response_create(self, data: dict[str, Any], eid: str | None) -> None:
        if self.active_response is not None:
            await self.send_error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active_response.id}. "
                "Wait until the response is finished before creating a new one.",
                None,
                eid,
            )
            return
        params = data.get("response") or {}
        self._start_response(params.get("instructions"), params.get("output_modalities"))

    async def _on_response_cancel(self, data: dict[str, Any], eid: str | None) -> None:
        wanted = data.get("response_id")
        active = self.active_response
        if active is None or active.finishing or (wanted and wanted != active.id):
            await self.send_error(
                "response_cancel_not_active", "Cancellation failed: no active response found", None, eid
            )
            return
        await self._cancel_active("client_cancelled")

    # -- responses ---------------------------------------------------------------------------------

    def _start_response(self, instructions: str | None, modalities: list[str] | None) -> _Response:
        resp = _Response(
            id=self.fake._new_id("resp"),
            instructions=instructions,
            modalities=list(modalities or self.state.get("output_modalities") or ["audio"]),
        )
        self.active_response = resp
        self._responses_started += 1
        resp.task = self._spawn(self._run_response(resp))
        return resp

    async def _cancel_active(self, reason: str) -> None:
        """Stop the streaming response; returns once its `response.done` (cancelled) went out."""
        resp = self.active_response
        if resp is None or resp.finishing or resp.cancel_reason:
            return
        resp.cancel_reason = reason
        resp.stop.set()
        if resp.task is not None and resp.task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await asyncio.shield(resp.task)

    async def _pause(self, resp: _Response, until: float) -> None:
        delay = until - time.monotonic()
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resp.stop.wait(), delay)

    def _response_object(
        self, resp: _Response, status: str, usage: dict | None = None, details: dict | None = None
    ) -> dict[str, Any]:
        out = self.state["audio"]["output"]
        return {
            "id": resp.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": copy.deepcopy(resp.output),
            "conversation_id": f"conv_{self.id[5:]}",
            "output_modalities": resp.modalities,
            "max_output_tokens": self.state.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": copy.deepcopy(out["format"]), "voice": out["voice"]}},
            "usage": usage,
            "metadata": None,
        }

    def _usage(self, resp: _Response, out_audio_ms: float, out_text: str) -> dict[str, Any]:
        instructions = resp.instructions if resp.instructions is not None else self.state.get("instructions", "")
        text_in = (
            12 + _tokens(instructions) + _tokens(json.dumps(self.state.get("tools") or [])) + self._ctx_text_tokens
        )
        audio_in = self._ctx_audio_tokens
        input_tokens = text_in + audio_in
        cached = min(input_tokens, (self._last_input_tokens // 64) * 64)
        cached_text = min(cached, text_in)
        self._last_input_tokens = input_tokens
        audio_out = round(out_audio_ms / 50)
        text_out = _tokens(out_text)
        return {
            "total_tokens": input_tokens + audio_out + text_out,
            "input_tokens": input_tokens,
            "output_tokens": audio_out + text_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": cached - cached_text,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    async def _run_response(self, resp: _Response) -> None:
        try:
            await self._stream_response(resp)
        except ConnectionClosed:
            pass
        finally:
            if self.active_response is resp:
                self.active_response = None

    async def _finish_response(self, resp: _Response, status: str, usage: dict, details: dict | None) -> None:
        response = self._response_object(resp, status, usage, details)
        self.responses.append(response)
        if self.active_response is resp:
            self.active_response = None
        await self.send_event({"type": "response.done", "response": response})

    async def _stream_response(self, resp: _Response) -> None:
        await self.send_event({"type": "response.created", "response": self._response_object(resp, "in_progress")})
        await self.send_event(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                    {"name": "tokens", "limit": 800000, "remaining": 795000, "reset_seconds": 0.375},
                ],
            }
        )
        failure = self._knob("error_on_response")
        if failure:
            error = {"type": "server_error", "code": None, "message": "The server had an error.", **failure}
            resp.finishing = True
            await self._finish_response(resp, "failed", self._usage(resp, 0, ""), {"type": "failed", "error": error})
            return
        calls = self._queue("reply_tool_calls")
        planned = calls.pop(0) if calls else None
        if isinstance(planned, dict):
            await self._stream_function_call(resp, planned)
        else:
            await self._stream_message(resp)

    def _next_reply_text(self, resp: _Response) -> str:
        queue = self._queue("reply_texts")
        if queue:
            return queue.pop(0)
        if resp.instructions:
            return _reply_from_instructions(resp.instructions)
        return DEFAULT_REPLY

    async def _stream_message(self, resp: _Response) -> None:
        text = self._next_reply_text(resp)
        audio_mode = "audio" in resp.modalities
        fmt = self.output_format
        planned_ms = float(self._knob("answer_ms")) if audio_mode else 0.0
        item_id = self.fake._new_id("item")
        previous = next(reversed(self.items), None)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.items[item_id] = item
        ids = {"response_id": resp.id, "item_id": item_id, "output_index": 0, "content_index": 0}
        resp.output = [item]
        if audio_mode:
            self._audio_items[item_id] = _AudioItem(fmt, planned_ms, text)
            self.sent_audio[item_id] = bytearray()
        await self.send_event(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        part = {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
        await self.send_event({"type": "response.content_part.added", **ids, "part": part})

        audio = tone(fmt, planned_ms) if audio_mode else b""
        chunk_ms = float(self._knob("chunk_ms"))
        step = max(fmt.bytes_per_sample, int(chunk_ms * fmt.sample_rate / 1000) * fmt.bytes_per_sample)
        chunks = [audio[i : i + step] for i in range(0, len(audio), step)] if audio_mode else [b""] * 5
        n = max(1, len(chunks))
        pieces = [text[round(len(text) * k / n) : round(len(text) * (k + 1) / n)] for k in range(n)]
        interval = float(self._knob("chunk_interval_ms")) / 1000
        await self._pause(resp, time.monotonic() + float(self._knob("first_delta_delay_ms")) / 1000)
        said = ""
        produced_ms = 0.0
        start = time.monotonic()
        for k in range(n):
            if resp.cancel_reason:
                break
            if audio_mode and k < len(chunks):
                chunk = chunks[k]
                await self.send_event(
                    {
                        "type": "response.output_audio.delta",
                        **ids,
                        "delta": base64.b64encode(chunk).decode("ascii"),
                    }
                )
                self.sent_audio[item_id] += chunk
                self._audio_items[item_id].produced_bytes += len(chunk)
                produced_ms += fmt.ms(len(chunk))
            if pieces[k]:
                kind = "response.output_audio_transcript.delta" if audio_mode else "response.output_text.delta"
                await self.send_event({"type": kind, **ids, "delta": pieces[k]})
                said += pieces[k]
            if k < n - 1 and interval > 0:
                await self._pause(resp, start + (k + 1) * interval)
        key = "transcript" if audio_mode else "text"
        content_type = "output_audio" if audio_mode else "output_text"
        if resp.cancel_reason:
            resp.finishing = True
            item["status"] = "incomplete"
            item["content"] = [{"type": content_type, key: said}]
            resp.output = [copy.deepcopy(item)]
            self._ctx_audio_tokens += round(produced_ms / 50)
            await self._finish_response(
                resp,
                "cancelled",
                self._usage(resp, produced_ms, said),
                {"type": "cancelled", "reason": resp.cancel_reason},
            )
            return
        resp.finishing = True
        if audio_mode:
            await self.send_event({"type": "response.output_audio.done", **ids})
            await self.send_event({"type": "response.output_audio_transcript.done", **ids, "transcript": text})
            await self.send_event(
                {"type": "response.content_part.done", **ids, "part": {"type": "audio", "transcript": text}}
            )
        else:
            await self.send_event({"type": "response.output_text.done", **ids, "text": text})
            await self.send_event({"type": "response.content_part.done", **ids, "part": {"type": "text", "text": text}})
        item["status"] = "completed"
        item["content"] = [{"type": content_type, key: text}]
        resp.output = [copy.deepcopy(item)]
        await self.send_event(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        usage = self._usage(resp, produced_ms, text)
        self._ctx_audio_tokens += round(produced_ms / 50)
        self._ctx_text_tokens += 0 if audio_mode else _tokens(text)
        await self._finish_response(resp, "completed", usage, None)

    async def _stream_function_call(self, resp: _Response, call: dict[str, Any]) -> None:
        name = call["name"]
        arguments = call.get("arguments", {})
        arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = call.get("call_id") or f"call_{secrets.token_hex(8)}"
        item_id = self.fake._new_id("item")
        previous = next(reversed(self.items), None)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": call_id,
            "arguments": "",
        }
        self.items[item_id] = item
        resp.output = [item]
        await self.send_event(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        ids = {"response_id": resp.id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            if resp.cancel_reason:
                break
            if piece:
                await self.send_event({"type": "response.function_call_arguments.delta", **ids, "delta": piece})
        if resp.cancel_reason:
            resp.finishing = True
            item["status"] = "incomplete"
            resp.output = [copy.deepcopy(item)]
            await self._finish_response(
                resp,
                "cancelled",
                self._usage(resp, 0, ""),
                {"type": "cancelled", "reason": resp.cancel_reason},
            )
            return
        resp.finishing = True
        await self.send_event(
            {"type": "response.function_call_arguments.done", **ids, "name": name, "arguments": arguments}
        )
        item.update(status="completed", arguments=arguments)
        resp.output = [copy.deepcopy(item)]
        self.function_calls.append(copy.deepcopy(item))
        await self.send_event(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        usage = self._usage(resp, 0, name + arguments)
        self._ctx_text_tokens += _tokens(name + arguments)
        await self._finish_response(resp, "completed", usage, None)

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
                self._log_line(f"!! task failed: {exc!r}")

    def _finish(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.close_code = self.ws.close_code
        self.close_reason = self.ws.close_reason
        self._received.close()
        self._sent.close()
        self._flush_log()
        self._log_line(f"-- closed code={self.close_code} reason={self.close_reason!r}")
        self.closed.set()

    # -- console log (standalone runner) -----------------------------------------------------------

    def _log_line(self, line: str) -> None:
        if self.fake.log is not None:
            self.fake.log(f"[{self.id[-6:]}] {line}")

    def _flush_log(self) -> None:
        for (arrow, type_), (count, ms) in self._log_pending.items():
            audio = f" ({ms:.0f} ms audio)" if type_ in AUDIO_EVENTS else ""
            self._log_line(f"{arrow} {type_} x{int(count)}{audio}")
        self._log_pending.clear()

    def _log(self, arrow: str, event: dict[str, Any]) -> None:
        if self.fake.log is None:
            return
        type_ = event.get("type") or "?"
        if type_ in STREAM_EVENTS:
            entry = self._log_pending.setdefault((arrow, type_), [0, 0.0])
            entry[0] += 1
            if type_ in AUDIO_EVENTS:
                fmt = self.input_format if arrow == "<<" else self.output_format
                b64 = event.get("audio") if arrow == "<<" else event.get("delta")
                entry[1] += fmt.ms(len(b64) * 3 // 4 if isinstance(b64, str) else 0)
            if entry[0] >= 250:
                self._flush_log()
            return
        self._flush_log()
        detail = ""
        if type_ == "error":
            err = event.get("error") or {}
            detail = f" {err.get('code')}: {err.get('message')}"
        elif type_ == "response.done":
            r = event.get("response") or {}
            detail = f" {r.get('status')} {((r.get('status_details') or {}).get('reason')) or ''}".rstrip()
        elif type_ in (
            "response.output_audio_transcript.done",
            "conversation.item.input_audio_transcription.completed",
        ):
            detail = f" {event.get('transcript')!r}"
        elif type_ in ("session.update", "session.updated"):
            audio = (event.get("session") or {}).get("audio") or {}
            fmt_in = (audio.get("input") or {}).get("format")
            fmt_out = (audio.get("output") or {}).get("format")
            detail = f" in={fmt_in} out={fmt_out}"
        self._log_line(f"{arrow} {type_}{detail}")


# ---------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------


class FakeRealtimeServer:
    """A local stand-in for wss://api.openai.com/v1/realtime (GA), one FakeSession per connection.

    All knobs are plain attributes and may be changed while the server runs.
    """

    session_class: type[FakeSession] = FakeSession  # the benchmark substitutes a leaner subclass

    def __init__(
        self,
        api_key: str | None = "sk-test",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        answer_ms: float = 1500,
        chunk_ms: float = 100,
        chunk_interval_ms: float = 20,
        first_delta_delay_ms: float = 0,
        transcription_delay_ms: float = 150,
        vad_threshold: float = 500,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.api_key = api_key  # None: any bearer token is accepted
        self.host = host
        self.port = port
        self.log = log
        self.models: tuple[str, ...] | list[str] = MODELS
        # what the assistant says and does
        self.answer_ms = answer_ms
        self.chunk_ms = chunk_ms
        self.chunk_interval_ms = chunk_interval_ms
        self.first_delta_delay_ms = first_delta_delay_ms
        self.transcription_delay_ms = transcription_delay_ms
        self.vad_threshold = vad_threshold
        self.reply_texts: list[str] = []
        self.caller_transcripts: list[str] = []
        self.reply_tool_calls: list[Any] = []
        # failure modes
        self.handshake_status: int | None = None
        self.handshake_body: dict[str, Any] | str | None = None
        self.hang_on_connect: bool | float = False
        self.close_after_ms: float | None = None
        self.reject_session_update = False
        self.never_answer_session_update = False
        self.error_on_response: dict[str, Any] | None = None
        # False skips the GA schema check of well-formed events: the benchmark's CPU budget, never tests.
        self.validate = True
        # records
        self.sessions: list[FakeSession] = []
        self.handshakes: list[HandshakeRecord] = []
        self._server: Server | None = None
        self._ids = itertools.count(1)
        self._next_index = 0
        self._sessions_changed = asyncio.Condition()
        self._stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> Self:
        self._stopping.clear()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            open_timeout=None,  # hang_on_connect must be able to hang; clients carry their own timeout
            max_size=16 * 2**20,  # the service accepts appends up to 15 MiB
            compression=None,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is None:
            return
        server, self._server = self._server, None
        for session in self.sessions:
            for task in list(session._tasks):
                task.cancel()
        server.close()
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The OPENAI_REALTIME_URL to point a client at (it adds ?model=...)."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    def url_for(self, model: str = "gpt-realtime-2.1") -> str:
        return f"{self.url}?model={model}"

    async def next_session(self, timeout: float = 5) -> FakeSession:
        """The next connection not yet handed out by this method, waiting for it if needed."""
        async with self._sessions_changed:
            await asyncio.wait_for(
                self._sessions_changed.wait_for(lambda: len(self.sessions) > self._next_index), timeout
            )
            session = self.sessions[self._next_index]
            self._next_index += 1
            return session

    def drop_connection(self, session: FakeSession | None = None) -> int:
        """Abort TCP (no close frame) for one session, or for every open one; returns how many."""
        targets = [session] if session is not None else [s for s in self.sessions if not s.closed.is_set()]
        for s in targets:
            s.drop()
        return len(targets)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    # -- handshake ---------------------------------------------------------------------------------

    def _json_response(self, conn: ServerConnection, status: int, body: Any) -> Response:
        text = body if isinstance(body, str) else json.dumps(body)
        response = conn.respond(status, text)
        if not isinstance(body, str):
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
        return response

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        hang = self.hang_on_connect
        if hang is True or (hang and not isinstance(hang, bool)):
            delay = None if hang is True else float(hang)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n")
        headers = dict(request.headers.raw_items())
        status = self._handshake_status(request)
        self.handshakes.append(HandshakeRecord(time.monotonic(), request.path, headers, status))
        if self.log is not None:
            self.log(f"HTTP {request.path} -> {status}")
        if status == 101:
            return None
        body = self.handshake_body if status == self.handshake_status and self.handshake_body else None
        return self._json_response(conn, status, body if body is not None else _error_body(status))

    def _handshake_status(self, request: Request) -> int:
        if self.handshake_status:
            return self.handshake_status
        if urlsplit(request.path).path != "/v1/realtime":
            return 404
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401
        if self.api_key is not None and token.strip() != self.api_key:
            return 401
        return 101

    # -- connection --------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
        model = (query.get("model") or [None])[0]
        session = self.session_class(self, ws, model)
        async with self._sessions_changed:
            self.sessions.append(session)
            self._sessions_changed.notify_all()
        session._log_line(f"-- connected model={model}")
        try:
            beta = ws.request.headers.get("OpenAI-Beta", "") if ws.request else ""
            if "realtime=v1" in beta:
                session.rejected = "beta_api_shape_disabled"
                session.errors.append(dict(BETA_ERROR))
                await session.send_event({"type": "error", "error": dict(BETA_ERROR)})
                await ws.close(4000, "invalid_request_error.beta_api_shape_disabled")
                return
            if model not in self.models:
                session.rejected = "model_not_found"
                await session.send_error(
                    "model_not_found",
                    f"The model '{model}' does not exist or you do not have access to it.",
                    "model",
                )
                await ws.close(1008, "invalid_request_error.model_not_found")
                return
            await session.send_event({"type": "session.created", "session": copy.deepcopy(session.state)})
            if self.close_after_ms is not None:
                session._spawn(self._close_later(session, self.close_after_ms))
            async for message in ws:
                await session._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            session._finish()

    async def _close_later(self, session: FakeSession, ms: float) -> None:
        await asyncio.sleep(ms / 1000)
        await session.ws.close(1011, "internal_error")


# ---------------------------------------------------------------------------------------------------
# Standalone runner (also used by `manage.py fake_openai`)
# ---------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options shared by `python -m calls.fake_realtime` and the management command."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=None, help="require this bearer key (default: accept any)")
    parser.add_argument("--answer-ms", type=float, default=1500, help="length of each spoken reply")
    parser.add_argument("--chunk-ms", type=float, default=100, help="audio per output delta")
    parser.add_argument("--chunk-interval-ms", type=float, default=20, help="time between deltas")
    parser.add_argument("--first-delta-delay-ms", type=float, default=0)
    parser.add_argument("--transcription-delay-ms", type=float, default=150)
    parser.add_argument("--vad-threshold", type=float, default=500, help="RMS of 16-bit samples")
    parser.add_argument("--reply-text", action="append", default=[], help="reply texts, in order")
    parser.add_argument("--caller-transcript", action="append", default=[], help="caller transcripts, in order")
    parser.add_argument("--quiet", action="store_true", help="do not print events")


def server_from_options(options: Mapping[str, Any], log: Callable[[str], None] | None = None) -> FakeRealtimeServer:
    """A FakeRealtimeServer configured from parsed add_arguments() options."""
    fake = FakeRealtimeServer(
        api_key=options.get("api_key"),
        host=options.get("host", "127.0.0.1"),
        port=options.get("port", 8765),
        answer_ms=options.get("answer_ms", 1500),
        chunk_ms=options.get("chunk_ms", 100),
        chunk_interval_ms=options.get("chunk_interval_ms", 20),
        first_delta_delay_ms=options.get("first_delta_delay_ms", 0),
        transcription_delay_ms=options.get("transcription_delay_ms", 150),
        vad_threshold=options.get("vad_threshold", 500),
        log=None if options.get("quiet") else log,
    )
    fake.reply_texts = list(options.get("reply_text") or [])
    fake.caller_transcripts = list(options.get("caller_transcript") or [])
    return fake


async def run_forever(fake: FakeRealtimeServer, announce: Callable[[str], None] = print) -> None:
    """Serve until cancelled (Ctrl-C)."""
    async with fake:
        key = "any bearer key" if fake.api_key is None else "bearer key required"
        announce(f"Fake OpenAI Realtime GA listening; {key}.")
        announce(f"  OPENAI_REALTIME_URL={fake.url}")
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m calls.fake_realtime", description=__doc__.splitlines()[0])
    add_arguments(parser)
    options = vars(parser.parse_args(argv))

    def log(line: str) -> None:
        print(line, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(server_from_options(options, log), announce=log))


if __name__ == "__main__":
    main(sys.argv[1:])
