"""One phone call: 46elks on one side, an OpenAI Realtime session on the other.

Plain asyncio; it knows nothing of Channels. The consumer hands it every message 46elks sends and
gives it a function that sends messages back; the OpenAI client hands it every event. On the
audio path all of it is plain calls, not coroutines: a frame is read, checked and written on in
one step, with no task switch and no await. Whatever must wait (the database, OpenAI's answer,
a goodbye) runs in tasks of its own. Records are written through a `CallStore`, which queues
them: nothing on the audio path waits for the database.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orjson import dumps as _orjson_dumps

from assistants.realtime_config import AssistantConfig, echoed_formats_match, greeting, session_update

from . import elks, registry
from .observers import CallObserver, safe
from .playback import Playback
from .realtime import RealtimeClient, RealtimeError, is_benign_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a call ended, as it will be recorded."""

    status: str  # calls.models.CallStatus value
    end_reason: str  # calls.models.EndReason value
    detail: str = ""


@dataclass(frozen=True)
class Opened:
    """What the store answers to a `hello`: the call's record and assistant, or why it is refused."""

    call_pk: int | None
    assistant: AssistantConfig | None
    refusal: str = ""


@dataclass(frozen=True)
class TranscriptLine:
    position: int
    role: str
    text: str
    item_id: str = ""
    interrupted: bool = False
    offset_ms: int | None = None


class CallerGone(Exception):
    """Sending to 46elks failed: the caller's side of the call is gone."""


Send = Callable[[bytes], None]
"""Sends one message to 46elks now (it must not block); raises CallerGone once the socket is closing."""


class CallStore(Protocol):
    """Where a call's records go; the session calls it, never the ORM."""

    async def open(
        self,
        hello: elks.Hello,
        *,
        refuse: Outcome | None = None,
        on_assistant: Callable[[AssistantConfig], None] | None = None,
    ) -> Opened:
        """Record the call and pick its assistant; with `refuse`, record it as refused for that reason.

        `on_assistant` (optional) is called on the event loop as soon as the assistant is known,
        before the call is recorded.
        """

    def transcript(self, call_pk: int, line: TranscriptLine) -> None:
        """Queue a transcript line (insert or replace by position); must not block."""

    async def finish(self, call_pk: int, outcome: Outcome) -> None: ...


@dataclass(frozen=True)
class SessionSettings:
    openai_url: str
    openai_api_key: str
    hello_timeout: float = 5.0
    setup_timeout: float = 10.0
    bye_timeout: float = 5.0
    # Caller audio kept while OpenAI is connecting: beyond it the oldest is dropped.
    max_buffered_audio_s: float = 10.0
    max_message_bytes: int = 256 * 1024
    max_messages_per_second: int = 200
    max_calls_per_process: int = 100
    max_calls_per_number: int = 50


Connect = Callable[..., Awaitable[RealtimeClient]]


class ToolRunner(Protocol):
    """Runs the functions an assistant may call; built per call once the assistant is known."""

    def definitions(self) -> list[dict[str, Any]]:
        """GA function tools for `session.update`."""

    async def run(self, session: CallSession, name: str, arguments: str, call_id: str) -> str:
        """The function's output for the model (a string, usually JSON). Errors are told to the model."""


ToolRunnerFactory = Callable[["CallSession"], "ToolRunner | None"]
ObserverFactories = list[Callable[["CallSession"], "CallObserver | None"]]

CALLER_HANGUP = Outcome("completed", "caller_hangup")
CONNECTION_LOST = Outcome("failed", "connection_lost", "The 46elks connection closed without a bye.")
GOODBYE = "Say a short, friendly goodbye to the caller now, in the language of the conversation."
SILENCE_REPROMPT = (
    "The caller has been silent for a while. Briefly and kindly check whether they are still there, "
    "in the language of the conversation."
)
MAX_DURATION_GOODBYE = (
    "The call has reached its maximum length. Politely tell the caller that you have to end the call now "
    "and say goodbye, in one or two short sentences, in the language of the conversation."
)
SHUTDOWN_GOODBYE = (
    "The line has to close now for maintenance. Apologise briefly, ask the caller to call back in a minute, "
    "and say goodbye, in the language of the conversation."
)


