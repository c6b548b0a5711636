"""An experimental lane for call sockets built only on autobahn's public API (not the default).

The same TextLink as voiceagent.fastlane, but each text message is taken where autobahn hands it
to daphne (`onMessage`, after its own frame parsing and UTF-8 check), and sent with
`sendMessage`: nothing read from autobahn's or Twisted's internals, so an upgrade cannot break
it silently. It skips daphne's ASGI message, queue and task per frame, not autobahn's frame
machine or Twisted's reactor dispatch. The benchmark measures it against the fast lane
(`python -m voiceagent.server --lane public`; docs/performance.md has the figures and why the
fast lane stays the default).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from autobahn.exception import Disconnected
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from calls.textlink import TEXT_LINK, LinkClosed

log = logging.getLogger(__name__)


class _PublicLink:
    def __init__(self, protocol: PublicLaneProtocol) -> None:
        self._protocol = protocol

    def receive_with(self, callback: Callable[[bytes], None]) -> None:
        self._protocol.text_sink = callback

    def send(self, payload: bytes) -> None:
        try:
            self._protocol.sendMessage(payload, isBinary=False)
        except Disconnected as exc:
            raise LinkClosed("the WebSocket is closing") from exc


class PublicLaneProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol; text messages go to the application's callback, not through ASGI."""

    text_sink: Callable[[bytes], None] | None = None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.text_sink is None or isBinary or self.muted:
            super().onMessage(payload, isBinary)
            return
        self.last_ping = time.time()  # as daphne does per message
        try:
            self.text_sink(payload)
        except Exception:
            log.exception("the application failed on a text frame; frame dropped")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.text_sink = None
        super().onClose(wasClean, code, reason)


class PublicLaneServer(Server):
    """Daphne's server, whose WebSocket connections offer the public-API lane."""

    def __init__(self, *args, ready_callable: Callable[[], None] | None = None, **kwargs) -> None:
        super().__init__(*args, ready_callable=self._ready, **kwargs)
        self._then_ready = ready_callable

    def _ready(self) -> None:
        self.ws_factory.protocol = PublicLaneProtocol
        if self._then_ready is not None:
            self._then_ready()

    def create_application(self, protocol, scope):
        if isinstance(protocol, PublicLaneProtocol):
            scope["extensions"] = {**(scope.get("extensions") or {}), TEXT_LINK: _PublicLink(protocol)}
        return super().create_application(protocol, scope)
