"""The audio formats an assistant can speak in, as 46elks and OpenAI Realtime name them.

The bridge never transcodes: the same format is declared on both sides and bytes pass through.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    """One wire format, named as the Assistant stores it."""

    name: str  # also the 46elks format string
    openai: dict  # GA `audio.*.format` object
    sample_rate: int
    bytes_per_sample: int

    @property
    def bytes_per_ms(self) -> int:
        return self.sample_rate * self.bytes_per_sample // 1000

    def ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_ms


PCM_24000 = AudioFormat("pcm_24000", {"type": "audio/pcm", "rate": 24000}, 24000, 2)
ULAW = AudioFormat("ulaw", {"type": "audio/pcmu"}, 8000, 1)
ALAW = AudioFormat("alaw", {"type": "audio/pcma"}, 8000, 1)

FORMATS: dict[str, AudioFormat] = {f.name: f for f in (PCM_24000, ULAW, ALAW)}


def format_for_openai(obj: dict | None) -> AudioFormat | None:
    """The AudioFormat an OpenAI format object describes, or None if we do not bridge it."""
    if not isinstance(obj, dict):
        return None
    for fmt in FORMATS.values():
        if obj.get("type") == fmt.openai["type"] and obj.get("rate", fmt.openai.get("rate")) == fmt.openai.get("rate"):
            return fmt
    return None
