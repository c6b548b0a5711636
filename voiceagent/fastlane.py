"""Daphne with a fast lane for the text frames of live calls.

Per audio frame, autobahn's general frame machine (header checks, a masker object, frame and
message callbacks, incremental UTF-8 validation) and daphne's hand-off to the application (a dict
per message, an asyncio queue, a task wake-up) cost more than everything else the bridge does
with the frame. So the scope of every WebSocket offers a link (calls.textlink): for an
application that takes it, complete text frames go straight from the socket to its
callback, and it writes text frames straight to the transport. Everything else (the handshake,
pings, fragments, frames split across reads, closing, anything the fast lane does not recognise)
goes through autobahn as before, and the text messages autobahn assembles go to the same callback,
so their order is kept. Binary frames and the disconnect still reach the application through
ASGI; applications that do not ask for the link see plain ASGI only.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from collections.abc import Callable, Iterator

from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor, tcp

from calls.live.wsframes import server_text_frame, take_text_frames
from calls.textlink import TEXT_LINK, LinkClosed

log = logging.getLogger(__name__)

READ_SIZE = 65536  # as Twisted reads

# The releases whose internals this module was written against (the same series as requirements.txt).
WRITTEN_FOR = {"daphne": "4.2", "autobahn": "26.10", "Twisted": "26.10"}


class _Link:
    """The fast lane of one connection, as its application sees it (a calls.textlink.TextLink)."""

    def __init__(self, protocol: FastLaneProtocol) -> None:
        self._protocol = protocol

    def receive_with(self, callback: Callable[[bytes], None]) -> None:
        self._protocol.text_sink = callback
        self._protocol.read_directly()

    def send(self, payload: bytes) -> None:
        self._protocol.send_text_frame(payload)


class FastLaneProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol; complete text frames bypass autobahn when the application asked."""

    text_sink: Callable[[bytes], None] | None = None
    _sock = None

    def read_directly(self) -> None:
        """Read this socket from the event loop directly, not through the reactor's per-read dispatch.

        Twisted wraps every read in a logging context and two layers of bookkeeping: at 50 reads a
        second per call that is a tenth of the server's CPU. The data goes to `dataReceived` as
        before. Twisted keeps its own registration, so when it stops reading (the connection
        closes) the loop drops this reader with it; the end of the stream is left to Twisted.
        """
        transport = self.transport
        if type(transport) is not tcp.Server or transport not in reactor.getReaders():
            return
        self._sock = transport.socket
        asyncio.get_event_loop().add_reader(transport.fileno(), self._read_now)

    def _read_now(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the end of the stream, or an error: let Twisted read it again and close its way
            self._reads_to_twisted()
            return
        try:
            self.dataReceived(data)
        except Exception:
            log.exception("reading a WebSocket failed; closing it")
            self._reads_to_twisted()
            self.transport.abortConnection()

    def _reads_to_twisted(self) -> None:
        transport = self.transport
        if transport in reactor.getReaders():
            reactor.removeReader(transport)  # removes our reader too: it is the same descriptor
            reactor.addReader(transport)

    def dataReceived(self, data: bytes) -> None:
        if (
            self.text_sink is None
            or self.state != self.STATE_OPEN
            or self.data  # autobahn holds part of a frame: it must finish it
            or self.current_frame is not None
            or self.inside_message
        ):
            super().dataReceived(data)
            return
        self.last_ping = time.time()  # as daphne does per message: a talking peer needs no keepalive ping
        used = take_text_frames(data, self._deliver, max_payload=self.maxFramePayloadSize)
        if used < len(data):
            super().dataReceived(data[used:])

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        # Daphne keeps a closed protocol for a second or so: it must not keep the call's session too.
        self.text_sink = None
        super().onClose(wasClean, code, reason)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """A message autobahn assembled (fragments, a frame split across reads): to the same callback, in order."""
        if self.text_sink is None or isBinary or self.muted:
            super().onMessage(payload, isBinary)
            return
        self.last_ping = time.time()
        self._deliver(payload)

    def _deliver(self, payload: bytes) -> bool:
        try:
            self.text_sink(payload)
        except Exception:
            log.exception("the application failed on a text frame; frame dropped")
        return self.state == self.STATE_OPEN and self.text_sink is not None

    def send_text_frame(self, payload: bytes) -> None:
        if self.state != self.STATE_OPEN:
            raise LinkClosed("the WebSocket is closing")
        frame = server_text_frame(payload)
        transport = self.transport
        # Twisted queues every write until the socket is next reported writable (a loop iteration
        # and two epoll changes later). When nothing is queued, send at once, as asyncio does.
        if type(transport) is tcp.Server and not transport.dataBuffer and not transport._tempDataLen:
            sent = transport.writeSomeData(frame)
            if sent == len(frame):
                return
            if isinstance(sent, int):
                frame = frame[sent:]
        transport.write(frame)


class FastLaneServer(Server):
    """Daphne's server, whose WebSocket connections offer the fast lane."""

    def __init__(self, *args, ready_callable: Callable[[], None] | None = None, **kwargs) -> None:
        super().__init__(*args, ready_callable=self._ready, **kwargs)
        self._then_ready = ready_callable

    def _ready(self) -> None:
        # Daphne builds its WebSocket factory in run(), just before calling this.
        self.ws_factory.protocol = FastLaneProtocol
        if self._then_ready is not None:
            self._then_ready()

    def create_application(self, protocol, scope):
        if isinstance(protocol, FastLaneProtocol):
            scope["extensions"] = {**(scope.get("extensions") or {}), TEXT_LINK: _Link(protocol)}
        return super().create_application(protocol, scope)


def self_check() -> list[str]:
    """What is off, for the fast lane, in the installed daphne/autobahn/Twisted ([] when all is as written for).

    An upgrade can change the internals the lane reads without an error: the lane would then
    misread frames silently. So the server checks the versions and that every internal it touches
    is still there (or still assigned by the library's own code), and runs without the lane otherwise.
    """
    return list(_problems())


def _problems() -> Iterator[str]:
    for dist, series in WRITTEN_FOR.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            yield f"{dist} is not installed as a distribution"
            continue
        if version != series and not version.startswith(series + "."):
            yield f"{dist} {version} is installed; the fast lane was written for {series}.x"
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from twisted.internet import abstract

    # Instance attributes the lane reads are set by the libraries' own methods: they must still name them.
    for owner, names in (
        (AutobahnProtocol, ("data", "current_frame", "inside_message", "state", "maxFramePayloadSize")),
        (WebSocketProtocol, ("last_ping", "muted")),
        (abstract.FileDescriptor, ("dataBuffer", "_tempDataLen")),
        (Server, ("ws_factory",)),
    ):
        used = _names_used(owner)
        for name in names:
            if name not in used and not hasattr(owner, name):
                yield f"{owner.__module__}.{owner.__qualname__} no longer uses `{name}`"
    for owner, names in (
        (WebSocketProtocol, ("STATE_OPEN", "dataReceived", "onMessage", "onClose", "muted")),
        (tcp.Server, ("writeSomeData", "write", "fileno", "abortConnection")),
        (Server, ("create_application", "run")),
        (reactor, ("getReaders", "addReader", "removeReader")),
    ):
        for name in names:
            if not hasattr(owner, name):
                yield f"{getattr(owner, '__qualname__', type(owner).__qualname__)} has no `{name}`"


def _names_used(cls: type) -> set[str]:
    """The attribute names the methods of a class and its bases assign or read."""
    names: set[str] = set()
    for klass in cls.__mro__:
        for value in vars(klass).values():
            code = getattr(value, "__code__", None)
            if code is not None:
                names.update(code.co_names)
    return names
