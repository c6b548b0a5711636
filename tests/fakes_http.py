"""Fakes of the HTTP peers we cannot reach, on real sockets: a webhook receiver and 46elks' REST API.

Each runs a small HTTP/1.1 server on its own event loop in a thread, so sync tests (admin,
management commands) and async tests (calls through daphne) use them alike. Requests are
recorded when they arrive; tests wait for them with `wait_requests` / `await_requests`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class Reply:
    """What the fake answers; `delay` holds the answer back (a slow service)."""

    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


REASONS = {200: "OK", 201: "Created", 204: "No Content", 401: "Unauthorized", 403: "Forbidden", 500: "Error"}


class FakeHttpServer:
    """A tiny HTTP server: queued `replies` are used in order, then `handler`, then `default`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.default = Reply(200, {"ok": True})
        self.handler: Callable[[Recorded], Reply] | None = None
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeHttpServer:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the fake HTTP server did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    # -- what tests look at ----------------------------------------------------------------------

    def wait_requests(self, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        """Block until `count` requests have arrived; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} request(s) arrived, not {count}, within {timeout}s")
            return list(self.requests)

    async def await_requests(self, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        return await asyncio.to_thread(self.wait_requests, count, timeout)

    def reply_for(self, request: Recorded) -> Reply:
        if self.replies:
            return self.replies.pop(0)
        if self.handler is not None:
            return self.handler(request)
        return self.default

    # -- HTTP ------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await reader.readexactly(int(headers.get("content-length") or 0))
        parts = urlsplit(target)
        request = Recorded(method, parts.path, parse_qs(parts.query), headers, body, time.monotonic())
        reply = self.reply_for(request)
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
        if reply.delay:
            await asyncio.sleep(reply.delay)  # the fake service is slow; the client decides how long to wait
        data, content_type = reply.encoded()
        head = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
        out_headers = {"Content-Type": content_type, "Content-Length": str(len(data)), **reply.headers}
        head += [f"{k}: {v}" for k, v in out_headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


class FakeElksApi(FakeHttpServer):
    """46elks' REST API as far as we use it: `POST /a1/calls` and `/a1/sms` with basic auth, form-encoded."""

    def __init__(self, username: str = "u_test", password: str = "p_test") -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.calls: list[dict[str, str]] = []  # the form of every call accepted
        self.sms: list[dict[str, str]] = []  # the form of every SMS accepted (`POST /a1/sms`)
        self.fail: Reply | None = None  # answer every call request with this instead
        self.handler = self._handle

    def _sms(self, form: dict[str, str]) -> Reply:
        missing = [k for k in ("from", "to", "message") if not form.get(k)]
        if missing:
            return Reply(400, f"Missing key {missing[0]}")
        self.sms.append(form)
        return Reply(200, {"id": "s" + secrets.token_hex(16), "status": "created", **form})

    @property
    def api_url(self) -> str:
        return f"{self.url}/a1"

    def _handle(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path not in ("/a1/calls", "/a1/sms"):
            return Reply(404, "Not found")
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Reply(401, "Invalid credentials")
        if request.path == "/a1/sms":
            return self._sms(request.form())
        if self.fail is not None:
            return self.fail
        form = request.form()
        missing = [k for k in ("from", "to", "voice_start") if not form.get(k)]
        if missing:
            return Reply(400, f"Missing key {missing[0]}")
        self.calls.append(form)
        return Reply(
            200,
            {
                "id": "c" + secrets.token_hex(16),
                "state": "ongoing",
                "direction": "outgoing",
                "from": form["from"],
                "to": form["to"],
                "created": "2026-11-22T10:00:00.000000",
            },
        )
