"""Channels adapters: authenticate the socket, create the session, forward frames.

Deliberate deviations from Channels' defaults, for the audio path:
- Under our server (voiceagent.server), the socket's text frames go straight from the protocol
  to the session and the session's messages straight to the socket, through the server's
  `TextLink` (see voiceagent.fastlane): no ASGI message, queue or task per frame.
- Elsewhere (runserver, tests), Channels (4.2+) would hop to the sync thread to close stale
  database connections before *every* message and create a task per message. An audio frame
  touches no database, so `ElksCallConsumer` reads its socket in a plain loop and hands frames
  straight to the session; the session's messages are written in order by one writer task.
Everything else (connect, disconnect, channel-layer messages) goes through Channels' dispatch.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.module_loading import import_string

from .access import client_ip, ip_allowed, secret_matches
from .live.observers import CallObserver, ObserverFactory
from .live.session import CallSession
from .live.turns import STAFF_GOODBYE
from .live.types import (
    SHUTDOWN,
    STAFF_HANGUP,
    CallerGone,
    CallStore,
    Outcome,
    SessionSettings,
    ToolRunnerFactory,
)
from .store import DbCallStore
from .textlink import TEXT_LINK, LinkClosed, TextLink

log = logging.getLogger(__name__)

_store: DbCallStore | None = None


def call_store() -> DbCallStore:
    """The process's store, created on first use (it needs the running loop's settings)."""
    global _store
    if _store is None:
        _store = DbCallStore()
    return _store


def session_settings() -> SessionSettings:
    return SessionSettings(
        openai_url=settings.OPENAI_REALTIME_URL,
        openai_api_key=settings.OPENAI_API_KEY,
        hello_timeout=settings.CALL_HELLO_TIMEOUT,
        setup_timeout=settings.OPENAI_CONNECT_TIMEOUT,
        bye_timeout=settings.CALL_BYE_TIMEOUT,
        max_message_bytes=settings.ELKS_MAX_MESSAGE_BYTES,
        max_messages_per_second=settings.CALLER_MAX_MESSAGES_PER_SECOND,
        max_calls_per_process=settings.MAX_CALLS_PER_PROCESS,
        max_calls_per_number=settings.MAX_CALLS_PER_NUMBER,
    )


_READER_STOP = "call.reader.stop"  # sent by a call to its own control channel when it ends


def call_group(call_pk: int) -> str:
    """The channel-layer group that reaches the process holding a call, whichever it is."""
    return f"call.{call_pk}"


def observer_factories() -> list[ObserverFactory]:
    """The factories named in settings.CALL_OBSERVERS (dotted paths): how extensions hear of calls."""
    return [import_string(path) for path in getattr(settings, "CALL_OBSERVERS", [])]


def tool_runner_factory() -> ToolRunnerFactory | None:
    path = getattr(settings, "CALL_TOOL_RUNNER", "")
    return import_string(path) if path else None


class _ControlObserver(CallObserver):
    """Joins the call's control group once the call has a record, so staff can reach it."""

    def __init__(self, consumer: ElksCallConsumer) -> None:
        self.consumer = consumer

    def started(self, session: CallSession) -> None:
        self.consumer.join_call_group(session.call_pk)


