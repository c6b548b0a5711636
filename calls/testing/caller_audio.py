"""What a simulated 46elks caller says and hears: caller audio scripts, WAV files, the call's result.

The caller's side of the line is a WAV file or a script of ("speech" | "silence", ms) segments,
plus speech injected live (`CallSimulator.speak`); "speech" is a deterministic voiced tone that
any energy-based voice detector takes for a talker. `CallResult` is everything observable
about one call, filled in live by the simulator, including what the caller heard, which can be
written to a WAV so a person can listen to the cut at an interrupt.
"""

from __future__ import annotations

import array
import itertools
import math
import os
import wave
from dataclasses import dataclass, field
from typing import Any

from assistants.audio_formats import FORMATS, PCM_24000
from calls.live.audio import decode, encode, resample

SPEECH_AMPLITUDE = 8000

Segment = tuple[str, float]


class SimulatorError(Exception):
    """A problem a user can cause (bad URL, refused connection, unusable WAV): one clear line."""


class WavError(SimulatorError):
    """The WAV file is missing or not 16-bit PCM."""


@dataclass
class PlayedPiece:
    """A stretch of server audio the caller heard: when it started and its wire bytes."""

    start: float
    fmt: str
    data: bytes


@dataclass
class InterruptRecord:
    """What an `interrupt` cut: the playback position of the segment at that instant."""

    at: float
    segment_played_bytes: int
    segment_played_ms: float
    discarded_bytes: int
    discarded_ms: float


@dataclass
class SyncRecord:
    """One `sync` request and when 46elks answered it (answered_at None: never, the call ended)."""

    requested_at: float
    due_at: float
    answered_at: float | None = None
    answered_early_by_interrupt: bool = False


@dataclass
class PlaybackSegment:
    """All audio accepted between two interrupts (or since the first `sending`)."""

    index: int
    started_at: float
    accepted_bytes: int = 0
    accepted_ms: float = 0.0
    played_bytes: int = 0
    played_ms: float = 0.0
    discarded_bytes: int = 0
    discarded_ms: float = 0.0
    ended_at: float | None = None
    ended_by: str | None = None  # "interrupt" | "bye" | "hangup" | "closed" | "error"


