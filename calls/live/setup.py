"""A call's setup: from 46elks' `hello` to a recorded call whose OpenAI session is ready to relay.

Called by the session when 46elks says hello. The assistant is looked up, OpenAI's socket
opened and its session configured, and the call recorded, as much of it at once as can be;
caller audio that arrives meanwhile is kept. Relaying starts (`_become_ready`) once OpenAI
has accepted the session settings and the call is recorded, whichever comes second.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import FIRST_COMPLETED

from assistants.realtime_config import AssistantConfig, echoed_formats_match, greeting, session_update

from . import elks
from .guard import refusal
from .playback import Playback
from .realtime import RealtimeError
from .types import Outcome

log = logging.getLogger(__name__)


class CallSetup:
    """The setup phase of CallSession (see calls.live.session for the state it shares)."""

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
        refuse = refusal(hello, self._registry, self.settings)
        self._registry.started(self)  # from now on it counts against the limits
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

    def _buffer_audio(self, data: object) -> None:
        """Keep caller audio while the assistant is looked up and OpenAI connects; it is checked when sent."""
        if self.hello is None:
            self._problem("audio before hello", "ignored")
            return
        if self._ending is not None:
            return
        elks.audio_bytes(data, self._bytes_per_sample if self.config is not None else 1)
        self._pending_audio.append((data, self._now()))
        self._pending_bytes += elks.base64_nbytes(data)
        # Until the assistant (and so the format) is known, allow for the densest one.
        bytes_per_ms = self.config.format.bytes_per_ms if self.config is not None else 48
        limit = self.settings.max_buffered_audio_s * 1000 * bytes_per_ms
        while self._pending_bytes > limit and self._pending_audio:
            self._pending_bytes -= elks.base64_nbytes(self._pending_audio.popleft()[0])
            self.problems["caller audio dropped while connecting"] += 1

    def _send_buffered_audio(self) -> None:
        """The audio kept while connecting goes to OpenAI, and to the observers with the time it came."""
        while self._pending_audio:
            data, at = self._pending_audio.popleft()
            try:
                b64 = elks.audio_bytes(data, self._bytes_per_sample)
            except elks.ProtocolError as exc:
                self._problem("bad message", str(exc))
                continue
            self._rt.append_audio(b64)
            if self._audio_observers:
                self._notify_audio("caller_audio", b64, at)
        self._pending_bytes = 0

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