class ElksCallConsumer(AsyncWebsocketConsumer):
    """46elks' realtime-voice socket: one connection per phone call."""

    session: CallSession | None = None
    _layer_task: asyncio.Task | None = None
    _group: str | None = None
    _link: TextLink | None = None
    _writer: asyncio.Task | None = None
    _send_failed = ""

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        try:
            while True:
                message = await receive()
                session = self.session
                if message["type"] == "websocket.receive" and session is not None:
                    text = message.get("text")
                    if text is not None:
                        session.on_message(text)
                    else:
                        session.on_binary(message.get("bytes"))
                else:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            # The server is stopping this consumer: record the call before going.
            if self.session is not None and not self.session.finished.is_set():
                await asyncio.shield(self.session.abort(SHUTDOWN))
            raise
        finally:
            await self._cleanup()
            await self._leave_call_group()

    async def connect(self) -> None:
        """Called on the WebSocket handshake: refuse a wrong secret before accepting anything."""
        secret = self.scope["url_route"]["kwargs"].get("secret", "")
        client = client_ip(self.scope)
        if not secret_matches(secret, settings.ELKS_WS_SECRET):
            log.warning("refused a call socket with a wrong secret from %s", client)
            await self.close()
            return
        if not ip_allowed(client, settings.ELKS_ALLOWED_IPS):
            log.warning("refused a call socket from %s: not in ELKS_ALLOWED_IPS", client)
            await self.close()
            return
        self.start_session()
        await self.accept()

    def start_session(self, *, store: CallStore | None = None) -> None:
        """Create the call's session; called before accepting, so the link is in place before any frame."""
        self._link = (self.scope.get("extensions") or {}).get(TEXT_LINK)
        self._outbox: collections.deque[bytes] = collections.deque()  # used without the link
        self.session = CallSession(
            send=self._send_message,
            close=self._close,
            store=store or call_store(),
            settings=session_settings(),
            observer_factories=[lambda session: _ControlObserver(self), *observer_factories()],
            tool_runner_factory=tool_runner_factory(),
        )
        self.session.start()
        if self._link is not None:
            self._link.receive_with(self.session.on_message)

    def join_call_group(self, call_pk: int | None) -> None:
        if self.channel_layer is None or call_pk is None:
            return
        self._group = call_group(call_pk)
        self._layer_task = asyncio.ensure_future(self._read_layer(self._group))

    async def _read_layer(self, group: str) -> None:
        """Control messages (not audio) from other processes, e.g. staff hanging up."""
        try:
            self.channel_name = await self.channel_layer.new_channel()
            await self.channel_layer.group_add(group, self.channel_name)
            while True:
                message = await self.channel_layer.receive(self.channel_name)
                if message.get("type") == _READER_STOP:
                    return
                await self.dispatch(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call control channel failed; the call goes on without it")

    async def _leave_call_group(self) -> None:
        """Stop the control reader by a message, not by cancelling it in the middle of a receive.

        channels-redis reads every socket of a process off one Redis list, with one receive at a
        time for all of them: cancelling the call's receive while Redis hands it a message loses
        that message, which may be a dashboard's (the "ended" of this very call, sent just now).
        """
        task, self._layer_task = self._layer_task, None
        if task is None:
            return
        channel = getattr(self, "channel_name", None)
        try:
            if self._group and channel:
                await asyncio.wait_for(self.channel_layer.group_discard(self._group, channel), 2)
            if channel and not task.done():
                await asyncio.wait_for(self.channel_layer.send(channel, {"type": _READER_STOP}), 2)
                await asyncio.wait_for(asyncio.shield(task), 2)
        except Exception as exc:
            log.debug("leaving the call group failed: %s", exc)
        finally:
            if not task.done():
                task.cancel()

    async def call_hangup(self, message) -> None:
        """Called (through the channel layer) when staff end the call from the dashboard."""
        if self.session is not None:
            outcome = Outcome("completed", "staff_hangup", message.get("detail") or STAFF_HANGUP.detail)
            if message.get("now"):
                self.session.request_hang_up_now(outcome)
            else:
                self.session.request_goodbye_and_end(outcome, STAFF_GOODBYE, settings.STAFF_HANGUP_SECONDS)

    async def disconnect(self, code) -> None:
        """Called when the socket closes, however it closes."""
        await self._cleanup()

    def _send_message(self, message: bytes) -> None:
        if self._link is not None:
            try:
                self._link.send(message)
            except LinkClosed as exc:
                raise CallerGone(str(exc)) from None
            return
        if self._send_failed:
            raise CallerGone(self._send_failed)
        self._outbox.append(message)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_outbox())

    async def _write_outbox(self) -> None:
        """Without the link: the session's messages, in order, as ASGI messages."""
        while self._outbox:
            message = self._outbox.popleft()
            try:
                await self.base_send({"type": "websocket.send", "text": message.decode()})
            except Exception as exc:  # the server raises when the socket is already closed
                self._send_failed = str(exc) or type(exc).__name__
                self._outbox.clear()

    async def _close(self) -> None:
        if self._writer is not None:
            await self._writer
        await self.base_send({"type": "websocket.close"})

    async def _cleanup(self) -> None:
        session = self.session
        if session is None:
            return
        if not session.finished.is_set():
            await session.on_disconnect()
