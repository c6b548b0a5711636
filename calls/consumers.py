"""Channels adapters: authenticate the socket, create the session, forward frames.

Deliberate deviation from Channels' defaults, for the audio path: Channels (4.2+) hops to the
sync thread to close stale database connections before *every* message and creates a task per
message. An audio frame touches no database, so `ElksCallConsumer` reads its socket in a plain
loop and hands frames straight to the session; everything else (connect, disconnect,
channel-layer messages) still goes through Channels' dispatch.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .recorder import DbCallStore
from .session import CallSession, Outcome, SessionSettings

log = logging.getLogger(__name__)

_store: DbCallStore | None = None
SHUTDOWN = Outcome("failed", "server_shutdown", "The server stopped during the call.")


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
    )


class ElksCallConsumer(AsyncWebsocketConsumer):
    """46elks' realtime-voice socket: one connection per phone call."""

    session: CallSession | None = None

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self.channel_layer = None  # live-call control is added through the session registry
        try:
            while True:
                message = await receive()
                session = self.session
                if message["type"] == "websocket.receive" and session is not None:
                    text = message.get("text")
                    if text is not None:
                        await session.on_text(text)
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

    async def connect(self) -> None:
        """Called on the WebSocket handshake: refuse a wrong secret before accepting anything."""
        secret = self.scope["url_route"]["kwargs"].get("secret", "")
        if not hmac.compare_digest(secret.encode(), settings.ELKS_WS_SECRET.encode()):
            log.warning("refused a call socket with a wrong secret from %s", _client(self.scope))
            await self.close()
            return
        await self.accept()
        self.session = CallSession(
            send=self._send_text, close=self._close, store=call_store(), settings=session_settings()
        )
        self.session.start()

    async def disconnect(self, code) -> None:
        """Called when the socket closes, however it closes."""
        await self._cleanup()

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close(self) -> None:
        await self.base_send({"type": "websocket.close"})

    async def _cleanup(self) -> None:
        session = self.session
        if session is None:
            return
        if not session.finished.is_set():
            await session.on_disconnect()


def _client(scope) -> str:
    client = scope.get("client")
    return f"{client[0]}" if client else "unknown"