class CallSession:
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
        observer_factories: ObserverFactories = (),
        tool_runner_factory: ToolRunnerFactory | None = None,
        is_test: bool = False,
    ) -> None:
        self._send = send
        self._close_socket = close
        self.store = store
        self.settings = settings
        self._connect = connect
        self._now = clock

        self._observer_factories = list(observer_factories)
        self._tool_runner_factory = tool_runner_factory
        self.observers: list[CallObserver] = []
        self._audio_observers: list[CallObserver] = []
        self.tools: ToolRunner | None = None
        self.tool_timeout = 10.0
        self.is_test = is_test
        self.hello: elks.Hello | None = None
        self.call_pk: int | None = None
        self.config: AssistantConfig | None = None
        self.started_at = clock()

        self._rt: RealtimeClient | None = None
        self._connect_task: asyncio.Future[RealtimeClient] | None = None
        self._rt_ready = False
        self._setup_waiter: asyncio.Future[str] | None = None  # what was wrong with our session.update, or ""
        self._answered = False  # OpenAI accepted our session.update
        self._recorded = False  # the call is recorded and its observers are listening
        self._held_events: list[dict] = []  # OpenAI events between those two moments
        self._opening: asyncio.Task | None = None  # the hello being handled
        self._pending_audio: collections.deque[str] = collections.deque()  # unchecked, until OpenAI is ready
        self._pending_bytes = 0
        self._bytes_per_sample = 2
        self.playback: Playback | None = None
        self._need_sending = False
        self._muted_response: str | None = None
        self._current_response: str | None = None
        self._last_error = ""
        self._audio_seq = 0  # audio messages sent to 46elks, to match sync answers
        self._syncs: collections.deque[tuple[int, asyncio.Future[None] | None]] = collections.deque()

        self._positions: dict[str, int] = {}
        self._next_position = 0
        self._assistant_text: dict[str, list[str]] = {}
        self._assistant_final: dict[str, str] = {}
        self._interrupted: dict[str, tuple[float, float]] = {}  # item -> (heard_ms, received_ms)

        self._tasks: set[asyncio.Task] = set()
        self._hello_timer: asyncio.TimerHandle | None = None
        self._elks_bye = asyncio.Event()
        self._bye_sent = False
        self._ending: asyncio.Task | None = None
        self.outcome: Outcome | None = None
        self.finished = asyncio.Event()
        self.problems: collections.Counter[str] = collections.Counter()
        self.stats = {"audio_in": 0, "audio_out": 0, "interrupts": 0, "truncates": 0}
        self._response_active = False
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._first_audio_sent: str | None = None  # response whose first audio went out
        self._caller_gone = False  # a send to 46elks failed
        self._end_after_reply: Outcome | None = None
        self._window_start = 0.0
        self._window_count = 0
        self._flood_seconds = 0
        self._max_rate = settings.max_messages_per_second
        self._max_message = settings.max_message_bytes
        self._timers: list[asyncio.TimerHandle] = []
        self._silence_timer: asyncio.TimerHandle | None = None
        self._silence_stage = 0

    # ------------------------------------------------------------------ entry points (consumer)

    def start(self) -> None:
        """Called once the socket is accepted: 46elks must say hello soon."""
        self._hello_timer = asyncio.get_running_loop().call_later(self.settings.hello_timeout, self._no_hello)

    def on_message(self, data: bytes | str) -> None:
        """Called for every message from 46elks (UTF-8 bytes, or text), in order; returns at once."""
        now = self._now()
        if now - self._window_start >= 1.0:
            self._close_rate_window(now)
        self._window_count += 1
        if self._window_count > self._max_rate:
            self.problems["messages over the rate limit (dropped)"] += 1
            return
        if len(data) > self._max_message:
            self._problem("oversized message", f"{len(data)} bytes (limit {self._max_message})")
            return
        try:
            msg = elks.parse(data)
            t = msg["t"]
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
            self._problem("bad message", str(exc))
        except Exception:  # a bug of ours must cost one message, not the call
            log.exception("call %s: handling a 46elks message failed", self.hello.callid if self.hello else "-")

    def _close_rate_window(self, now: float) -> None:
        """Once a second: a caller over the message rate for 5 seconds running is ended politely."""
        if self._window_count > self._max_rate:
            self._flood_seconds += 1
            self._problem("message flood", f"{self._window_count} messages in one second (limit {self._max_rate})")
            if self._flood_seconds >= 5 and self._ending is None and self.hello is not None:
                self.request_hang_up(Outcome("failed", "protocol_error", "46elks sent messages far too fast."))
        else:
            self._flood_seconds = 0
        self._window_start = now
        self._window_count = 0

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

    # ------------------------------------------------------------------ 46elks side

    def _on_hello(self, msg: dict) -> None:
        if self.hello is not None:
            self._problem("second hello", "ignored")
            return
        if self._ending is not None:  # too late: the socket is closing (no hello in time)
            self._problem("hello after the end", "ignored")
            return
        hello = elks.parse_hello(msg)
        self.hello = hello
        self._cancel_hello_timer()
        log.info("call %s: hello from %s to %s", hello.callid, hello.from_number, hello.to_number)
        refuse = self._over_limit(hello)
        registry.live.add(self)  # from now on it counts against the limits
        self._opening = self._spawn(self._open(hello, refuse))

    async def _open(self, hello: elks.Hello, refuse: Outcome | None) -> None:
        """Record the call and find its assistant; meanwhile 46elks' messages keep coming (audio is kept)."""
        try:
            await self._open_call(hello, refuse)
        except Exception as exc:
            log.exception("call %s: could not be set up", hello.callid)
            self.outcome = Outcome("failed", "internal_error", f"{type(exc).__name__}: {exc}")
            self._cancel_early_connect()
            self._spawn(self.end(self.outcome, polite=False))

    async def _open_call(self, hello: elks.Hello, refuse: Outcome | None) -> None:
        opened = await self.store.open(hello, refuse=refuse, on_assistant=self._prepare)
        self.call_pk = opened.call_pk
        if opened.assistant is None:
            self._cancel_early_connect()
            log.warning("call %s refused: %s", hello.callid, opened.refusal)
            self.outcome = Outcome("rejected", "refused", opened.refusal)
            self._send_bye()
            self._spawn(self._wait_elks_bye_then_close())
            return
        if self.config is None:
            self._prepare(opened.assistant)
        self.config = opened.assistant  # as recorded, with its revision
        self._setup_observers()
        self._recorded = True
        if self._answered:
            self._become_ready()

    def _prepare(self, cfg: AssistantConfig) -> None:
        """The assistant is known: tell 46elks the formats and set OpenAI's session up at once.

        Only relaying waits for the call's record (its observers must see all of the call).
        """
        self.config = cfg
        fmt = cfg.format
        self._bytes_per_sample = fmt.bytes_per_sample
        self.playback = Playback(fmt.bytes_per_ms)
        self._declare_formats(fmt.name)
        self._connect_task = asyncio.ensure_future(
            self._connect(
                self.settings.openai_url,
                api_key=self.settings.openai_api_key,
                model=cfg.model,
                timeout=self.settings.setup_timeout,
                on_event=self._on_openai_event,
            )
        )
        self._setup_tools()
        self._spawn(self._run_realtime(cfg))

    def _declare_formats(self, fmt: str) -> None:
        self._safe_send(elks.listening(fmt))
        self._safe_send(elks.sending(fmt))

    def _cancel_early_connect(self) -> None:
        task, self._connect_task = self._connect_task, None
        if task is None:
            return
        if task.done() and not task.cancelled() and task.exception() is None:
            self._spawn(task.result().close())
        else:
            task.cancel()

    def _setup_tools(self) -> None:
        if self._tool_runner_factory is not None:
            try:
                self.tools = self._tool_runner_factory(self)
            except Exception:
                log.exception("call %s: tools could not be set up; continuing without them", self.hello.callid)

    def _setup_observers(self) -> None:
        for factory in self._observer_factories:
            try:
                observer = factory(self)
            except Exception:
                log.exception("call %s: observer %r could not be set up", self.hello.callid, factory)
                continue
            if observer is not None:
                self.observers.append(observer)
                if observer.wants_audio:
                    self._audio_observers.append(observer)
        self._notify("started")

    def _notify(self, hook: str, *args: Any) -> None:
        for observer in self.observers:
            safe(observer, hook, self, *args)

    def _notify_audio(self, hook: str, data: str | bytes) -> None:
        now = self._now()
        for observer in self._audio_observers:
            safe(observer, hook, self, data, now)

    def _over_limit(self, hello: elks.Hello) -> Outcome | None:
        """Why this call must be refused before it costs anything, if it must."""
        if not registry.accepting:
            return Outcome("rejected", "server_shutdown", "The server was restarting; the call was refused.")
        if len(registry.live) >= self.settings.max_calls_per_process:
            detail = f"This server process already handles {len(registry.live)} calls (MAX_CALLS_PER_PROCESS)."
            return Outcome("rejected", "limit", detail)
        if registry.count_for_number(hello.to_number) >= self.settings.max_calls_per_number:
            detail = f"{hello.to_number} already has {self.settings.max_calls_per_number} calls (MAX_CALLS_PER_NUMBER)."
            return Outcome("rejected", "limit", detail)
        return None

    def _buffer_audio(self, data: object) -> None:
        """Keep caller audio while the assistant is looked up and OpenAI connects; it is checked when sent."""
        if self.hello is None:
            self._problem("audio before hello", "ignored")
            return
        if self._ending is not None:
            return
        elks.audio_bytes(data, self._bytes_per_sample if self.config is not None else 1)
        self._pending_audio.append(data)
        self._pending_bytes += elks.base64_nbytes(data)
        # Until the assistant (and so the format) is known, allow for the densest one.
        bytes_per_ms = self.config.format.bytes_per_ms if self.config is not None else 48
        limit = self.settings.max_buffered_audio_s * 1000 * bytes_per_ms
        while self._pending_bytes > limit and self._pending_audio:
            self._pending_bytes -= elks.base64_nbytes(self._pending_audio.popleft())
            self.problems["caller audio dropped while connecting"] += 1

    def _send_buffered_audio(self) -> None:
        while self._pending_audio:
            try:
                self._rt.append_audio(elks.audio_bytes(self._pending_audio.popleft(), self._bytes_per_sample))
            except elks.ProtocolError as exc:
                self._problem("bad message", str(exc))
        self._pending_bytes = 0

    def _on_sync(self) -> None:
        if not self._syncs:
            self._problem("sync we did not ask for", "ignored")
            return
        seq, waiter = self._syncs.popleft()
        if seq == self._audio_seq and self.playback is not None:
            self.playback.played_out(self._now())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_elks_bye(self, msg: dict) -> None:
        if self.hello is None:
            self._problem("bye before hello", "ignored")
            return
        if self._elks_bye.is_set():
            self._problem("message after bye", "bye")
            return
        self._elks_bye.set()
        reason = msg.get("reason")
        message = str(msg.get("message") or "")[:500]
        log.info("call %s: 46elks bye (%s) %s", self.hello.callid if self.hello else "-", reason, message)
        if self._ending is not None or self.hello is None:
            return
        if reason == "error":
            outcome = Outcome("failed", "telco_error", message or "46elks ended the call with an error.")
        else:
            outcome = Outcome("completed", "caller_hangup", message)
        self._ending = asyncio.ensure_future(self._end(outcome, polite=False))

    def _send_bye(self) -> None:
        if not self._bye_sent:
            self._bye_sent = True
            self._safe_send(elks.BYE_MSG)

    def _safe_send(self, message: bytes) -> None:
        try:
            self._send(message)
        except Exception as exc:  # the socket may already be gone while we end
            log.debug("send to 46elks failed: %s", exc)

    async def _sync(self, timeout: float) -> bool:
        """Ask 46elks to confirm that everything sent so far has played."""
        waiter = asyncio.get_running_loop().create_future()
        self._syncs.append((self._audio_seq, waiter))
        self._safe_send(elks.SYNC_MSG)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return False

    def _request_sync(self) -> None:
        """A sync nobody waits for: its answer tells the playback estimate that the queue ran dry."""
        self._syncs.append((self._audio_seq, None))
        self._safe_send(elks.SYNC_MSG)

    # ------------------------------------------------------------------ OpenAI side

    async def _run_realtime(self, cfg: AssistantConfig) -> None:
        hello = self.hello
        connecting = self._connect_task
        if connecting is None:  # the call ended while it was being recorded
            return
        try:
            rt = await connecting
        except RealtimeError as exc:
            log.error("call %s: %s", hello.callid, exc.reason)
            await self.end(Outcome("failed", "openai_error", exc.reason), polite=True)
            return
        self._rt = rt
        if self._ending is not None:
            await rt.close()
            return
        closed = asyncio.ensure_future(rt.wait_closed())
        try:
            tools = self.tools.definitions() if self.tools is not None else None
            rt.send(session_update(cfg, tools=tools))
            problem = await self._await_session_updated(closed)
            if problem and self.outcome is None:
                log.error("call %s: %s", hello.callid, problem)
                await self.end(Outcome("failed", "openai_error", problem), polite=True)
                return
            await closed
        except Exception as exc:
            log.exception("call %s: bridge failed", hello.callid)
            await self.end(Outcome("failed", "internal_error", f"{type(exc).__name__}: {exc}"), polite=True)
            return
        finally:
            closed.cancel()
        self._rt_ready = False
        if self._ending is None and self.outcome is None and not self._caller_gone:
            detail = self._last_error or "OpenAI closed the session"
            detail += f" (close code {rt.close_code}{': ' + rt.close_reason if rt.close_reason else ''})"
            log.error("call %s: %s", hello.callid, detail)
            await self.end(Outcome("failed", "openai_error", detail), polite=True)

    async def _await_session_updated(self, closed: asyncio.Future) -> str:
        """Wait until OpenAI answers our `session.update`; a sentence for the record when it went wrong."""
        waiter = self._setup_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait((waiter, closed), timeout=self.settings.setup_timeout, return_when=FIRST_COMPLETED)
        finally:
            self._setup_waiter = None
        if waiter.done():
            return waiter.result()
        if not closed.done():
            return f"OpenAI did not confirm the session settings within {self.settings.setup_timeout:g} s."
        return "OpenAI closed the connection before the session was configured" + (
            f" (close code {self._rt.close_code}: {self._rt.close_reason})" if self._rt.close_code else ""
        )

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

    def _check_session_answer(self, event: dict) -> str:
        """What is wrong with OpenAI's answer to our `session.update` (a sentence for the record), or ""."""
        if event["type"] == "error":
            error = event.get("error") or {}
            return f"OpenAI rejected the session settings: {error.get('message') or error}"
        return echoed_formats_match(self.config, event.get("session") or {}) or ""

    def _become_ready(self) -> None:
        """OpenAI's session is set up and the call recorded: relay, greet, and start the clocks.

        Called by whichever comes second, in the step it happens in (not when a task waiting for
        it resumes), so that the events read right after it find the call ready.
        """
        if self._ending is not None or self._rt_ready:
            return
        cfg = self.config
        self._rt_ready = True
        self._send_buffered_audio()
        first = greeting(cfg)
        if first is not None:
            self._rt.send(first)
        self._start_timers(cfg)
        held, self._held_events = self._held_events, []
        for event in held:
            self._on_openai_event(event)

    def _lose_caller(self) -> None:
        """A send to 46elks failed: stop relaying. 46elks' bye or the disconnect, on its way, says how it ended."""
        if self._caller_gone:
            return
        self._caller_gone = True
        self._rt_ready = False
        self._spawn(self._end_if_caller_silent())

    async def _end_if_caller_silent(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.finished.wait()), self.settings.bye_timeout)
        except TimeoutError:
            await self.end(CONNECTION_LOST, polite=False)

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

    def _on_speech_started(self, event: dict) -> None:
        self._silence_stage = 0
        if self._silence_timer is not None:
            self._silence_timer.cancel()
            self._silence_timer = None
        if not self.config.allow_interruptions:
            return
        now = self._now()
        if not self.playback.audible(now):
            return
        # The caller talks over the assistant: stop playback now, then fix the model's memory.
        self._send(elks.INTERRUPT)
        self._need_sending = True
        self._muted_response = self._current_response
        self.stats["interrupts"] += 1
        self._notify("interrupted", now)
        for cut in self.playback.cut(now):
            self._interrupted[cut.item_id] = (cut.heard_ms, cut.received_ms)
            self._rt.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": cut.item_id,
                    "content_index": 0,
                    "audio_end_ms": cut.heard_ms,
                }
            )
            self.stats["truncates"] += 1
            self._write_assistant(cut.item_id)

    def _on_response_created(self, event: dict) -> None:
        self._current_response = (event.get("response") or {}).get("id")
        self._response_active = True
        self._response_idle.clear()

    @property
    def openai_received_at(self) -> float | None:
        """When the OpenAI event being handled came off the socket (where the bridge's own delay starts)."""
        return self._rt.received_at if self._rt is not None else None

    def _on_response_done(self, event: dict) -> None:
        response = event.get("response") or {}
        self._response_active = False
        self._response_idle.set()
        self._notify("response_done", response)
        self._arm_silence()
        status = response.get("status")
        if status == "failed":
            details = response.get("status_details") or {}
            error = details.get("error") or {}
            self._problem("openai response failed", str(error.get("message") or error or details)[:300])
        for item in response.get("output") or ():
            if isinstance(item, dict) and item.get("id") in self._assistant_text:
                self._write_assistant(item["id"])
        if self._end_after_reply is not None and status != "cancelled" and not self._has_function_call(response):
            outcome, self._end_after_reply = self._end_after_reply, None
            self._spawn(self.hang_up(outcome))
        elif self.playback is not None and self.playback.audible(self._now()):
            self._request_sync()

    @staticmethod
    def _has_function_call(response: dict) -> bool:
        return any(isinstance(i, dict) and i.get("type") == "function_call" for i in response.get("output") or ())

    # ------------------------------------------------------------------ limits in time

    def _start_timers(self, cfg: AssistantConfig) -> None:
        loop = asyncio.get_running_loop()
        limit_s = cfg.max_call_minutes * 60 - (self._now() - self.started_at)
        outcome = Outcome("completed", "max_duration", f"The call reached its limit of {cfg.max_call_minutes} minutes.")
        self._timers.append(
            loop.call_later(
                max(limit_s, 0), lambda: self._spawn(self.say_goodbye_and_end(outcome, MAX_DURATION_GOODBYE))
            )
        )
        self._arm_silence()

    def _arm_silence(self) -> None:
        """(Re)start the silence clock: it runs from when the assistant stops being heard."""
        if self.config is None or self._ending is not None:
            return
        if self._silence_timer is not None:
            self._silence_timer.cancel()
        now = self._now()
        delay = self.playback.remaining_s(now) + self.config.silence_timeout_seconds
        self._silence_timer = asyncio.get_running_loop().call_later(delay, self._on_silence)

    def _on_silence(self) -> None:
        self._silence_timer = None
        if self._ending is not None or not self._rt_ready:
            return
        if self._response_active or self.playback.audible(self._now()):
            self._arm_silence()
            return
        if self._silence_stage == 0:
            self._silence_stage = 1
            log.info(
                "call %s: caller silent for %ss; checking they are there",
                self.hello.callid,
                self.config.silence_timeout_seconds,
            )
            self._rt.send({"type": "response.create", "response": {"instructions": SILENCE_REPROMPT}})
        else:
            outcome = Outcome("completed", "silence", "The caller stayed silent after a reminder.")
            self._spawn(self.say_goodbye_and_end(outcome))

    async def say_goodbye_and_end(self, outcome: Outcome, instructions: str = GOODBYE, deadline: float = 12.0) -> None:
        """Have the assistant say goodbye, let it be heard, then hang up; hang up anyway after `deadline`."""
        if self._ending is not None or not self._rt_ready:
            await self.end(outcome, polite=True)
            return
        log.info("call %s: ending (%s)", self.hello.callid, outcome.end_reason)
        try:
            await asyncio.wait_for(self._say_goodbye(outcome, instructions), deadline)
        except TimeoutError:
            log.warning("call %s: goodbye did not finish within %gs; hanging up", self.hello.callid, deadline)
        except Exception as exc:
            log.warning("call %s: could not say goodbye (%s); hanging up", self.hello.callid, exc)
        await self.end(outcome, polite=True)

    async def _say_goodbye(self, outcome: Outcome, instructions: str) -> None:
        try:
            await asyncio.wait_for(self._response_idle.wait(), 5)
        except TimeoutError:
            self._rt.send({"type": "response.cancel"})
        self._end_after_reply = outcome
        self._rt.send({"type": "response.create", "response": {"instructions": instructions}})
        await self.finished.wait()

    def end_after_reply(self, outcome: Outcome) -> None:
        """End the call once the assistant's next reply has been heard to the end (a goodbye)."""
        self._end_after_reply = outcome

    def _on_function_call(self, event: dict) -> None:
        self._spawn(
            self._run_tool(
                str(event.get("name") or ""), str(event.get("arguments") or "{}"), str(event.get("call_id") or "")
            )
        )

    async def _run_tool(self, name: str, arguments: str, call_id: str) -> None:
        """Run a function off the audio path; the model hears its result (or why it failed)."""
        if self.tools is None:
            output = '{"error": "no tools are available in this call"}'
        else:
            try:
                output = await asyncio.wait_for(self.tools.run(self, name, arguments, call_id), self.tool_timeout)
            except TimeoutError:
                output = f'{{"error": "the {name} tool did not answer within {self.tool_timeout:g} s"}}'
            except Exception as exc:
                log.exception("call %s: tool %s failed", self.hello.callid, name)
                output = orjson_dumps({"error": f"the {name} tool failed: {type(exc).__name__}"})
        if self._rt is None or self._ending is not None:
            return
        self._rt.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )
        await self._response_idle.wait()
        if self._rt_ready:
            self._rt.send({"type": "response.create"})

    def _on_item_seen(self, event: dict) -> None:
        item = event.get("item") or {}
        item_id = item.get("id") or event.get("item_id")
        if item_id and item_id not in self._positions:
            self._positions[item_id] = self._next_position
            self._next_position += 1
            if item.get("role") == "assistant":
                self._assistant_text.setdefault(item_id, [])

    def _on_committed(self, event: dict) -> None:
        self._on_item_seen({"item_id": event.get("item_id")})

    def _on_transcript_delta(self, event: dict) -> None:
        item_id = event.get("item_id")
        if item_id:
            self._assistant_text.setdefault(item_id, []).append(str(event.get("delta") or ""))

    def _on_transcript_done(self, event: dict) -> None:
        item_id = event.get("item_id")
        if item_id:
            self._assistant_final[item_id] = str(event.get("transcript") or "")
            self._write_assistant(item_id)

    def _on_speech_stopped(self, event: dict) -> None:
        self._notify("speech_stopped", self._now())
        self._arm_silence()

    def _on_caller_transcript(self, event: dict) -> None:
        self._notify("transcription_done", event)
        item_id = event.get("item_id") or ""
        text = str(event.get("transcript") or "").strip()
        self._write_line(item_id, "caller", text or "(nothing recognisable)")

    def _on_caller_transcript_failed(self, event: dict) -> None:
        error = (event.get("error") or {}).get("message") or "transcription failed"
        self._write_line(event.get("item_id") or "", "caller", f"(could not be transcribed: {error})")

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

    _handlers: dict[str, Callable[[CallSession, dict], None]] = {
        "input_audio_buffer.speech_started": _on_speech_started,
        "input_audio_buffer.committed": _on_committed,
        "input_audio_buffer.speech_stopped": _on_speech_stopped,
        "response.function_call_arguments.done": _on_function_call,
        "conversation.item.added": _on_item_seen,
        "conversation.item.created": _on_item_seen,
        "response.output_item.added": _on_item_seen,
        "response.created": _on_response_created,
        "response.done": _on_response_done,
        "response.output_audio_transcript.delta": _on_transcript_delta,
        "response.output_audio_transcript.done": _on_transcript_done,
        "conversation.item.input_audio_transcription.completed": _on_caller_transcript,
        "conversation.item.input_audio_transcription.failed": _on_caller_transcript_failed,
        "error": _on_error,
    }

    # ------------------------------------------------------------------ transcript

    def _offset_ms(self) -> int:
        return int((self._now() - self.started_at) * 1000)

    def _write_line(self, item_id: str, role: str, text: str, interrupted: bool = False) -> None:
        if self.call_pk is None:
            return
        position = self._positions.get(item_id)
        if position is None:
            position = self._positions[item_id or f"_{self._next_position}"] = self._next_position
            self._next_position += 1
        line = TranscriptLine(
            position, role, text, item_id=item_id, interrupted=interrupted, offset_ms=self._offset_ms()
        )
        self.store.transcript(self.call_pk, line)
        self._notify("transcript", line)

    def add_transcript(self, role: str, text: str) -> None:
        """A line that is not an OpenAI item (a tool call, a note), placed at this point of the call."""
        self._write_line("", role, text)

    def _write_assistant(self, item_id: str) -> None:
        """(Re)write an assistant line: the whole text, or the part the caller heard if cut off."""
        text = self._assistant_final.get(item_id)
        if text is None:
            text = "".join(self._assistant_text.get(item_id, ()))
        cut = self._interrupted.get(item_id)
        if cut is not None:
            text = heard_part(text, *cut)
        if text or cut is not None:
            self._write_line(item_id, "assistant", text, interrupted=cut is not None)

    # ------------------------------------------------------------------ ending

    async def end(self, outcome: Outcome, *, polite: bool) -> None:
        """End the call once, whoever asks first; later callers wait for the same ending."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end(outcome, polite=polite))
        await asyncio.shield(self._ending)

    async def _end(self, outcome: Outcome, *, polite: bool) -> None:
        if self._opening is not None and not self._opening.done():
            await asyncio.wait((self._opening,))  # the call's record and assistant, so the ending can be recorded
        self.outcome = self.outcome or outcome
        self._cancel_timers()
        if self in registry.live:
            registry.live.discard(self)
            registry.ending.add(self)
        callid = self.hello.callid if self.hello else "-"
        try:
            if polite and not self._elks_bye.is_set():
                if self.playback is not None and self.playback.audible(self._now()):
                    await self._sync(self.playback.remaining_s(self._now()) + 2.0)
                self._send_bye()
            await self._close_realtime()
            if self._bye_sent and not self._elks_bye.is_set():
                try:
                    await asyncio.wait_for(self._elks_bye.wait(), self.settings.bye_timeout)
                except TimeoutError:
                    log.warning("call %s: 46elks did not answer our bye within %gs", callid, self.settings.bye_timeout)
        finally:
            await self._finish_record()
            registry.live.discard(self)
            registry.ending.discard(self)
            for observer in self.observers:
                try:
                    await observer.ended(self, self.outcome)
                except Exception:
                    log.exception("call observer %s.ended failed", type(observer).__name__)
            for task in list(self._tasks):
                if task is not asyncio.current_task():
                    task.cancel()
            try:
                await self._close_socket()
            except Exception as exc:
                log.debug("closing the 46elks socket failed: %s", exc)
            self._log_summary(callid)
            self.finished.set()

    async def _close_realtime(self) -> None:
        rt, self._rt_ready = self._rt, False
        if rt is not None:
            await rt.close()
        else:
            self._cancel_early_connect()

    async def _finish_record(self) -> None:
        if self.call_pk is None or self.outcome is None or self.outcome.status == "rejected":
            return
        # Lines an interruption or an early end left unwritten.
        for item_id in list(self._assistant_text):
            if item_id not in self._assistant_final and item_id not in self._interrupted:
                self._write_assistant(item_id)
        try:
            await self.store.finish(self.call_pk, self.outcome)
        except Exception:
            log.exception("call %s: could not record the end of the call", self.hello.callid if self.hello else "-")

    async def _wait_elks_bye_then_close(self) -> None:
        try:
            await asyncio.wait_for(self._elks_bye.wait(), self.settings.bye_timeout)
        except TimeoutError:
            pass
        await self.end(self.outcome, polite=False)

    def _no_hello(self) -> None:
        log.warning("46elks connection sent no hello within %gs; closing", self.settings.hello_timeout)
        self._ending = asyncio.ensure_future(self._end(Outcome("failed", "protocol_error", "no hello"), polite=False))

    def _cancel_hello_timer(self) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_hello_timer()
        for timer in self._timers:
            timer.cancel()
        if self._silence_timer is not None:
            self._silence_timer.cancel()
            self._silence_timer = None

    # ------------------------------------------------------------------ bookkeeping

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

    def _log_summary(self, callid: str) -> None:
        outcome = self.outcome
        extra = f" problems={dict(self.problems)}" if self.problems else ""
        log.info(
            "call %s ended: %s/%s %s audio_in=%d audio_out=%d interrupts=%d%s",
            callid,
            outcome.status if outcome else "-",
            outcome.end_reason if outcome else "-",
            (outcome.detail if outcome else "")[:200],
            self.stats["audio_in"],
            self.stats["audio_out"],
            self.stats["interrupts"],
            extra,
        )


def orjson_dumps(obj: Any) -> str:
    return _orjson_dumps(obj).decode()


def heard_part(text: str, heard_ms: float, received_ms: float) -> str:
    """The words of `text` the caller heard before cutting in, by the share of audio played.

    The transcript and the audio of an item run in step, so the share of audio heard is a fair
    measure of the share of words; we cut at a word boundary and mark the cut with an ellipsis.
    """
    text = text.strip()
    if not text or received_ms <= 0:
        return ""
    share = max(0.0, min(1.0, heard_ms / received_ms))
    if share >= 0.999:
        return text
    cut = int(len(text) * share)
    head = text[:cut]
    if cut < len(text) and not text[cut].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]
    head = head.rstrip(" ,.;:")
    return f"{head}…" if head else "…"
