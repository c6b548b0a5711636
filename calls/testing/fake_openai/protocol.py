"""The GA protocol as the fake OpenAI checks it: client-event validation, defaults, error bodies.

Every client event is parsed with the `openai` package's GA models plus the checks the SDK
leaves out (unknown keys, the pcm rate, mixed output modalities), and a rejected event gets the
error the real service would send, phrased like it. The default session and the HTTP error
bodies are the service's too, so a client tested against the fake meets no surprise in production.
"""

from __future__ import annotations

import http
import json
import time
import typing
from typing import Annotated, Any

import orjson
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from openai.types.realtime.realtime_audio_formats import AudioPCM
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

MODELS = (
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2",
    "gpt-realtime-1.5",
    "gpt-realtime",
    "gpt-realtime-mini",
)
BETA_ERROR = {
    "type": "invalid_request_error",
    "code": "beta_api_shape_disabled",
    "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
    "param": None,
}
AUDIO_EVENTS = frozenset(("input_audio_buffer.append", "response.output_audio.delta"))
#: Events that come many to a turn: logged as one summary line per burst, and the ones a fake
#: under load does not keep (FakeRealtimeServer.record_stream_events).
STREAM_EVENTS = frozenset(
    (
        *AUDIO_EVENTS,
        "response.output_audio_transcript.delta",
        "response.output_text.delta",
        "response.function_call_arguments.delta",
    )
)

_CLIENT_TA: TypeAdapter[Any] = TypeAdapter(Annotated[RealtimeClientEvent, Field(discriminator="type")])
_SERVER_TA: TypeAdapter[Any] = TypeAdapter(Annotated[RealtimeServerEvent, Field(discriminator="type")])
# Union members the smart union also tries; their errors only matter if the input chose them.
_SECONDARY_BRANCHES = {"RealtimeTranscriptionSessionCreateRequest": "transcription"}


def _event_types(union: Any) -> frozenset[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return frozenset(t for m in members for t in typing.get_args(m.model_fields["type"].annotation))


#: What a client may send; every other event type travels from the server (the two sets are disjoint).
CLIENT_EVENT_TYPES = _event_types(RealtimeClientEvent)
SERVER_EVENT_TYPES = _event_types(RealtimeServerEvent)


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


def parse_client_frame(raw: str | bytes) -> dict[str, Any]:
    """The JSON object of one client frame, or ClientEventError as the service reports bad JSON."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ClientEventError(
            "invalid_json", "We could not parse the JSON body of your request. Expected a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise ClientEventError("invalid_json", "Expected the event to be a JSON object.")
    return data


def validate_client_event(raw: str | bytes) -> BaseModel:
    """Parse one client frame as the GA service would, or raise ClientEventError."""
    return validate_client_dict(parse_client_frame(raw))


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


TURN_DETECTION_DEFAULTS: dict[str, dict[str, Any]] = {
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
                "turn_detection": dict(TURN_DETECTION_DEFAULTS["server_vad"]),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
    }


_HTTP_ERRORS: dict[int, tuple[str, str, str | None]] = {
    401: (
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
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
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_event(status: int) -> dict[str, Any]:
    """The JSON body the real API answers an HTTP request with `status` with (`{"error": {...}}`)."""
    message, type_, code = _HTTP_ERRORS.get(status, (http.HTTPStatus(status).phrase, "server_error", None))
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def dumps(event: dict[str, Any]) -> str:
    """One event as the compact JSON text the service sends."""
    return orjson.dumps(event).decode()
