"""Peers for the scenario tests: a fake Realtime server on its own loop (sync tests can use it) and a
fake text model speaking the Responses API over HTTP, scripted per job (the caller, the judge).

The text model fake is small on purpose: it answers `POST /v1/responses` with a completed response
whose output text is the next scripted JSON; it can give way to calls/testing's shared one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from calls.testing.fake_openai import FakeRealtimeServer
from tests.conftest import TEST_API_KEY
from tests.fakes_http import FakeHttpServer, Recorded, Reply


class ThreadedRealtime:
    """A FakeRealtimeServer served by an event loop in a thread."""

    def __init__(self, **knobs: Any) -> None:
        self.knobs = knobs
        self.fake: FakeRealtimeServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeRealtimeServer:
        self._thread.start()
        self.fake = FakeRealtimeServer(api_key=TEST_API_KEY)
        for name, value in self.knobs.items():
            if not hasattr(self.fake, name):
                raise TypeError(f"FakeRealtimeServer has no knob {name!r}")
            setattr(self.fake, name, value)
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(5)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class FakeTextModel(FakeHttpServer):
    """Responses API: `scripts[name]` is what a request whose json_schema is called `name` gets, in order
    (a dict, or a function of the request's body giving one)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, list[dict | Callable[[dict], dict]]] = {}
        self.handler = self._answer

    def bodies(self, name: str) -> list[dict]:
        return [r.json() for r in self.requests if r.json()["text"]["format"]["name"] == name]

    def _answer(self, request: Recorded) -> Reply:
        if request.method != "POST" or not request.path.endswith("/responses"):
            return Reply(404, {"error": {"message": "not found"}})
        if request.headers.get("authorization") != f"Bearer {TEST_API_KEY}":
            return Reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        body = request.json()
        name = body["text"]["format"]["name"]
        queue = self.scripts.get(name) or []
        if not queue:
            return Reply(500, {"error": {"message": f"nothing scripted for {name}", "type": "server_error"}})
        answer = queue.pop(0)
        data = answer(body) if callable(answer) else answer
        text = json.dumps(data)
        return Reply(
            200,
            {
                "id": f"resp_{secrets.token_hex(8)}",
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": body["model"],
                "output": [
                    {
                        "id": f"msg_{secrets.token_hex(8)}",
                        "type": "message",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}],
                    }
                ],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 100,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 20,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 120,
                },
            },
        )
