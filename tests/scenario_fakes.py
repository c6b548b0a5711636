"""Peers for the scenario tests: a fake Realtime server on its own loop (sync tests can use it) and a
fake text model speaking the Responses API over HTTP, scripted per job (the caller, the judge).

The text model is calls/testing's fake Responses API (it checks each request is strict structured
output), scripted per json_schema name.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from calls.testing.fake_openai import FakeRealtimeServer
from calls.testing.fake_responses import FakeResponses
from tests.conftest import TEST_API_KEY


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


class FakeTextModel:
    """calls/testing's fake Responses API, answering by job: `scripts[name]` is what requests whose
    json_schema is called `name` get, in order (the caller's turns, the judge's verdicts)."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[dict]] = {}
        self.fake: FakeResponses | None = None

    def __enter__(self) -> FakeTextModel:
        self.fake = FakeResponses.start()
        self.fake.script(self._answer)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.stop()

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    def bodies(self, name: str) -> list[dict]:
        return [body for body in self.fake.requests if body["text"]["format"]["name"] == name]

    def _answer(self, body: dict) -> dict:
        queue = self.scripts.get(body["text"]["format"]["name"]) or []
        if not queue:
            raise AssertionError(f"nothing scripted for {body['text']['format']['name']}")
        return queue.pop(0)
