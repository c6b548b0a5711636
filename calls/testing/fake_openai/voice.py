"""How the fake OpenAI hears the caller and what it says back.

Turn-taking needs only one judgement per stretch of caller audio: speech or not. A
`VoiceDetector` makes it; the default one measures loudness in 20 ms windows, like a simple
server VAD. A harness that already knows which frames are speech (the benchmark writes it into
each frame) plugs in its own detector through `FakeRealtimeServer.voice_detector` and saves
the decoding. What the fake says is `tone()`: deterministic, clearly non-silent audio.
"""

from __future__ import annotations

import array
import binascii
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from assistants.audio_formats import AudioFormat
from calls.live.audio import decode, encode, rms

if TYPE_CHECKING:
    from calls.testing.fake_openai.session import FakeSession

VAD_WINDOW_MS = 20


class VoiceDetector(Protocol):
    """One session's judge of caller audio; made per session by `FakeRealtimeServer.voice_detector`."""

    def hear(self, audio: str, nbytes: int, fmt: AudioFormat) -> Iterable[tuple[bool, float]]:
        """(is speech, ms) for each stretch of audio judged so far, in order.

        Called once per appended chunk, with its base64 text (as it came) and its length in bytes;
        a detector may hold back audio until it has a whole window.
        """
        ...

    def reset(self) -> None:
        """Forget held-back audio (the buffer was committed or cleared, or the format changed)."""
        ...


class EnergyVoiceDetector:
    """Speech is a 20 ms window whose RMS (of 16-bit samples) exceeds the server's `vad_threshold`."""

    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self._pending = bytearray()

    def hear(self, audio: str, nbytes: int, fmt: AudioFormat) -> list[tuple[bool, float]]:
        pending = self._pending
        pending += binascii.a2b_base64(audio)
        window = VAD_WINDOW_MS * fmt.bytes_per_ms
        if len(pending) < window:
            return []
        threshold = self.session.fake.vad_threshold
        out = []
        while len(pending) >= window:
            frame = bytes(pending[:window])
            del pending[:window]
            out.append((rms(decode(frame, fmt)) > threshold, VAD_WINDOW_MS))
        return out

    def reset(self) -> None:
        self._pending.clear()


_TONE_CACHE: dict[tuple[str, int, float, int], bytes] = {}


def tone(fmt: AudioFormat, ms: float, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """Deterministic, clearly non-silent wire audio: what the fake 'says'."""
    n = int(ms * fmt.sample_rate / 1000)
    key = (fmt.name, n, freq, amplitude)
    if key not in _TONE_CACHE:
        step = 2 * math.pi * freq / fmt.sample_rate
        samples = array.array("h", (int(amplitude * math.sin(step * i)) for i in range(n)))
        _TONE_CACHE[key] = encode(samples, fmt)
    return _TONE_CACHE[key]
