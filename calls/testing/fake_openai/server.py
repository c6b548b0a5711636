"""The fake OpenAI server: the HTTP upgrade with its auth and failure knobs, and the command line.

One FakeSession per connection. Connections are served by the `websockets` server (the default:
strict framing, for tests) or, with `lean=True`, by `lean.LeanConnection` (a few byte operations
per frame, for load). The load knobs (`validate`, `keep_audio`, `record_stream_events`, `lean`)
and the hooks (`voice_detector`, `on_audio`, `on_send`) are how a harness such as the benchmark
makes the fake cheap and measures through it, without reaching into it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import http
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from calls.testing.fake_openai.protocol import BETA_ERROR, MODELS, error_event
from calls.testing.fake_openai.session import FakeSession
from calls.testing.fake_openai.voice import EnergyVoiceDetector, VoiceDetector


@dataclass
class HandshakeRecord:
    """One HTTP upgrade attempt, including the ones the fake refused."""

    t: float
    path: str
    headers: dict[str, str]
    status: int


class FakeRealtimeServer:
    """A local stand-in for wss://api.openai.com/v1/realtime (GA), one FakeSession per connection.

    All knobs are plain attributes and may be changed while the server runs (`lean` only before
    start()).
    """

    def __init__(
        self,
        api_key: str | None = "sk-test",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        answer_ms: float = 1500,
        chunk_ms: float = 100,
        chunk_interval_ms: float = 20,
        first_delta_delay_ms: float = 0,
        transcription_delay_ms: float = 150,
        vad_threshold: float = 500,
        log: Callable[[str], None] | None = None,
        lean: bool = False,
    ) -> None:
        self.api_key = api_key  # None: any bearer token is accepted
        self.host = host
        self.port = port
        self.log = log
        self.models: tuple[str, ...] | list[str] = MODELS
        # what the assistant says and does
        self.answer_ms = answer_ms
        self.chunk_ms = chunk_ms
        self.chunk_interval_ms = chunk_interval_ms
        self.first_delta_delay_ms = first_delta_delay_ms
        self.transcription_delay_ms = transcription_delay_ms
        self.vad_threshold = vad_threshold
        self.reply_texts: list[str] = []
        self.caller_transcripts: list[str] = []
        self.reply_tool_calls: list[Any] = []
        # failure modes
        self.handshake_status: int | None = None
        self.handshake_body: dict[str, Any] | str | None = None
        self.hang_on_connect: bool | float = False
        self.close_after_ms: float | None = None
        self.reject_session_update = False
        self.never_answer_session_update = False
        self.error_on_response: dict[str, Any] | None = None
        # load knobs: each trades a test's view of the traffic for CPU (never off in tests of a client)
        self.lean = lean  # serve connections with lean.LeanConnection instead of the websockets server
        self.validate = True  # False: events skip the GA schema check and appends the base64 check
        self.keep_audio = True  # False: input_audio and sent_audio stay empty (counts are still kept)
        self.record_stream_events = True  # False: appends and deltas are not kept in received / sent
        # hooks
        self.voice_detector: Callable[[FakeSession], VoiceDetector] = EnergyVoiceDetector
        self.on_audio: Callable[[FakeSession, str], None] | None = None  # each appended chunk's base64
        # each server event right before it is written, in wire order; it may change the event
        self.on_send: Callable[[FakeSession, dict[str, Any]], None] | None = None
        # records
        self.sessions: list[FakeSession] = []
        self.handshakes: list[HandshakeRecord] = []
        self._server: Server | asyncio.Server | None = None
        self._connections: set[Any] = set()  # lean connections
        self._upgrades: dict[ServerConnection, HandshakeRecord] = {}
        self._ids = itertools.count(1)
        self._next_index = 0
        self._sessions_changed = asyncio.Condition()
        self._stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> Self:
        self._stopping.clear()
        if self.lean:
            from calls.testing.fake_openai.lean import LeanConnection

            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: LeanConnection(self), self.host, self.port)
        else:
            self._server = await serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._process_request,
                open_timeout=None,  # hang_on_connect must be able to hang; clients carry their own timeout
                max_size=16 * 2**20,  # the service accepts appends up to 15 MiB
                compression=None,
                ping_interval=None,
            )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is None:
            return
        server, self._server = self._server, None
        for session in self.sessions:
            for task in list(session._tasks):
                task.cancel()
        for conn in list(self._connections):
            conn.abort()
        server.close()
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The OPENAI_REALTIME_URL to point a client at (it adds ?model=...)."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    def url_for(self, model: str = "gpt-realtime-2.1") -> str:
        return f"{self.url}?model={model}"

    async def next_session(self, timeout: float = 5) -> FakeSession:
        """The next connection not yet handed out by this method, waiting for it if needed."""
        async with self._sessions_changed:
            await asyncio.wait_for(
                self._sessions_changed.wait_for(lambda: len(self.sessions) > self._next_index), timeout
            )
            session = self.sessions[self._next_index]
            self._next_index += 1
            return session

    def drop_connection(self, session: FakeSession | None = None) -> int:
        """Abort TCP (no close frame) for one session, or for every open one; returns how many."""
        targets = [session] if session is not None else [s for s in self.sessions if not s.closed.is_set()]
        for s in targets:
            s.drop()
        return len(targets)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    # -- handshake (both kinds of connection) --------------------------------------------------------

    async def _admit(self, request: Request) -> tuple[int, Any, HandshakeRecord | None]:
        """Status and body of the answer to one upgrade request, after hang_on_connect if set."""
        hang = self.hang_on_connect
        if hang is True or (hang and not isinstance(hang, bool)):
            delay = None if hang is True else float(hang)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return http.HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n", None
        return self._answer_upgrade(request)

    def _answer_upgrade(self, request: Request) -> tuple[int, Any, HandshakeRecord]:
        """Status (101: accepted), refusal body and record of one upgrade request, without waiting."""
        status = self._handshake_status(request)
        record = HandshakeRecord(time.monotonic(), request.path, dict(request.headers.raw_items()), status)
        self.handshakes.append(record)
        if self.log is not None:
            self.log(f"HTTP {request.path} -> {status}")
        if status == 101:
            return status, None, record
        body = self.handshake_body if status == self.handshake_status and self.handshake_body else None
        return status, body if body is not None else error_event(status), record

    def _handshake_status(self, request: Request) -> int:
        if self.handshake_status:
            return self.handshake_status
        if urlsplit(request.path).path != "/v1/realtime":
            return 404
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401
        if self.api_key is not None and token.strip() != self.api_key:
            return 401
        return 101

    async def _open(self, session: FakeSession) -> bool:
        """Register a new connection and greet it as the service does; False if it was refused."""
        async with self._sessions_changed:
            self.sessions.append(session)
            self._sessions_changed.notify_all()
        session._console.line(f"-- connected model={session.model}")
        request = session.ws.request
        beta = request.headers.get("OpenAI-Beta", "") if request is not None else ""
        if "realtime=v1" in beta:
            session.rejected = "beta_api_shape_disabled"
            session.errors.append(dict(BETA_ERROR))
            await session.send_event({"type": "error", "error": dict(BETA_ERROR)})
            await session.close(4000, "invalid_request_error.beta_api_shape_disabled")
            return False
        if session.model not in self.models:
            session.rejected = "model_not_found"
            await session.send_error(
                "model_not_found",
                f"The model '{session.model}' does not exist or you do not have access to it.",
                "model",
            )
            await session.close(1008, "invalid_request_error.model_not_found")
            return False
        await session.send_event({"type": "session.created", "session": copy.deepcopy(session.state)})
        if self.close_after_ms is not None:
            session._spawn(self._close_later(session, self.close_after_ms))
        return True

    async def _close_later(self, session: FakeSession, ms: float) -> None:
        await asyncio.sleep(ms / 1000)
        await session.ws.close(1011, "internal_error")

    # -- the websockets server -----------------------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        status, body, record = await self._admit(request)
        if status == 101:
            self._upgrades[conn] = record
            return None
        text = body if isinstance(body, str) else json.dumps(body)
        response = conn.respond(status, text)
        if not isinstance(body, str):
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
        session = FakeSession(self, ws, (query.get("model") or [None])[0])
        session.handshake = self._upgrades.pop(ws, None)
        try:
            if not await self._open(session):
                return
            async for message in ws:
                rest = session.receive(message)
                if rest is not None:
                    await rest
        except ConnectionClosed:
            pass
        finally:
            session._finish()


# ---------------------------------------------------------------------------------------------------
# Standalone runner (also used by `manage.py fake_openai`)
# ---------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options shared by `python -m calls.testing.fake_openai` and the management command."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=None, help="require this bearer key (default: accept any)")
    parser.add_argument("--answer-ms", type=float, default=1500, help="length of each spoken reply")
    parser.add_argument("--chunk-ms", type=float, default=100, help="audio per output delta")
    parser.add_argument("--chunk-interval-ms", type=float, default=20, help="time between deltas")
    parser.add_argument("--first-delta-delay-ms", type=float, default=0)
    parser.add_argument("--transcription-delay-ms", type=float, default=150)
    parser.add_argument("--vad-threshold", type=float, default=500, help="RMS of 16-bit samples")
    parser.add_argument("--reply-text", action="append", default=[], help="reply texts, in order")
    parser.add_argument("--caller-transcript", action="append", default=[], help="caller transcripts, in order")
    parser.add_argument("--quiet", action="store_true", help="do not print events")
    load = parser.add_argument_group("load", "make the fake cheap per frame, e.g. to load-test a server with it")
    load.add_argument("--lean", action="store_true", help="serve connections with minimal WebSocket framing")
    load.add_argument("--no-validate", action="store_true", help="skip the GA schema check of events")
    load.add_argument("--no-keep-audio", action="store_true", help="keep no copy of received or sent audio")
    load.add_argument(
        "--no-record-stream-events", action="store_true", help="keep no record of audio appends and deltas"
    )
    load.add_argument("--load", action="store_true", help="all four above")


def server_from_options(options: Mapping[str, Any], log: Callable[[str], None] | None = None) -> FakeRealtimeServer:
    """A FakeRealtimeServer configured from parsed add_arguments() options."""
    load = bool(options.get("load"))
    fake = FakeRealtimeServer(
        api_key=options.get("api_key"),
        host=options.get("host", "127.0.0.1"),
        port=options.get("port", 8765),
        answer_ms=options.get("answer_ms", 1500),
        chunk_ms=options.get("chunk_ms", 100),
        chunk_interval_ms=options.get("chunk_interval_ms", 20),
        first_delta_delay_ms=options.get("first_delta_delay_ms", 0),
        transcription_delay_ms=options.get("transcription_delay_ms", 150),
        vad_threshold=options.get("vad_threshold", 500),
        log=None if options.get("quiet") else log,
        lean=load or bool(options.get("lean")),
    )
    fake.validate = not (load or options.get("no_validate"))
    fake.keep_audio = not (load or options.get("no_keep_audio"))
    fake.record_stream_events = not (load or options.get("no_record_stream_events"))
    fake.reply_texts = list(options.get("reply_text") or [])
    fake.caller_transcripts = list(options.get("caller_transcript") or [])
    return fake


async def run_forever(fake: FakeRealtimeServer, announce: Callable[[str], None] = print) -> None:
    """Serve until cancelled (Ctrl-C)."""
    async with fake:
        key = "any bearer key" if fake.api_key is None else "bearer key required"
        announce(f"Fake OpenAI Realtime GA listening; {key}.")
        announce(f"  OPENAI_REALTIME_URL={fake.url}")
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m calls.testing.fake_openai", description="A fake OpenAI Realtime GA server."
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))

    def log(line: str) -> None:
        print(line, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(server_from_options(options, log), announce=log))


if __name__ == "__main__":
    main(sys.argv[1:])
