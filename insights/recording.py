"""Call recordings: both sides in one stereo WAV, caller left, assistant right, as the caller heard it.

Per frame the observer only appends the wire bytes to a buffer (no decoding, no I/O), so recording
never delays audio; the buffer is bounded by the assistant's longest call. When the call has
ended, a worker thread writes the WAV and the storage backend keeps it.

Where each sound goes in time:
- The caller streams in real time, so caller frames are laid end to end from the moment the first
  one arrived (corrected to the earliest arrival any later frame allows, so network jitter does not
  shift the track); a pause in the stream longer than `GAP_S` starts a new run at its arrival time.
- The assistant's audio plays through 46elks' real-time queue: a chunk sent while earlier audio is
  still playing starts when that audio ends, and an interrupt discards everything not yet played.
  The track follows the same model as `calls.playback` (which the session uses for truncation),
  timed by when each delta arrived from OpenAI, which is when it was passed on.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import logging
import os
import tempfile
import time
import wave
from typing import TYPE_CHECKING

from assistants.audio_formats import PCM_24000, AudioFormat
from calls.db import run_db
from calls.live.audio import decode, encode
from calls.live.observers import CallObserver

from . import services

if TYPE_CHECKING:
    from calls.live.types import CallHandle, Outcome

log = logging.getLogger(__name__)

GAP_S = 0.25
BLOCK_S = 10.0  # the WAV is written this many seconds at a time, so memory stays small
EXTRA_S = 60.0  # buffer beyond the assistant's longest call (the goodbye, the bye exchange)
# A caller stream that lasted until this close to the end of the call ran until the line closed.
CALLER_STREAM_ENDS_S = 1.0
SEND_SLACK_S = 5.0  # an arrival time further from the notification than this belongs to another clock

_saving: set[asyncio.Task] = set()


class Track:
    """One side of the call as runs of contiguous wire audio on the call's clock (seconds from t0)."""

    def __init__(self, fmt: AudioFormat, max_seconds: float) -> None:
        self.fmt = fmt
        self.bytes_per_s = fmt.bytes_per_ms * 1000
        self.frame = fmt.bytes_per_sample
        self.runs: list[tuple[list[float], bytearray]] = []  # ([start_s], data)
        self.nbytes = 0
        self.limit = int(max_seconds * self.bytes_per_s)
        self.overflow = False
        self.play_end = 0.0  # assistant side: when everything queued so far will have played

    def _end_of(self, run: tuple[list[float], bytearray]) -> float:
        return run[0][0] + len(run[1]) / self.bytes_per_s

    @property
    def end(self) -> float:
        return self._end_of(self.runs[-1]) if self.runs else 0.0

    def _room(self, data: bytes) -> bool:
        if self.nbytes + len(data) > self.limit:
            self.overflow = True
            return False
        self.nbytes += len(data)
        return True

    def add_live(self, data: bytes, at: float) -> None:
        """A real-time frame that arrived at `at` (it was spoken during the `len(data)` before)."""
        if not data or not self._room(data):
            return
        duration = len(data) / self.bytes_per_s
        if self.runs:
            start, buf = self.runs[-1]
            run_end = start[0] + len(buf) / self.bytes_per_s
            if at - duration - run_end <= GAP_S:
                buf += data
                # Frames cannot arrive before they were spoken: the earliest arrival bounds the start.
                floor = self._end_of(self.runs[-2]) if len(self.runs) > 1 else 0.0
                start[0] = max(floor, min(start[0], at - len(buf) / self.bytes_per_s))
                return
        self.runs.append(([max(self.end, at - duration)], bytearray(data)))

    def add_queued(self, data: bytes, at: float) -> None:
        """Audio handed to the telco at `at`: it plays after whatever is still queued."""
        if not data or not self._room(data):
            return
        start = max(at, self.play_end)
        if self.runs and abs(self.end - start) < 1e-9:
            self.runs[-1][1].extend(data)
        else:
            self.runs.append(([start], bytearray(data)))
        self.play_end = start + len(data) / self.bytes_per_s

    def cut(self, at: float) -> None:
        """Nothing after `at` is heard (an interrupt, or the end of the call)."""
        while self.runs and self.runs[-1][0][0] >= at:
            self.nbytes -= len(self.runs.pop()[1])
        if self.runs:
            start, buf = self.runs[-1]
            keep = max(0, round((at - start[0]) * self.fmt.sample_rate)) * self.frame
            if keep < len(buf):
                self.nbytes -= len(buf) - keep
                del buf[keep:]
        self.play_end = min(self.play_end, at)

    def samples(self, first: int, count: int) -> array.array:
        """Linear samples [first, first + count) of this track, silence where nothing was heard."""
        out = array.array("h", bytes(2 * count))
        rate = self.fmt.sample_rate
        for start, buf in self.runs:
            run_first = round(start[0] * rate)
            run_count = len(buf) // self.frame
            lo, hi = max(first, run_first), min(first + count, run_first + run_count)
            if lo >= hi:
                continue
            piece = decode(bytes(buf[(lo - run_first) * self.frame : (hi - run_first) * self.frame]), self.fmt)
            out[lo - first : lo - first + len(piece)] = piece
        return out