@dataclass
class CallResult:
    """Everything observable about one simulated call, filled in live while it runs."""

    callid: str
    from_: str
    to: str
    url: str
    listening_format: str | None = None
    sending_format: str | None = None  # the latest declared (valid) one
    sending_formats: list[str] = field(default_factory=list)  # every valid declaration, in order
    connected_at: float | None = None
    hello_sent_at: float | None = None
    listening_at: float | None = None
    caller_audio_started_at: float | None = None  # first caller frame; frame k leaves at this + sent_ms
    first_audio_at: float | None = None  # first *accepted* server audio
    bye_received_at: float | None = None
    bye_received: dict | None = None
    bye_sent_at: float | None = None
    bye_sent: dict | None = None
    ended_at: float | None = None
    ended_by: str | None = None  # "server" | "caller" | "server_closed" | "error" | "aborted"
    close_code: int | None = None
    close_reason: str | None = None
    error: str | None = None
    events: list[tuple[float, dict]] = field(default_factory=list)  # received, except audio
    sent: list[tuple[float, dict]] = field(default_factory=list)  # sent, except audio
    audio_chunks: list[tuple[float, int]] = field(default_factory=list)  # every server audio message
    sent_audio: bytearray = field(default_factory=bytearray)
    sent_frames: int = 0
    sent_ms: float = 0.0
    speech_started_at: list[float] = field(default_factory=list)
    played_audio: bytearray = field(default_factory=bytearray)
    played: list[PlayedPiece] = field(default_factory=list)
    received_bytes: int = 0  # accepted server audio
    received_ms: float = 0.0
    played_ms: float = 0.0
    discarded_ms: float = 0.0
    interrupts: list[InterruptRecord] = field(default_factory=list)
    syncs: list[SyncRecord] = field(default_factory=list)
    segments: list[PlaybackSegment] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    ignored_audio_bytes: int = 0
    ignored_audio_chunks: int = 0
    cut_ms_at_bye: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call ran and the server broke no 46elks rule."""
        return self.error is None and not self.violations

    @property
    def duration(self) -> float:
        """Seconds from hello to the end of the call (0 if it never started)."""
        if self.hello_sent_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.hello_sent_at

    def heard_samples(self) -> tuple[array.array, int]:
        """The caller's ear as linear samples: played audio at its time, silence elsewhere.

        Time 0 is the moment hello was sent; the rate is the first sending format's.
        """
        rate = FORMATS[self.sending_formats[0]].sample_rate if self.sending_formats else 8000
        t0 = self.hello_sent_at or 0.0
        end = self.ended_at if self.ended_at is not None else t0
        out = array.array("h", bytes(2 * max(0, int((end - t0) * rate))))
        for piece in self.played:
            fmt = FORMATS[piece.fmt]
            samples = decode(piece.data, fmt)
            if fmt.sample_rate != rate:
                samples = resample(samples, fmt.sample_rate, rate)
            offset = max(0, round((piece.start - t0) * rate))
            if offset + len(samples) > len(out):
                out.extend(array.array("h", bytes(2 * (offset + len(samples) - len(out)))))
            out[offset : offset + len(samples)] = samples
        return out, rate

    def write_heard_wav(self, path: str | os.PathLike) -> None:
        """Write what the caller heard as a mono 16-bit WAV, so a person can listen to it."""
        samples, rate = self.heard_samples()
        write_wav(path, samples, rate)

    def summary(self) -> list[str]:
        """Human-readable end-of-call lines (used by `simulate_call`)."""
        lines = [
            f"call {self.callid}: ended by {self.ended_by or '?'} after {self.duration:.2f} s",
            (
                f"caller audio sent: {self.sent_ms / 1000:.2f} s in {self.sent_frames} frames"
                f" ({self.listening_format or 'never asked for'})"
            ),
            (
                f"server audio: {self.received_ms / 1000:.2f} s accepted,"
                f" {self.played_ms / 1000:.2f} s played,"
                f" {self.discarded_ms / 1000:.2f} s discarded by interrupts,"
                f" {self.cut_ms_at_bye / 1000:.2f} s cut at bye"
            ),
            (
                f"interrupts: {len(self.interrupts)}; syncs answered: "
                f"{sum(s.answered_at is not None for s in self.syncs)}/{len(self.syncs)}"
            ),
        ]
        if self.first_audio_at is not None and self.hello_sent_at is not None:
            lines.append(f"first audio {1000 * (self.first_audio_at - self.hello_sent_at):.0f} ms after hello")
        if self.ignored_audio_chunks:
            lines.append(f"ignored audio: {self.ignored_audio_chunks} chunks, {self.ignored_audio_bytes} bytes")
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append(f"protocol violations: {len(self.violations)}")
        lines.extend(f"  - {v}" for v in self.violations)
        return lines


def parse_script(text: str) -> list[Segment]:
    """`silence:1000,speech:800` -> [("silence", 1000.0), ("speech", 800.0)]; ValueError if malformed."""
    segments: list[Segment] = []
    for part in text.split(","):
        kind, _, ms = part.strip().partition(":")
        try:
            value = float(ms)
        except ValueError:
            value = -1.0
        if kind not in ("silence", "speech") or not value >= 0:
            raise ValueError(f"segment {part.strip()!r}: want silence:<ms> or speech:<ms>")
        segments.append((kind, value))
    return segments


def load_wav(path: str | os.PathLike) -> tuple[array.array, int]:
    """Mono 16-bit samples and their rate from a PCM WAV file (stereo: the left channel)."""
    try:
        with wave.open(os.fspath(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise WavError(f"WAV file not found: {path}") from None
    except IsADirectoryError:
        raise WavError(f"not a file: {path}") from None
    except (wave.Error, EOFError) as exc:
        why = f" ({exc})" if str(exc) else ""
        raise WavError(f"{path} is not a 16-bit PCM WAV file{why}") from None
    except OSError as exc:
        raise WavError(f"cannot read {path}: {exc.strerror or exc}") from None
    if width != 2:
        raise WavError(f"{path} is {8 * width}-bit; only 16-bit PCM WAV files are supported")
    samples = decode(frames, PCM_24000)  # any PCM format decodes as little-endian int16
    if channels > 1:
        samples = samples[::channels]
    return samples, rate


def write_wav(path: str | os.PathLike, samples: array.array, rate: int) -> None:
    """Write mono 16-bit linear samples as a WAV file."""
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(encode(samples, PCM_24000))


def _tone_period(rate: int) -> array.array:
    """One 10 ms period of the "speech" signal: 300 Hz plus harmonics, peak below 8000."""
    n = rate // 100
    return array.array(
        "h",
        (
            round(
                SPEECH_AMPLITUDE
                * (
                    0.6 * math.sin(2 * math.pi * 300 * i / rate)
                    + 0.3 * math.sin(2 * math.pi * 600 * i / rate)
                    + 0.1 * math.sin(2 * math.pi * 900 * i / rate)
                )
            )
            for i in range(n)
        ),
    )


class LiveAudio:
    """Audio that arrives while the call runs (e.g. another Realtime session's voice), played as it comes.

    `push` adds PCM16 samples at `rate`; whoever reads (the simulator's caller stream, a feeder of
    what was heard) takes them frame by frame and gets silence when nothing is waiting.
    """

    def __init__(self, rate: int = 24000) -> None:
        self.rate = rate
        self._buffer = array.array("h")

    def push(self, samples: array.array | bytes) -> None:
        self._buffer.extend(samples if isinstance(samples, array.array) else array.array("h", bytes(samples)))

    def clear(self) -> None:
        del self._buffer[:]

    @property
    def pending(self) -> int:
        """Samples (at `rate`) still waiting."""
        return len(self._buffer)

    def take(self, n: int, rate: int) -> tuple[array.array, bool]:
        """The next `n` samples at `rate` (silence-padded) and whether any of them was live audio."""
        want = max(0, round(n * self.rate / rate))
        got = self._buffer[:want]
        del self._buffer[:want]
        had = len(got) > 0
        if len(got) < want:
            got.extend(array.array("h", bytes(2 * (want - len(got)))))
        out = resample(got, self.rate, rate) if rate != self.rate else got
        if len(out) < n:
            out.extend(array.array("h", bytes(2 * (n - len(out)))))
        return out[:n], had


class CallerSource:
    """The caller's side of the line: a WAV file, a script or live audio, plus speech injected live."""

    def __init__(self, caller_audio: Any) -> None:
        self.live: LiveAudio | None = caller_audio if isinstance(caller_audio, LiveAudio) else None
        if self.live is not None:
            caller_audio = None
        self.wav: array.array | None = None
        self.wav_rate = 0
        self._wav_at: dict[int, array.array] = {}
        self.script: list[Segment] = []
        if caller_audio is None:
            pass
        elif isinstance(caller_audio, (str, os.PathLike)):
            self.wav, self.wav_rate = load_wav(caller_audio)
            for rate in {fmt.sample_rate for fmt in FORMATS.values()}:
                self._wav_for(rate)  # resample now, not on the clock once the call runs
        else:
            for seg in caller_audio:
                kind, ms = seg
                if kind not in ("silence", "speech") or not ms >= 0:
                    raise ValueError(f"bad caller audio segment {seg!r}: want ('silence'|'speech', ms>=0)")
                self.script.append((kind, float(ms)))
        self.injected: list[tuple[float, float]] = []  # (start_s, end_s) on the caller-audio timeline
        self._script_at: dict[int, list[tuple[int, int, str]]] = {}
        self._tone: dict[int, array.array] = {}

    def _wav_for(self, rate: int) -> array.array:
        if rate not in self._wav_at:
            assert self.wav is not None
            self._wav_at[rate] = resample(self.wav, self.wav_rate, rate)
        return self._wav_at[rate]

    def _script_for(self, rate: int) -> list[tuple[int, int, str]]:
        if rate not in self._script_at:
            spans, at = [], 0.0
            for kind, ms in self.script:
                a, b = round(at * rate / 1000), round((at + ms) * rate / 1000)
                if b > a:
                    spans.append((a, b, kind))
                at += ms
            self._script_at[rate] = spans
        return self._script_at[rate]

    def _speech(self, rate: int, a: int, b: int) -> array.array:
        period = self._tone.get(rate)
        if period is None:
            period = self._tone[rate] = _tone_period(rate)
        n = len(period)
        tiled = period * ((b - a) // n + 2)
        return tiled[a % n : a % n + (b - a)]

    def render(self, a: int, b: int, rate: int) -> tuple[array.array, list[int], bool]:
        """Samples [a, b) at `rate`, where speech runs begin inside it, and whether it ends in speech."""
        if self.live is not None:
            samples, speech = self.live.take(b - a, rate)
            return samples, [a] if speech else [], speech
        cuts = {a, b}
        script = self._script_for(rate)
        for s, e, _ in script:
            cuts.update(x for x in (s, e) if a < x < b)
        windows = [(round(s * rate), round(e * rate)) for s, e in self.injected]
        for s, e in windows:
            cuts.update(x for x in (s, e) if a < x < b)
        wav = self._wav_for(rate) if self.wav is not None else None
        if wav is not None and a < len(wav) < b:
            cuts.add(len(wav))
        out = array.array("h")
        onsets: list[int] = []
        speech = False
        for x, y in itertools.pairwise(sorted(cuts)):
            was_speech = speech
            speech = any(s <= x < e for s, e in windows) or any(
                s <= x < e and kind == "speech" for s, e, kind in script
            )
            if speech:
                out.extend(self._speech(rate, x, y))
                if not was_speech:
                    onsets.append(x)
            elif wav is not None and x < len(wav):
                out.extend(wav[x:y])
            else:
                out.extend(array.array("h", bytes(2 * (y - x))))
        return out, onsets, speech
