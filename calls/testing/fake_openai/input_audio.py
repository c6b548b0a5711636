"""The caller's side of a fake OpenAI session: the input audio buffer, voice activity, transcription.

A mixin of FakeSession. An appended chunk is counted and judged by the session's voice detector
at once (no await); only when the judgement starts or ends the caller's turn is there anything
to send, and that part comes back as a coroutine. A turn that ends commits the buffer, adds the
user item, transcribes it on a timer (the real transcript arrives after the reply has started)
and, as server VAD does, starts the reply.
"""

from __future__ import annotations

import asyncio
import binascii
import copy
import math
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from calls.testing.fake_openai.responses import tokens

if TYPE_CHECKING:
    from calls.testing.fake_openai.session import FakeSession
    from calls.testing.fake_openai.voice import VoiceDetector

DEFAULT_CALLER_TRANSCRIPT = "Hello, I'd like some help."
# semantic_vad has no silence setting; 500 ms stands in for "the model judged the turn over".
SEMANTIC_SILENCE_MS = 500


def b64_nbytes(text: str) -> int:
    """Bytes a base64 text encodes, from its length alone."""
    n = len(text)
    return n // 4 * 3 - (n > 0 and text[-1] == "=") - (n > 1 and text[-2] == "=") if n else 0


# One turn change found in a chunk: (speech started?, position ms, item id, committed audio ms).
Turn = tuple[bool, int, str, float]


class InputAudio:
    """Input audio buffer handling for FakeSession (see the module docstring)."""

    def _init_input_audio(self: FakeSession) -> None:
        self._detector: VoiceDetector = self.fake.voice_detector(self)
        self._buffer_ms = 0.0  # uncommitted audio
        self._input_ms = 0.0  # all input audio so far: positions count from the session's start
        self._heard_ms = 0.0  # the part of it the detector has judged
        self._in_speech = False
        self._silence_ms = 0.0
        self._speech_item_id: str | None = None

    def _take_audio(self: FakeSession, data: dict[str, Any], eid: str | None) -> Coroutine[Any, Any, None] | None:
        audio = data["audio"]
        fake = self.fake
        fmt = self.input_format
        if fake.validate or fake.keep_audio:
            try:
                chunk = binascii.a2b_base64(audio, strict_mode=True)
            except (binascii.Error, ValueError, TypeError):
                return self.send_error(
                    "invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio", eid
                )
            if fake.keep_audio:
                self.input_audio += chunk
            nbytes = len(chunk)
        else:  # under load: decoding every chunk would be most of its cost
            nbytes = b64_nbytes(audio)
        self.input_bytes += nbytes
        ms = fmt.ms(nbytes)
        self._buffer_ms += ms
        self._input_ms += ms
        if fake.on_audio is not None:
            fake.on_audio(self, audio)
        td = self.state["audio"]["input"]["turn_detection"]
        if not td:
            return None
        turns: list[Turn] | None = None
        for speech, window_ms in self._detector.hear(audio, nbytes, fmt):
            start = self._heard_ms
            self._heard_ms += window_ms
            if speech:
                self._silence_ms = 0.0
                if not self._in_speech:
                    self._in_speech = True
                    self._buffer_ms = min(self._buffer_ms, (td.get("prefix_padding_ms") or 0) + window_ms)
                    self._speech_item_id = fake._new_id("item")
                    turns = turns or []
                    turns.append((True, round(start), self._speech_item_id, 0.0))
            elif self._in_speech:
                self._silence_ms += window_ms
                needed = (td.get("silence_duration_ms") or 500) if td["type"] == "server_vad" else SEMANTIC_SILENCE_MS
                if self._silence_ms >= needed:
                    self._in_speech = False
                    self._silence_ms = 0.0
                    item_id = self._speech_item_id or fake._new_id("item")
                    self._speech_item_id = None
                    committed, self._buffer_ms = self._buffer_ms, 0.0
                    turns = turns or []
                    turns.append((False, round(self._heard_ms), item_id, committed))
        return None if turns is None else self._take_turns(td, turns)

    async def _take_turns(self: FakeSession, td: dict[str, Any], turns: list[Turn]) -> None:
        for started, at_ms, item_id, committed_ms in turns:
            if started:
                await self.send_event(
                    {"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms, "item_id": item_id}
                )
                if self.active_response is not None and td.get("interrupt_response", True) is not False:
                    await self._cancel_active("turn_detected")
            else:
                await self.send_event(
                    {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms, "item_id": item_id}
                )
                await self._commit(item_id, committed_ms)
                if td.get("create_response", True) is not False and self.active_response is None:
                    self._start_response(None, None)

    async def _commit(self: FakeSession, item_id: str, audio_ms: float | None = None) -> None:
        if audio_ms is None:
            audio_ms, self._buffer_ms = self._buffer_ms, 0.0
        previous = next(reversed(self.items), None)
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

    async def _transcribe(self: FakeSession, item_id: str, audio_ms: float) -> None:
        # A timer on purpose: the real transcript arrives asynchronously, often after the reply began.
        await asyncio.sleep(self._knob("transcription_delay_ms") / 1000)
        queue = self._knob("caller_transcripts")
        text = queue.pop(0) if queue else DEFAULT_CALLER_TRANSCRIPT
        item = self.items.get(item_id)
        if item is not None:
            item["content"][0]["transcript"] = text
        self._ctx_text_tokens += tokens(text)
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

    async def _on_input_audio_buffer_commit(self: FakeSession, data: dict[str, Any], eid: str | None) -> None:
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

    async def _on_input_audio_buffer_clear(self: FakeSession, data: dict[str, Any], eid: str | None) -> None:
        self._buffer_ms = 0.0
        self._reset_vad()
        await self.send_event({"type": "input_audio_buffer.cleared"})

    def _reset_vad(self: FakeSession) -> None:
        self._detector.reset()
        self._heard_ms = self._input_ms
        self._in_speech = False
        self._silence_ms = 0.0
        self._speech_item_id = None

    async def _on_output_audio_buffer_clear(self: FakeSession, data: dict[str, Any], eid: str | None) -> None:
        await self.send_error(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            None,
            eid,
        )
