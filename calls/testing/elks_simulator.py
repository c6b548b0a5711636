"""A stand-in for 46elks' side of a realtime-voice WebSocket call.

46elks is the WebSocket client: it connects to our URL, says `hello`, streams the caller's audio
in real time once we ask for it (`listening`), and plays what we send (`sending`) through a
real-time playback buffer that `interrupt` clears and `sync` checkpoints. The simulator models
that buffer by the clock rather than by counting bytes, because the bridge's hard problems
(barge-in, "has the goodbye finished playing?") are about *time*: it can say what the caller
actually heard and when, and write it to a WAV so a person can listen to the cut at an interrupt.

Everything the server does that 46elks would not accept is recorded as a readable violation
instead of raising, so one test run shows all the problems. No Django here: the bridge's
integration tests drive real daphne with it, and `manage.py simulate_call` wraps it for people.

Times are the event loop's clock (`loop.time()`, i.e. `time.monotonic()` for the default loop).

What the caller says and the call's result live in `caller_audio`. `CallSimulator` stays one
cohesive class of ~700 lines on purpose: the protocol rules, the playback clock and the wait API
all read and change the same state of one call as each message arrives, and splitting them
would only spread that state over objects that reach into each other.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import os
import random
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.asyncio.client import ClientConnection, connect

from assistants.audio_formats import FORMATS, AudioFormat
from calls.live.audio import encode
from calls.testing.caller_audio import (
    CallerSource,
    CallResult,
    InterruptRecord,
    LiveAudio,
    PlaybackSegment,
    PlayedPiece,
    Segment,
    SimulatorError,
    SyncRecord,
    WavError,
    load_wav,
    write_wav,
)

log = logging.getLogger(__name__)

#: 46elks documents a playback buffer of "up to 30 MB"; overfilling it ends the call with an error.
PLAYBACK_BUFFER_LIMIT = 30_000_000
#: Formats 46elks documents but the simulator (and the bridge) cannot model.
DOCUMENTED_ONLY = {"pcm_8000", "pcm_16000", "g722", "ogg", "wav", "mp3"}
#: What the application may send to 46elks; anything else is a violation.
APP_MESSAGES = {"listening", "sending", "audio", "interrupt", "sync", "bye"}

BYE_DONE = {"t": "bye", "reason": "done", "message": "Call finished"}
BYE_HANGUP = {"t": "bye", "reason": "hangup", "message": "the caller hung up"}

DEFAULT_JITTER_MS = 10.0

EventCallback = Callable[[float, str], None]
AudioCallback = Callable[[bytes, AudioFormat], None]

__all__ = [  # the caller_audio names are re-exported: a simulator's user needs them with it
    "CallEnded",
    "CallResult",
    "CallSimulator",
    "HandshakeError",
    "LiveAudio",
    "SimulatorError",
    "WavError",
    "load_wav",
    "write_wav",
]


class HandshakeError(SimulatorError):
    """The call never started: the connection or the WebSocket handshake failed."""


class CallEnded(Exception):
    """Raised by the wait helpers when the call ended before the awaited thing happened."""


class _Chunk:
    __slots__ = ("data", "end", "fmt", "start")

    def __init__(self, start: float, end: float, data: bytes, fmt: AudioFormat) -> None:
        self.start, self.end, self.data, self.fmt = start, end, data, fmt


class CallSimulator:
    """One call from 46elks' side: connect, hello, stream the caller, play the server's audio.

    `await sim.run()` runs the whole call and returns the CallResult; while it runs (as a task)
    `sim.result` is filled in live and the wait helpers let a test follow the call without polling.
    """

    def __init__(
        self,
        url: str,
        to: str,
        from_: str,
        callid: str | None = None,
        caller_audio: str | os.PathLike | Sequence[Segment] | LiveAudio | None = None,
        seconds: float | None = None,
        frame_ms: float | Sequence[float] = 20,
        jitter: bool | float = False,
        extra_headers: dict[str, str] | None = None,
        on_event: EventCallback | None = None,
        on_audio: AudioCallback | None = None,
        send_hello: bool = True,
        open_timeout: float = 10.0,
    ) -> None:
        sizes = [frame_ms] if isinstance(frame_ms, (int, float)) else list(frame_ms)
        if not sizes or any(not s > 0 for s in sizes):
            raise ValueError(f"frame_ms must be positive, got {frame_ms!r}")
        self.url = url
        self.seconds = seconds
        self.frame_sizes = [float(s) for s in sizes]
        self.jitter_ms = DEFAULT_JITTER_MS if jitter is True else float(jitter or 0)
        self.extra_headers = dict(extra_headers or {})
        self.on_event = on_event
        self.on_audio = on_audio  # each accepted chunk of server audio, as it arrives (e.g. to a listener)
        self.send_hello = send_hello
        self.open_timeout = open_timeout
        self.source = CallerSource(caller_audio)
        self.result = CallResult(callid=callid or uuid.uuid4().hex, from_=from_, to=to, url=url)

        self._ws: ClientConnection | None = None
        self._done: asyncio.Future[CallResult] | None = None
        self._changed = asyncio.Event()
        self._finished = False  # run() is over: waiters give up
        self._ending = False  # a bye was sent/received or the socket closed
        self._hangup_requested = False
        self._tasks: set[asyncio.Task] = set()
        self._internal_errors: list[BaseException] = []
        self._sender: asyncio.Task | None = None
        self._hangup_timer: asyncio.Task | None = None
        self._close_task: asyncio.Task | None = None
        self._counts: dict[str, int] = {}
        self._last_event: dict[str, dict] = {}
        # caller audio
        self._listen_fmt: AudioFormat | None = None
        self._audio_start = 0.0
        self._pos_ms = 0.0
        self._in_speech = False
        # playback
        self._send_fmt: AudioFormat | None = None
        self._accepting = False
        self._ignore_reason = "before the first sending"
        self._overflowed = False
        self._queue: deque[_Chunk] = deque()
        self._queued_bytes = 0
        self._play_end = 0.0
        self._played_ms = 0.0
        self._segment: PlaybackSegment | None = None
        self._pending_syncs: dict[int, tuple[SyncRecord, asyncio.TimerHandle]] = {}
        self._ignore_run: list[Any] | None = None  # [violation index, reason, chunks, bytes]

    # ------------------------------------------------------------------ public API

    @property
    def done(self) -> asyncio.Future[CallResult]:
        """Resolves with the CallResult when the call is over (also after a failed connect)."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        return self._done

    async def run(self) -> CallResult:
        """Run one whole call; raises HandshakeError if the server cannot be reached or refuses."""
        loop = asyncio.get_running_loop()
        self.done  # noqa: B018 - create the future inside the loop before anything can finish
        try:
            self._ws = await self._connect()
            self.result.connected_at = loop.time()
            if self.send_hello:
                hello = {
                    "t": "hello",
                    "callid": self.result.callid,
                    "from": self.result.from_,
                    "to": self.result.to,
                }
                await self._send_json(hello)
                self.result.hello_sent_at = self.result.sent[-1][0] if self.result.sent else loop.time()
                self._emit(f"hello sent: callid={self.result.callid} from={self.result.from_} to={self.result.to}")
            else:
                self.result.hello_sent_at = self.result.connected_at
            self._notify()
            if self.seconds is not None:
                self._hangup_timer = asyncio.create_task(self._hang_up_after(self.seconds))
            if self._hangup_requested:
                await self.hang_up()
            await self._read_loop()
            if self._close_task is not None:
                await self._close_task
        except SimulatorError as exc:
            self.result.error = str(exc)
            raise
        finally:
            await self._cleanup()
        if self._internal_errors:
            raise self._internal_errors[0]
        return self.result

    async def hang_up(self) -> None:
        """The caller hangs up: bye reason "hangup", then the socket closes."""
        if self._ws is None:
            self._hangup_requested = True
            return
        await self._finish("caller", dict(BYE_HANGUP))

    def speak(self, ms: float) -> None:
        """Make the caller talk for `ms` from the next frame on (replaces whatever was going to be sent)."""
        start = self._pos_ms / 1000
        self.source.injected.append((start, start + ms / 1000))

    async def send_raw(self, message: str | bytes) -> None:
        """Send anything as-is (text or binary frame), for robustness tests of the server."""
        if self._ws is None:
            raise RuntimeError("not connected yet: await sim.wait_connected() first")
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(message)

    async def send_audio_burst(self, frames: Sequence[bytes]) -> None:
        """Send caller audio frames back to back, as TCP delivers the audio a stall on 46elks' side held up.

        They count as sent caller audio (`result.sent_audio`), in the order they go out.
        """
        if self._ws is None:
            raise RuntimeError("not connected yet: await sim.wait_connected() first")
        with contextlib.suppress(ConnectionClosed):
            for data in frames:
                self.result.sent_audio += data
                self.result.sent_frames += 1
                await self._ws.send('{"t":"audio","data":"' + base64.b64encode(data).decode("ascii") + '"}')

    def played_ms(self) -> float:
        """Milliseconds of server audio the caller has heard so far, over the whole call."""
        if self._finished:
            return self.result.played_ms
        now = asyncio.get_running_loop().time()
        return self._played_ms + sum(max(0.0, min(now, c.end) - c.start) * 1000 for c in self._queue)

    def segment_played_ms(self) -> float:
        """Milliseconds played in the current playback segment (0 right after an interrupt)."""
        seg = self._segment
        if seg is None:
            return 0.0
        if self._finished:
            return seg.played_ms
        now = asyncio.get_running_loop().time()
        return seg.played_ms + sum(max(0.0, min(now, c.end) - c.start) * 1000 for c in self._queue)

    def buffered_ms(self) -> float:
        """Milliseconds of accepted audio still waiting to be played."""
        now = asyncio.get_running_loop().time()
        return max(0.0, self._play_end - now) * 1000 if not self._finished else 0.0

    def count(self, t: str) -> int:
        """How many messages of type `t` the server has sent so far (audio included)."""
        return self._counts.get(t, 0)

    # The wait helpers are plain functions returning a coroutine: `await sim.wait_for(...)`.

    def wait_connected(self, timeout: float = 10) -> Coroutine[Any, Any, bool]:
        """Wait until the socket is open (and hello sent, unless send_hello=False)."""
        return self._wait(lambda: True if self.result.hello_sent_at is not None else None, timeout, "connection")

    def wait_for(self, t: str, timeout: float = 10, count: int = 1) -> Coroutine[Any, Any, dict]:
        """Wait until the server has sent `count` messages of type `t` in total; returns the latest."""
        return self._wait(
            lambda: self._last_event[t] if self._counts.get(t, 0) >= count else None,
            timeout,
            f"{count} x {t!r} from the server",
        )

    def wait_first_audio(self, timeout: float = 10) -> Coroutine[Any, Any, float]:
        """Wait for the first accepted server audio; returns its arrival time."""
        return self._wait(lambda: self.result.first_audio_at, timeout, "first audio from the server")

    def wait_played_ms(self, ms: float, timeout: float = 10) -> Coroutine[Any, Any, float]:
        """Wait until the caller has heard `ms` of server audio in total; returns played ms."""
        return self._wait(
            lambda: self.played_ms() if self.played_ms() >= ms - 1e-6 else None,
            timeout,
            f"{ms} ms of played audio",
            wake_at=lambda: self._time_played_reaches(ms),
        )

    def wait_speech_started(self, count: int = 1, timeout: float = 10) -> Coroutine[Any, Any, float]:
        """Wait until `count` caller speech bursts have started on the wire; returns the latest start."""
        return self._wait(
            lambda: self.result.speech_started_at[count - 1] if len(self.result.speech_started_at) >= count else None,
            timeout,
            f"caller speech #{count}",
        )

    # ------------------------------------------------------------------ connection

    async def _connect(self) -> ClientConnection:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise HandshakeError(f"bad URL {self.url!r}: expected ws://host:port/path or wss://…")
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'wss' else 80)}"
        try:
            return await connect(
                self.url,
                additional_headers=self.extra_headers or None,  # 46elks sends no Origin, no auth
                user_agent_header="voiceagent-call-simulator",
                proxy=None,
                compression=None,
                open_timeout=self.open_timeout,
                ping_interval=None,
                close_timeout=5,
                max_size=64 * 2**20,  # 46elks buffers up to 30 MB: never refuse a big chunk ourselves
                max_queue=None,  # the read loop must never stall the socket
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            hint = {403: " (forbidden: wrong secret?)", 404: " (not found: wrong path?)"}.get(status, "")
            raise HandshakeError(
                f"server refused the WebSocket handshake with HTTP {status}{hint}: {self.url}"
            ) from None
        except InvalidURI as exc:
            raise HandshakeError(f"bad URL {self.url!r}: {exc}") from None
        except InvalidHandshake as exc:
            raise HandshakeError(f"WebSocket handshake with {where} failed: {exc}") from None
        except ConnectionRefusedError:
            raise HandshakeError(f"connection refused by {where}: is the server running?") from None
        except TimeoutError:
            raise HandshakeError(f"timed out connecting to {where}") from None
        except OSError as exc:
            raise HandshakeError(f"cannot connect to {where}: {exc.strerror or exc}") from None

    async def _send_json(self, obj: dict) -> bool:
        """Send one control message; after our bye nothing else goes out (46elks' bye is last)."""
        ws = self._ws
        if ws is None or (self.result.bye_sent is not None and obj is not self.result.bye_sent):
            return False
        self.result.sent.append((asyncio.get_running_loop().time(), obj))
        try:
            await ws.send(json.dumps(obj, separators=(",", ":")))
        except ConnectionClosed:
            return False
        return True

    async def _hang_up_after(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        start = self.result.hello_sent_at or loop.time()
        await asyncio.sleep(max(0.0, start + seconds - loop.time()))
        self._emit(f"{seconds:g} s are up: the caller hangs up")
        await self.hang_up()

    async def _finish(self, ended_by: str, bye: dict | None, segment_end: str | None = None) -> None:
        """End the call once: stop the caller, cut playback, send our bye, close the socket."""
        if self._ending:
            return
        self._ending = True
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.result.ended_by = ended_by
        self.result.ended_at = now
        current = asyncio.current_task()
        for task in (self._sender, self._hangup_timer):
            if task is not None and task is not current:
                task.cancel()
        self._cut(now, segment_end or {"server": "bye", "caller": "hangup"}.get(ended_by, ended_by))
        for rec, handle in self._pending_syncs.values():
            handle.cancel()
            self._emit(f"sync requested at +{self._rel(rec.requested_at):.3f} s never answered: the call ended")
        self._pending_syncs.clear()
        if bye is not None and self._ws is not None:
            self.result.bye_sent = bye
            self.result.bye_sent_at = now
            await self._send_json(bye)
            self._emit(f"bye sent: reason={bye['reason']} ({bye['message']})")
        if self._ws is not None and self._close_task is None:
            self._close_task = asyncio.create_task(self._ws.close())
        self._notify()

    async def _cleanup(self) -> None:
        loop = asyncio.get_running_loop()
        for task in (self._sender, self._hangup_timer, *self._tasks):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._sender, self._hangup_timer, self._close_task, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
        for _, handle in self._pending_syncs.values():
            handle.cancel()
        self._pending_syncs.clear()
        now = loop.time()
        self._cut(now, "closed")
        if self._ws is not None:
            if self._ws.transport is not None and not self._ws.transport.is_closing():
                self._ws.transport.abort()
            self.result.close_code = self._ws.close_code
            self.result.close_reason = self._ws.close_reason
        self.result.ended_at = self.result.ended_at or now
        self.result.ended_by = self.result.ended_by or "aborted"  # run() was cancelled mid-call
        self.result.played_ms = self._played_ms
        self._finished = True
        self._notify()
        if not self.done.done():
            self.done.set_result(self.result)

    # ------------------------------------------------------------------ receiving

    async def _read_loop(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                await self._on_message(message)
        except ConnectionClosed:
            pass
        if not self._ending:
            code = self._ws.close_code
            self._violation(f"socket closed without bye (close code {code})")
            self._emit(f"server closed the socket without bye (close code {code})")
            await self._finish("server_closed", None, "closed")

    async def _on_message(self, message: str | bytes) -> None:
        now = asyncio.get_running_loop().time()
        after_bye = self.result.bye_received_at is not None
        if isinstance(message, bytes):
            self._violation(f"binary frame of {len(message)} bytes (46elks only takes JSON text frames)")
            return
        try:
            msg = json.loads(message)
        except ValueError:
            self._violation(f"invalid JSON: {message[:60]!r}")
            return
        if not isinstance(msg, dict):
            self._violation(f"message is not a JSON object: {message[:60]!r}")
            return
        t = msg.get("t")
        if t == "audio":
            self._on_audio(now, msg, after_bye)
            self._notify()
            return
        self.result.events.append((now, msg))
        if isinstance(t, str):
            self._counts[t] = self._counts.get(t, 0) + 1
            self._last_event[t] = msg
        if after_bye:
            self._violation(f"{t!r} received after the server's bye")
        elif self._ending:
            pass  # in flight when the caller hung up: 46elks is gone
        elif t == "listening":
            self._on_listening(now, msg)
        elif t == "sending":
            self._on_sending(now, msg)
        elif t == "interrupt":
            self._on_interrupt(now)
        elif t == "sync":
            self._on_sync(now)
        elif t == "bye":
            await self._on_bye(now, msg)
        elif t is None and "type" in msg:
            self._violation(f"message uses 'type' instead of 't' (legacy dialect): {message[:60]!r}")
        else:
            self._violation(f"unknown message type {t!r}: {message[:60]!r}")
        self._notify()

    def _on_listening(self, now: float, msg: dict) -> None:
        name = msg.get("format")
        fmt = FORMATS.get(name) if isinstance(name, str) else None
        if fmt is None:
            self._violation(self._format_problem("listening", name))
            return
        old = self._listen_fmt
        self._listen_fmt = fmt
        self.result.listening_format = fmt.name
        if old is None:
            self.result.listening_at = now
            self._emit(f"listening received: {fmt.name} -> caller audio starts")
            self._sender = asyncio.create_task(self._send_caller_audio())
        elif old is not fmt:
            self._emit(f"listening re-declared: {old.name} -> {fmt.name} (undocumented; switching)")

    def _on_sending(self, now: float, msg: dict) -> None:
        name = msg.get("format")
        fmt = FORMATS.get(name) if isinstance(name, str) else None
        self._end_ignore_run()
        if fmt is None:
            self._violation(self._format_problem("sending", name))
            self._accepting = False
            self._ignore_reason = f"after a sending with the unusable format {name!r}"
            return
        self._send_fmt = fmt
        self._accepting = True
        self.result.sending_format = fmt.name
        self.result.sending_formats.append(fmt.name)
        self._emit(f"sending received: {fmt.name}")

    @staticmethod
    def _format_problem(kind: str, name: Any) -> str:
        if isinstance(name, str) and name in DOCUMENTED_ONLY:
            return f"{kind} format {name!r} is valid for 46elks but not supported by the simulator"
        return f"{kind} with invalid format {name!r} (want one of {', '.join(FORMATS)})"

    def _on_audio(self, now: float, msg: dict, after_bye: bool) -> None:
        data = msg.get("data")
        if not isinstance(data, str):
            self._violation("audio message without a base64 'data' string")
            return
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self._violation(f"audio with invalid base64 data ({len(data)} chars)")
            return
        self.result.audio_chunks.append((now, len(raw)))
        self._counts["audio"] = self._counts.get("audio", 0) + 1
        self._last_event["audio"] = {"t": "audio", "nbytes": len(raw)}
        if after_bye:
            self._violation(f"audio ({len(raw)} bytes) received after the server's bye")
            return
        if self._ending:
            return
        if not self._accepting:
            self._ignore(raw)
            return
        fmt = self._send_fmt
        assert fmt is not None
        if fmt.bytes_per_sample == 2 and len(raw) % 2:
            self._violation(f"{fmt.name} audio chunk of odd length {len(raw)} splits a sample")
        self._settle(now)
        seg = self._segment
        if seg is None:
            seg = self._segment = PlaybackSegment(index=len(self.result.segments), started_at=now)
            self.result.segments.append(seg)
            self._emit(f"audio segment {seg.index} starts ({fmt.name})")
        start = max(now, self._play_end)
        end = start + len(raw) / (fmt.sample_rate * fmt.bytes_per_sample)
        self._queue.append(_Chunk(start, end, raw, fmt))
        self._queued_bytes += len(raw)
        self._play_end = end
        seg.accepted_bytes += len(raw)
        seg.accepted_ms += fmt.ms(len(raw))
        self.result.received_bytes += len(raw)
        self.result.received_ms += fmt.ms(len(raw))
        if self.on_audio is not None:
            self.on_audio(raw, fmt)
        if self.result.first_audio_at is None:
            self.result.first_audio_at = now
            self._emit(f"first audio from the server ({len(raw)} bytes)")
        if self._queued_bytes > PLAYBACK_BUFFER_LIMIT and not self._overflowed:
            self._overflowed = True
            self._violation(f"playback buffer overflow: {self._queued_bytes} bytes queued (46elks holds 30 MB)")
            self._spawn(
                self._finish("error", {"t": "bye", "reason": "error", "message": "playback buffer full"}, "error")
            )

    def _ignore(self, raw: bytes) -> None:
        """Audio 46elks drops: before any sending, or after interrupt until a new sending."""
        self.result.ignored_audio_bytes += len(raw)
        self.result.ignored_audio_chunks += 1
        run = self._ignore_run
        if run is None:
            reason = self._ignore_reason
            self.result.violations.append("")
            run = self._ignore_run = [len(self.result.violations) - 1, reason, 0, 0]
            self._emit(f"audio ignored ({reason})")
        run[2] += 1
        run[3] += len(raw)
        self.result.violations[run[0]] = f"audio {run[1]} ignored, as 46elks does: {run[2]} chunk(s), {run[3]} bytes"

    def _end_ignore_run(self) -> None:
        self._ignore_run = None

    def _on_interrupt(self, now: float) -> None:
        self._settle(now)
        seg = self._segment
        discarded, discarded_ms = self._cut(now, "interrupt")
        rec = InterruptRecord(
            at=now,
            segment_played_bytes=seg.played_bytes if seg else 0,
            segment_played_ms=seg.played_ms if seg else 0.0,
            discarded_bytes=discarded,
            discarded_ms=discarded_ms,
        )
        self.result.interrupts.append(rec)
        self._accepting = False
        self._ignore_reason = "after interrupt, before a new sending"
        self._end_ignore_run()
        self._emit(
            f"interrupt: {rec.segment_played_ms / 1000:.3f} s of the segment played,"
            f" {discarded_ms / 1000:.3f} s discarded; audio ignored until a new sending"
        )
        for sync_id in list(self._pending_syncs):
            self._answer_sync(sync_id, early=True)

    def _on_sync(self, now: float) -> None:
        self._settle(now)
        due = max(now, self._play_end)
        rec = SyncRecord(requested_at=now, due_at=due)
        self.result.syncs.append(rec)
        sync_id = len(self.result.syncs) - 1
        self._emit(f"sync requested: answer when {1000 * (due - now):.0f} ms of queued audio has played")
        loop = asyncio.get_running_loop()
        self._pending_syncs[sync_id] = (rec, loop.call_at(due, self._answer_sync, sync_id))
        if due <= now:
            self._answer_sync(sync_id)

    def _answer_sync(self, sync_id: int, early: bool = False) -> None:
        entry = self._pending_syncs.pop(sync_id, None)
        if entry is None or self._ending:
            return
        rec, handle = entry
        handle.cancel()
        rec.answered_at = asyncio.get_running_loop().time()
        rec.answered_early_by_interrupt = early
        self._spawn(self._send_json({"t": "sync"}))
        self._emit("sync answered" + (" (buffer cleared by interrupt)" if early else ""))
        self._notify()

    async def _on_bye(self, now: float, msg: dict) -> None:
        self.result.bye_received_at = now
        self.result.bye_received = msg
        self._settle(now)
        self.result.cut_ms_at_bye = max(0.0, self._play_end - now) * 1000
        extra = f"; {self.result.cut_ms_at_bye:.0f} ms of queued audio cut" if self.result.cut_ms_at_bye else ""
        self._emit(f"bye received from the server{extra}")
        await self._finish("server", dict(BYE_DONE), "bye")

    # ------------------------------------------------------------------ playback buffer

    def _settle(self, now: float) -> None:
        """Move chunks that have finished playing by `now` into the heard audio."""
        while self._queue and self._queue[0].end <= now:
            chunk = self._queue.popleft()
            self._commit(chunk, chunk.data)

    def _commit(self, chunk: _Chunk, data: bytes) -> None:
        self._queued_bytes -= len(chunk.data)
        if not data:
            return
        ms = chunk.fmt.ms(len(data))
        self.result.played_audio += data
        self.result.played.append(PlayedPiece(chunk.start, chunk.fmt.name, data))
        self._played_ms += ms
        self.result.played_ms = self._played_ms
        if self._segment is not None:
            self._segment.played_bytes += len(data)
            self._segment.played_ms += ms

    def _cut(self, now: float, ended_by: str) -> tuple[int, float]:
        """Stop playback at `now`: keep what played (whole samples), discard the rest."""
        self._settle(now)
        discarded, discarded_ms = 0, 0.0
        for chunk in self._queue:
            nbytes = 0
            if chunk.start < now:
                samples = int((now - chunk.start) * chunk.fmt.sample_rate)
                nbytes = min(len(chunk.data), samples * chunk.fmt.bytes_per_sample)
            self._commit(chunk, chunk.data[:nbytes])
            discarded += len(chunk.data) - nbytes
            discarded_ms += chunk.fmt.ms(len(chunk.data) - nbytes)
        self._queue.clear()
        self._queued_bytes = 0
        self._play_end = min(self._play_end, now)
        self.result.discarded_ms += discarded_ms if ended_by == "interrupt" else 0.0
        seg = self._segment
        if seg is not None:
            seg.discarded_bytes += discarded
            seg.discarded_ms += discarded_ms
            seg.ended_at = now
            seg.ended_by = ended_by
            self._segment = None
        return discarded, discarded_ms

    def _time_played_reaches(self, ms: float) -> float | None:
        """When the played total will reach `ms` with what is queued now (None: not enough queued)."""
        acc = self._played_ms
        for chunk in self._queue:
            dur = (chunk.end - chunk.start) * 1000
            if acc + dur >= ms:
                return chunk.start + (ms - acc) / 1000
            acc += dur
        return None

    # ------------------------------------------------------------------ caller audio

    async def _send_caller_audio(self) -> None:
        """Stream the caller at real time, paced by absolute deadlines so nothing drifts."""
        try:
            await self._stream()
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        except Exception as exc:  # a bug in the simulator must not look like a server problem
            self._internal_errors.append(exc)
            log.exception("caller audio sender failed")

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        ws = self._ws
        assert ws is not None
        self._audio_start = self.result.caller_audio_started_at = loop.time()
        sizes = itertools.cycle(self.frame_sizes)
        while not self._ending:
            frame_ms = next(sizes)
            deadline = self._audio_start + self._pos_ms / 1000
            if self.jitter_ms:
                deadline += random.uniform(0, self.jitter_ms) / 1000
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._ending:
                return
            fmt = self._listen_fmt
            assert fmt is not None
            rate = fmt.sample_rate
            a = round(self._pos_ms * rate / 1000)
            b = round((self._pos_ms + frame_ms) * rate / 1000)
            samples, onsets, ends_in_speech = self.source.render(a, b, rate)
            now = loop.time()
            for x in onsets:
                if x > a or not self._in_speech:  # speech continuing from the last frame is no new burst
                    at = now + (x - a) / rate
                    self.result.speech_started_at.append(at)
                    self._emit("caller starts speaking")
            self._in_speech = ends_in_speech
            data = encode(samples, fmt)
            self.result.sent_audio += data
            self.result.sent_frames += 1
            self.result.sent_ms += frame_ms
            self._pos_ms += frame_ms
            await ws.send('{"t":"audio","data":"' + base64.b64encode(data).decode("ascii") + '"}')
            if onsets:
                self._notify()

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._internal_errors.append(task.exception())  # type: ignore[arg-type]

    def _notify(self) -> None:
        """Wake every waiter so it re-checks its condition."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait(
        self,
        ready: Callable[[], Any],
        limit: float | None,
        what: str,
        wake_at: Callable[[], float | None] | None = None,
    ) -> Any:
        """Re-check `ready` whenever the call changes (or at `wake_at`) until it is not None."""
        loop = asyncio.get_running_loop()
        give_up = None if limit is None else loop.time() + limit
        while True:
            value = ready()
            if value is not None:
                return value
            if self._finished:
                raise CallEnded(f"the call ended (by {self.result.ended_by}) before {what}")
            now = loop.time()
            if give_up is not None and now >= give_up:
                raise TimeoutError(f"timed out after {limit} s waiting for {what}")
            wake = give_up
            extra = wake_at() if wake_at is not None else None
            if extra is not None:
                wake = extra if wake is None else min(wake, extra)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), None if wake is None else max(0.0, wake - now))

    def _violation(self, text: str) -> None:
        self.result.violations.append(text)
        self._emit(f"VIOLATION: {text}")

    def _rel(self, t: float) -> float:
        return t - (self.result.hello_sent_at or t)

    def _emit(self, text: str) -> None:
        log.debug("%s: %s", self.result.callid, text)
        if self.on_event is not None:
            now = asyncio.get_running_loop().time()
            self.on_event(self._rel(now), text)
