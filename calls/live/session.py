"""One phone call: 46elks on one side, an OpenAI Realtime session on the other.

Plain asyncio; it knows nothing of Channels or Django. The consumer hands it every message 46elks
sends and gives it a function that sends messages back; the OpenAI client hands it every event.
On the audio path all of it is plain calls, not coroutines: a frame is read, checked and written
on in one step, with no task switch and no await. Whatever must wait (the database, OpenAI's
answer, a goodbye) runs in tasks of its own. Records are written through a `CallStore`, which
queues them: nothing on the audio path waits for the database.

This file holds the state of a call, what the consumer calls, and the hot path both ways. The
rest of a call's life lives beside it, one phase a file, as parts of the same class:
`setup` (hello → record → OpenAI ready), `turns` (barge-in, replies, silence, goodbyes, tools),
`transcript` (what was said, as the caller heard it) and `ending` (however a call ends).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from assistants.realtime_config import AssistantConfig

from . import elks
from .ending import CallEnding
from .guard import FLOOD, MessageGuard, burst_for
from .observers import CallObserver, ObserverFactory, safe
from .playback import Playback
from .realtime import RealtimeClient, is_benign_error
from .registry import PROCESS_CALLS, CallRegistry
from .setup import CallSetup
from .transcript import CallTranscript
from .turns import CallTurns
from .types import (
    CALLER_HANGUP,
    CONNECTION_LOST,
    CallerGone,
    CallStore,
    Connect,
    Outcome,
    Send,
    SessionSettings,
    ToolRunner,
    ToolRunnerFactory,
)

log = logging.getLogger(__name__)

_CONTROL = frozenset(("hello", "bye", "sync"))


class CallSession(CallSetup, CallTurns, CallTranscript, CallEnding):
    """The state of one call, driven by the consumer (46elks frames) and its own OpenAI reader."""

    def __init__(
        self,
        *,
        send: Send,
        close: Callable[[], Awaitable[None]],
        store: CallStore,
        settings: SessionSettings,
        connect: Connect = RealtimeClient.connect,
        clock: Callable[[], float] = time.monotonic,
        observer_factories: list[ObserverFactory] | tuple[ObserverFactory, ...] = (),
        tool_runner_factory: ToolRunnerFactory | None = None,
        registry: CallRegistry = PROCESS_CALLS,
    ) -> None:
        self._send = send
        self._close_socket = close
        self.store = store
        self.settings = settings
        self._connect = connect
        self._now = clock
        self._registry = registry
        self._observer_factories = list(observer_factories)
        self._tool_runner_factory = tool_runner_factory
        self.observers: list[CallObserver] = []
        self._audio_observers: list[CallObserver] = []
        self.tools: ToolRunner | None = None
        self.hello: elks.Hello | None = None
        self.call_pk: int | None = None
        self.config: AssistantConfig | None = None
        self.started_at = clock()
        self.problems: collections.Counter[str] = collections.Counter()
        self.stats = {"audio_in": 0, "audio_out": 0, "interrupts": 0, "truncates": 0}
        self._tasks: set[asyncio.Task] = set()
        self._guard = MessageGuard(rate=settings.max_messages_per_second, burst=burst_for(settings), now=clock())
        self._max_message = settings.max_message_bytes

        # setup: hello -> the call's record and OpenAI's session
        self._rt: RealtimeClient | None = None
        self._connect_task: asyncio.Future[RealtimeClient] | None = None
        self._rt_ready = False  # relaying: OpenAI accepted our session.update and the call is recorded
        self._setup_waiter: asyncio.Future[str] | None = None  # what was wrong with our session.update, or ""
        self._answered = False  # OpenAI accepted our session.update
        self._recorded = False  # the call is recorded and its observers are listening
        self._held_events: list[dict] = []  # OpenAI events between those two moments
        self._opening: asyncio.Task | None = None  # the hello being handled
        # Caller audio (unchecked base64, when it came) until OpenAI is ready.
        self._pending_audio: collections.deque[tuple[str, float]] = collections.deque()
        self._pending_bytes = 0
        self._bytes_per_sample = 2

        # turns: what 46elks is playing, OpenAI's replies, the caller's silence
        self.playback: Playback | None = None
        self._need_sending = False  # after an interrupt, 46elks ignores audio until a new `sending`
        self._muted_response: str | None = None  # the reply the caller cut off: its remaining audio is dropped
        self._current_response: str | None = None
        self._response_active = False
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._first_audio_sent: str | None = None  # response whose first audio went out
        self._audio_seq = 0  # audio messages sent to 46elks, to match sync answers
        self._syncs: collections.deque[tuple[int, asyncio.Future[None] | None]] = collections.deque()
        self._end_after_reply: Outcome | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._silence_timer: asyncio.TimerHandle | None = None
        self._silence_stage = 0
        self._last_error = ""

        # transcript
        self._positions: dict[str, int] = {}
        self._next_position = 0
        self._assistant_text: dict[str, list[str]] = {}
        self._assistant_final: dict[str, str] = {}
        self._interrupted: dict[str, tuple[float, float]] = {}  # item -> (heard_ms, received_ms)

        # ending
        self._hello_timer: asyncio.TimerHandle | None = None
        self._elks_bye = asyncio.Event()
        self._bye_sent = False
        self._ending: asyncio.Task | None = None
        self._caller_gone = False  # a send to 46elks failed
        self.outcome: Outcome | None = None
        self.finished = asyncio.Event()

    # ------------------------------------------------------------------ what the consumer calls

    def start(self) -> None:
        """Called once the socket is accepted: 46elks must say hello soon."""
        self._hello_timer = asyncio.get_running_loop().call_later(self.settings.hello_timeout, self._no_hello)

    def on_message(self, data: bytes | str) -> None:
        """Called for every message from 46elks (UTF-8 bytes, or text), in order; returns at once."""
        if len(data) > self._max_message:
            self._problem("oversized message", f"{len(data)} bytes (limit {self._max_message})")
            return
        admitted = self._guard.admit(self._now())
        try:
            msg = elks.parse(data)
            t = msg["t"]
            if not admitted:
                self._over_rate(dropped=t not in _CONTROL)
                if t not in _CONTROL:
                    return
            if t == "audio":
                if self._rt_ready:
                    b64 = elks.audio_bytes(msg.get("data"), self._bytes_per_sample)
                    if not self._rt.append_audio(b64):
                        self._problem("caller audio dropped", "OpenAI is not reading the call's audio")
                    self.stats["audio_in"] += 1
                    if self._audio_observers:
                        self._notify_audio("caller_audio", b64)
                else:
                    self._buffer_audio(msg.get("data"))
            elif t == "sync":
                self._on_sync()
            elif t == "hello":
                self._on_hello(msg)
            elif t == "bye":
                self._on_elks_bye(msg)
            else:
                self._problem("unknown message type", repr(t)[:40])
        except elks.ProtocolError as exc:
            if not admitted:
                self._over_rate(dropped=True)
                return
            self._problem("bad message", str(exc))
        except Exception:  # a bug of ours must cost one message, not the call
            log.exception("call %s: handling a 46elks message failed", self.hello.callid if self.hello else "-")

    def _over_rate(self, *, dropped: bool) -> None:
        """A message found the flood limit's bucket empty: drop it unless it is control; end a sustained flood."""
        guard = self._guard
        if dropped:
            self.problems["messages over the rate limit (dropped)"] += 1
        if guard.first_drop_of_run():
            self._problem("message flood", f"over {guard.rate:g} messages a second after a burst of {guard.burst:g}")
        if guard.flooding and self._ending is None and self.hello is not None:
            guard.flooding = False
            self.request_hang_up(FLOOD)

    async def opened(self) -> None:
        """Return once the hello (if one came) is handled: the call is recorded, or refused."""
        if self._opening is not None:
            await asyncio.shield(self._opening)

    def on_binary(self, data: bytes | None) -> None:
        """46elks speaks JSON text only; binary frames are ignored."""
        self._problem("binary frame", f"{len(data or b'')} bytes")

    async def on_disconnect(self) -> None:
        """Called when the 46elks socket is gone, whatever the cause; idempotent."""
        if self.hello is None:
            self._cancel_hello_timer()
            self.finished.set()
            return
        if self._elks_bye.is_set() or self._bye_sent:
            outcome = None  # the ending already under way decides
        else:
            outcome = CONNECTION_LOST
        self._elks_bye.set()  # nothing more will come
        await self.end(outcome or CALLER_HANGUP, polite=False)

    async def hang_up(self, outcome: Outcome) -> None:
        """End the call from our side: let queued speech finish, then bye."""
        await self.end(outcome, polite=True)

    def request_hang_up(self, outcome: Outcome) -> None:
        """Schedule `hang_up` from code that must not wait for the call to end."""
        self._spawn(self.hang_up(outcome))

    async def abort(self, outcome: Outcome) -> None:
        """The process is stopping or the consumer was cancelled: record the call, fast."""
        await self.end(outcome, polite=False)

    # ------------------------------------------------------------------ the hot path from OpenAI

    def _on_openai_event(self, event: dict) -> None:
        """Called by the OpenAI client for each event, in the step that read it off the socket."""
        kind = event["type"]
        try:
            if not self._rt_ready:
                if self._answered:
                    if not self._recorded:
                        self._held_events.append(event)  # relaying starts once the call is recorded
                    return
                waiter = self._setup_waiter
                if waiter is not None and not waiter.done() and kind in ("session.updated", "error"):
                    problem = self._check_session_answer(event)
                    if not problem:
                        self._answered = True
                        if self._recorded:
                            self._become_ready()
                    waiter.set_result(problem)
            elif kind == "response.output_audio.delta":
                self._on_audio_delta(event)
            else:
                handler = self._handlers.get(kind)
                if handler is not None:
                    handler(self, event)
        except CallerGone:
            self._lose_caller()
        except Exception as exc:
            log.exception("call %s: handling OpenAI's %s failed", self.hello.callid, kind)
            self._rt_ready = False
            self._spawn(self.end(Outcome("failed", "internal_error", f"{type(exc).__name__}: {exc}"), polite=True))

    def _on_audio_delta(self, event: dict) -> None:
        if event.get("response_id") == self._muted_response:
            return  # the rest of an answer the caller interrupted
        delta = event.get("delta")
        if not isinstance(delta, str):
            self._problem("openai audio delta without data", "ignored")
            return
        if self._need_sending:
            self._need_sending = False
            self._send(elks.sending(self.config.audio_format))
        now = self._now()
        self.playback.add(event.get("item_id") or "", elks.base64_nbytes(delta), now)
        self._audio_seq += 1
        self.stats["audio_out"] += 1
        self._send(elks.audio(delta))
        response_id = event.get("response_id")
        if response_id != self._first_audio_sent:
            self._first_audio_sent = response_id
            self._notify("first_audio", now, response_id)
        if self._audio_observers:
            self._notify_audio("assistant_audio", delta)

    @property
    def openai_received_at(self) -> float | None:
        """When the OpenAI event being handled came off the socket (where the bridge's own delay starts)."""
        return self._rt.received_at if self._rt is not None else None

    def _on_error(self, event: dict) -> None:
        error = event.get("error") or {}
        if is_benign_error(error):
            log.debug("call %s: benign openai error: %s", self.hello.callid, error.get("message"))
            return
        if error.get("code") == "session_expired":
            self._last_error = "OpenAI ended the session at its 60-minute limit"
        else:
            self._last_error = f"OpenAI error {error.get('code') or error.get('type')}: {error.get('message')}"
        self._problem("openai error", self._last_error[:300])
        self._notify("openai_error", error)

    # OpenAI's events the session acts on (besides audio deltas), and where each is handled.
    _handlers: dict[str, Callable[[Any, dict], None]] = {
        "input_audio_buffer.speech_started": CallTurns._on_speech_started,
        "input_audio_buffer.committed": CallTranscript._on_committed,
        "input_audio_buffer.speech_stopped": CallTurns._on_speech_stopped,
        "response.function_call_arguments.done": CallTurns._on_function_call,
        "conversation.item.added": CallTranscript._on_item_seen,
        "conversation.item.created": CallTranscript._on_item_seen,
        "response.output_item.added": CallTranscript._on_item_seen,
        "response.created": CallTurns._on_response_created,
        "response.done": CallTurns._on_response_done,
        "response.output_audio_transcript.delta": CallTranscript._on_transcript_delta,
        "response.output_audio_transcript.done": CallTranscript._on_transcript_done,
        "conversation.item.input_audio_transcription.completed": CallTranscript._on_caller_transcript,
        "conversation.item.input_audio_transcription.failed": CallTranscript._on_caller_transcript_failed,
        "error": _on_error,
    }

    def _notify(self, hook: str, *args: Any) -> None:
        for observer in self.observers:
            safe(observer, hook, self, *args)

    def _notify_audio(self, hook: str, data: str | bytes, at: float | None = None) -> None:
        at = self._now() if at is None else at
        for observer in self._audio_observers:
            safe(observer, hook, self, data, at)

    def _safe_send(self, message: bytes) -> None:
        try:
            self._send(message)
        except Exception as exc:  # the socket may already be gone while we end
            log.debug("send to 46elks failed: %s", exc)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _problem(self, kind: str, detail: str) -> None:
        """Log the first of each kind of misbehaviour per call; count the rest for the summary."""
        self.problems[kind] += 1
        if self.problems[kind] == 1:
            log.warning("call %s: %s: %s", self.hello.callid if self.hello else "-", kind, detail)
