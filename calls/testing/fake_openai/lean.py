"""A lean connection for the fake OpenAI under load: `wire` framing on a plain asyncio transport.

The benchmark's fake shares a core with the load generator and must cost far less per frame
than the servers it measures; the `websockets` server spends most of that budget. A
LeanConnection offers FakeSession what it uses of a websockets ServerConnection (`request`,
`send`, `close`, `transport`, `close_code`, `close_reason`) and hands it each text frame as it is
read: a frame that needs no reply (most caller audio) is taken at once, without a task hop;
everything else goes, in order, through one task per connection.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request

from calls.testing import wire
from calls.testing.fake_openai.session import FakeSession

if TYPE_CHECKING:
    from calls.testing.fake_openai.server import FakeRealtimeServer, HandshakeRecord


class LeanConnection(asyncio.Protocol):
    """One connection to a FakeRealtimeServer started with `lean=True`."""

    def __init__(self, fake: FakeRealtimeServer) -> None:
        self.fake = fake
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.session: FakeSession | None = None
        self.reader = wire.FrameReader(self._on_control)
        self._head: bytearray | None = bytearray()  # the HTTP request until the handshake is done
        self._close_sent = False
        # frames not taken yet, and what is left to do of frames already taken, in arrival order
        self._backlog: collections.deque[str | Coroutine[Any, Any, None]] = collections.deque()
        self._wake = asyncio.Event()
        self._busy = True  # until the session exists and has said session.created
        self._runner: asyncio.Task | None = None

    @property
    def close_code(self) -> int | None:
        return self.reader.close_code or (1006 if self.transport is None or self.transport.is_closing() else None)

    @property
    def close_reason(self) -> str:
        return self.reader.close_reason

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.fake._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            self._head = None
            self._on_head(head)
        for text in self.reader.feed(data):
            self._on_text(text.decode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake._connections.discard(self)
        if self._runner is not None:
            self._runner.cancel()
        for item in self._backlog:
            if not isinstance(item, str):
                item.close()
        self._backlog.clear()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- handshake ---------------------------------------------------------------------------------

    def _on_head(self, head: bytes) -> None:
        first, headers = wire.parse_head(head)
        parts = first.split()
        self.request = Request(parts[1] if len(parts) > 1 else "/", Headers(headers))
        key = headers.get("sec-websocket-key", "")
        if self.fake.hang_on_connect:
            self._runner = asyncio.ensure_future(self._admit_later(key))
        else:
            self._answer(key, *self.fake._answer_upgrade(self.request))

    async def _admit_later(self, key: str) -> None:
        assert self.request is not None
        self._answer(key, *await self.fake._admit(self.request))

    def _answer(self, key: str, status: int, body: Any, record: HandshakeRecord | None) -> None:
        if status == 101 and key:
            assert self.request is not None
            self._write(wire.server_response(key))
            model = (parse_qs(urlsplit(self.request.path).query).get("model") or [None])[0]
            self.session = FakeSession(self.fake, self, model)
            self.session.handshake = record
            self._runner = asyncio.ensure_future(self._run(self.session))
            return
        text = body if isinstance(body, str) else json.dumps(body)
        self._write(wire.http_error(status if status != 101 else 400, text))
        if self.transport is not None:
            self.transport.close()

    # -- frames ------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _on_control(self, opcode: int, payload: bytes) -> None:
        if opcode == wire.CLOSE:
            if not self._close_sent:
                self._close_sent = True
                self._write(wire.frame(wire.CLOSE, payload, mask=False))
            if self.transport is not None:
                self.transport.close()
        else:
            self._write(wire.frame(opcode, payload, mask=False))

    def _on_text(self, text: str) -> None:
        if not self._busy and not self._backlog and self.session is not None:
            rest = self.session.receive(text)
            if rest is None:
                return
            self._backlog.append(rest)
        else:
            self._backlog.append(text)
        self._wake.set()

    async def _run(self, session: FakeSession) -> None:
        try:
            if not await self.fake._open(session):
                return
            while True:
                self._busy = True
                while self._backlog:
                    item = self._backlog.popleft()
                    rest = session.receive(item) if isinstance(item, str) else item
                    if rest is not None:
                        await rest
                self._busy = False
                self._wake.clear()
                await self._wake.wait()
        except ConnectionClosed:
            pass
        finally:
            session._finish()

    # -- what FakeSession calls --------------------------------------------------------------------

    async def send(self, text: str | bytes) -> None:
        if self._close_sent or self.transport is None or self.transport.is_closing():
            raise ConnectionClosedOK(None, None)
        if isinstance(text, str):
            self.transport.write(wire.frame(wire.TEXT, text.encode(), mask=False))
        else:
            self.transport.write(wire.frame(wire.BINARY, text, mask=False))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._close_sent:
            self._close_sent = True
            self._write(wire.frame(wire.CLOSE, wire.close_payload(code, reason), mask=False))