def write_stereo_wav(fileobj, left: Track, right: Track, seconds: float) -> int:
    """Write `seconds` of the two tracks as a 16-bit stereo WAV at their rate; returns frames written."""
    rate = left.fmt.sample_rate
    total = max(0, round(seconds * rate))
    block = int(BLOCK_S * rate)
    with wave.open(fileobj, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        for first in range(0, total, block):
            count = min(block, total - first)
            stereo = array.array("h", bytes(4 * count))
            stereo[0::2] = left.samples(first, count)
            stereo[1::2] = right.samples(first, count)
            w.writeframes(encode(stereo, PCM_24000))  # little-endian 16-bit, whatever the wire format
    return total


class CallRecorder(CallObserver):
    """Buffers one call's audio; writes the recording after the call."""

    wants_audio = True

    def __init__(self, session: CallHandle) -> None:
        cfg = session.config
        self.t0 = session.started_at
        self.fmt = cfg.format
        max_seconds = cfg.max_call_minutes * 60 + EXTRA_S
        self.caller = Track(self.fmt, max_seconds)
        self.assistant = Track(self.fmt, max_seconds)
        self.bad_frames = 0

    def _bytes(self, b64: str | bytes) -> bytes:
        try:
            return base64.b64decode(b64)
        except (binascii.Error, ValueError):
            self.bad_frames += 1
            return b""

    def caller_audio(self, session: CallHandle, b64: bytes, at: float) -> None:
        self.caller.add_live(self._bytes(b64), at - self.t0)

    def assistant_audio(self, session: CallHandle, b64: str, at: float) -> None:
        # `at` is read after the send to 46elks; the delta's arrival from OpenAI, just before it,
        # is when it really went out.
        received = getattr(session, "openai_received_at", None)
        sent = received if received is not None and at - SEND_SLACK_S <= received <= at else at
        self.assistant.add_queued(self._bytes(b64), sent - self.t0)

    def interrupted(self, session: CallHandle, at: float) -> None:
        self.assistant.cut(at - self.t0)

    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        """Hand the buffers to a background task: the call's ending never waits for the file."""
        now = time.monotonic() - self.t0
        # 46elks streams the caller until the line closes, so the caller's last frame marks the end of
        # the call (a hang-up mid-sentence included); assistant audio still queued then was never heard.
        if self.caller.runs and now - self.caller.end < CALLER_STREAM_ENDS_S:
            end = self.caller.end
        else:
            end = max(self.caller.end, min(self.assistant.play_end, now))
        self.assistant.cut(end)
        callid = session.hello.callid if session.hello else "-"
        if session.call_pk is None or end <= 0 or not (self.caller.runs or self.assistant.runs):
            log.info("call %s: nothing to record", callid)
            return
        if self.caller.overflow or self.assistant.overflow or self.bad_frames:
            log.warning(
                "call %s: recording incomplete (longer than the assistant's longest call, or %d unreadable frames)",
                callid,
                self.bad_frames,
            )
        task = asyncio.ensure_future(self._save(session.call_pk, callid, end))
        _saving.add(task)
        task.add_done_callback(_saving.discard)

    async def _save(self, call_pk: int, callid: str, seconds: float) -> None:
        path = ""
        try:
            path = await asyncio.to_thread(self._write_temp, seconds)
            name = await run_db(services.call_recording_attach)(call_pk=call_pk, path=path)
        except Exception:
            log.exception("call %s: the recording could not be saved", callid)
            return
        finally:
            if path:
                services.remove_quietly(path)
        self.caller = self.assistant = None  # free the buffers
        log.info(
            "call %s recording saved: %s (%.2f s)",
            callid,
            name or "(call no longer exists)",
            seconds,
            extra={"call_id": callid, "call_pk": call_pk, "event": "call.recording", "seconds": round(seconds, 3)},
        )

    def _write_temp(self, seconds: float) -> str:
        fd, path = tempfile.mkstemp(prefix="call-", suffix=".wav")
        try:
            with os.fdopen(fd, "wb") as fh:
                write_stereo_wav(fh, self.caller, self.assistant, seconds)
        except BaseException:
            services.remove_quietly(path)
            raise
        return path


def call_recorder(session: CallHandle) -> CallRecorder | None:
    """`settings.CALL_OBSERVERS` factory: only for assistants that record calls (off by default)."""
    cfg = session.config
    if cfg is None or not cfg.record_calls or session.call_pk is None:
        return None
    return CallRecorder(session)


async def wait_for_saves() -> None:
    """Let recordings being written finish (for a clean shutdown and for tests)."""
    if _saving:
        await asyncio.gather(*list(_saving), return_exceptions=True)
