"""What else happens around a call (metrics, live dashboard, recordings, costs) hooks in here.

An observer is told about a call's events on the event loop. It must return quickly and never
touch the database inline: queue work instead. Only observers with `wants_audio` are told about
audio, and then per frame, so they must be cheap (append to a buffer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import CallHandle, Outcome, TranscriptLine

log = logging.getLogger(__name__)


class CallObserver:
    """Base class: every hook is optional."""

    wants_audio = False

    def started(self, session: CallHandle) -> None:
        """The call has a record and an assistant, and OpenAI is being connected."""

    def transcript(self, session: CallHandle, line: TranscriptLine) -> None:
        """A transcript line was queued for writing (also when it is rewritten after a cut)."""

    def speech_stopped(self, session: CallHandle, at: float) -> None:
        """OpenAI's VAD says the caller stopped speaking (start of a turn's latency)."""

    def first_audio(self, session: CallHandle, at: float, response_id: str | None) -> None:
        """The first audio of a response was handed to 46elks."""

    def response_done(self, session: CallHandle, response: dict[str, Any]) -> None:
        """A `response.done` arrived (its `usage` is what OpenAI bills)."""

    def transcription_done(self, session: CallHandle, event: dict[str, Any]) -> None:
        """A caller transcription completed (its `usage` is billed separately)."""

    def openai_error(self, session: CallHandle, error: dict[str, Any]) -> None:
        """OpenAI sent an `error` event that is not one of barge-in's harmless races."""

    def interrupted(self, session: CallHandle, at: float) -> None:
        """The caller cut the assistant off; playback was cleared at `at`."""

    def caller_audio(self, session: CallHandle, b64: bytes, at: float) -> None:
        """Caller audio forwarded to OpenAI, base64 as ASCII bytes (only if `wants_audio`)."""

    def assistant_audio(self, session: CallHandle, b64: str, at: float) -> None:
        """Assistant audio handed to 46elks (only if `wants_audio`)."""

    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        """The call is over and its record is finished."""


ObserverFactory = Callable[["CallHandle"], "CallObserver | None"]
"""Builds a call's observer once the call is recorded (None: this call needs none)."""


def safe(observer: CallObserver, hook: str, *args: Any) -> None:
    """Call a hook; an observer's bug is logged and never reaches the call."""
    try:
        getattr(observer, hook)(*args)
    except Exception:
        log.exception("call observer %s.%s failed", type(observer).__name__, hook)
