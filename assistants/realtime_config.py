"""Pure functions from an Assistant to what the OpenAI Realtime GA API is sent.

A call works from an immutable `AssistantConfig` snapshot taken when it starts, so an edit in
admin never changes a call half-way and the call never reads the database on the audio path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from assistants.audio_formats import FORMATS, AudioFormat


@dataclass(frozen=True)
class AssistantConfig:
    """Everything a call needs to know about its assistant."""

    id: int | None
    name: str
    instructions: str
    welcome_message: str = ""
    voice: str = "marin"
    model: str = "gpt-realtime-2.1"
    audio_format: str = "pcm_24000"
    language: str = ""
    transcription_model: str = "gpt-4o-mini-transcribe"
    turn_detection: str = "server_vad"
    vad_threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str = "auto"
    allow_interruptions: bool = True
    noise_reduction: str = "near_field"
    speed: float = 1.0
    max_call_minutes: int = 30
    silence_timeout_seconds: int = 20
    end_call_enabled: bool = True
    transfer_number: str = ""
    time_zone: str = "Europe/Stockholm"
    datetime_tool_enabled: bool = True
    record_calls: bool = False
    revision_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> AudioFormat:
        return FORMATS[self.audio_format]

    @classmethod
    def from_assistant(cls, assistant: Any) -> AssistantConfig:
        """Snapshot of a model instance (or anything with the same attributes)."""
        names = [f for f in cls.__dataclass_fields__ if f not in ("id", "extra", "revision_id")]
        return cls(
            id=assistant.pk,
            revision_id=getattr(assistant, "current_revision_id", None),
            **{n: getattr(assistant, n) for n in names},
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def turn_detection(cfg: AssistantConfig) -> dict[str, Any]:
    """The GA turn_detection object; with interruptions off the caller cannot cut the assistant off."""
    common = {"create_response": True, "interrupt_response": bool(cfg.allow_interruptions)}
    if cfg.turn_detection == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": cfg.eagerness, **common}
    return {
        "type": "server_vad",
        "threshold": float(cfg.vad_threshold),
        "prefix_padding_ms": int(cfg.prefix_padding_ms),
        "silence_duration_ms": int(cfg.silence_duration_ms),
        **common,
    }


def transcription(cfg: AssistantConfig) -> dict[str, Any] | None:
    if cfg.transcription_model == "off":
        return None
    out: dict[str, Any] = {"model": cfg.transcription_model}
    if cfg.language:
        out["language"] = cfg.language
    return out


def session_update(cfg: AssistantConfig, *, tools: list[dict] | None = None) -> dict[str, Any]:
    """The GA `session.update` event that configures a call's session."""
    fmt = dict(cfg.format.openai)
    session: dict[str, Any] = {
        "type": "realtime",
        "model": cfg.model,
        "output_modalities": ["audio"],
        "instructions": cfg.instructions,
        "audio": {
            "input": {
                "format": fmt,
                "noise_reduction": None if cfg.noise_reduction == "off" else {"type": cfg.noise_reduction},
                "transcription": transcription(cfg),
                "turn_detection": turn_detection(cfg),
            },
            "output": {"format": dict(fmt), "voice": cfg.voice, "speed": float(cfg.speed)},
        },
    }
    if tools is not None:
        session["tools"] = tools
        session["tool_choice"] = "auto"
    return {"type": "session.update", "session": session}


def greeting(cfg: AssistantConfig) -> dict[str, Any] | None:
    """The `response.create` that makes the assistant speak first, or None to let the caller start."""
    text = cfg.welcome_message.strip()
    if not text:
        return None
    return {
        "type": "response.create",
        "response": {
            "instructions": (
                f"Greet the caller by saying exactly the following, word for word, and nothing else:\n{text}"
            )
        },
    }


def echoed_formats_match(cfg: AssistantConfig, session: dict[str, Any]) -> str | None:
    """Compare the formats echoed in `session.updated` with the ones asked for; a message if they differ.

    A rejected or partly applied update leaves the session on 24 kHz PCM, which a µ-law caller hears
    as static: better to end the call than to play noise.
    """
    audio = session.get("audio") or {}
    want = cfg.format.openai
    for side in ("input", "output"):
        got = ((audio.get(side) or {}).get("format")) or {}
        if got.get("type") != want["type"] or got.get("rate", want.get("rate")) != want.get("rate"):
            return f"OpenAI configured audio.{side}.format={got!r}, not {want!r}"
    return None
