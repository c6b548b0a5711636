"""The fake's record of one connection's traffic: an event log with awaitable lookups (so tests never
poll) and the console lines `manage.py fake_openai` prints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from calls.testing.fake_openai.protocol import AUDIO_EVENTS, STREAM_EVENTS

Predicate = Callable[[dict[str, Any]], bool]


class SessionClosedError(RuntimeError):
    """Raised by wait helpers when the connection ended before the awaited event."""


class EventLog:
    """A list of (monotonic time, event) in arrival order, and waiters for events still to come."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._waiters: list[tuple[str | None, Predicate | None, int, asyncio.Future]] = []
        self.closed = False

    @staticmethod
    def _match(event: dict[str, Any], type_: str | None, predicate: Predicate | None) -> bool:
        return (type_ is None or event.get("type") == type_) and (predicate is None or bool(predicate(event)))

    def add(self, event: dict[str, Any]) -> None:
        self.events.append((time.monotonic(), event))
        if not self._waiters:
            return
        index = len(self.events) - 1
        for waiter in list(self._waiters):
            type_, predicate, after, fut = waiter
            if fut.done():
                self._waiters.remove(waiter)
            elif index >= after and self._match(event, type_, predicate):
                fut.set_result(event)
                self._waiters.remove(waiter)

    def close(self) -> None:
        self.closed = True
        for *_, fut in self._waiters:
            if not fut.done():
                fut.set_exception(SessionClosedError("the connection closed before the awaited event"))
        self._waiters.clear()

    async def wait(self, type_: str | None, timeout: float, predicate: Predicate | None, after: int) -> dict[str, Any]:
        """The first event from index `after` on that matches, waiting up to `timeout` for it."""
        for _, event in self.events[after:]:
            if self._match(event, type_, predicate):
                return event
        if self.closed:
            raise SessionClosedError(f"connection closed; no {type_!r} event")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        waiter = (type_, predicate, after, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            seen = [e.get("type") for _, e in self.events[-15:]]
            raise TimeoutError(f"no {type_!r} event within {timeout}s; last events: {seen}") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class ConsoleLog:
    """One connection's traffic as readable lines for a person watching `manage.py fake_openai`.

    Streams (audio, transcript deltas) become one summary line per burst instead of a line each.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._prefix = f"[{session.id[-6:]}] "
        self._pending: dict[tuple[str, str], list[float]] = {}

    def line(self, text: str) -> None:
        write = self._session.fake.log
        if write is not None:
            write(self._prefix + text)

    def flush(self) -> None:
        for (arrow, type_), (count, ms) in self._pending.items():
            audio = f" ({ms:.0f} ms audio)" if type_ in AUDIO_EVENTS else ""
            self.line(f"{arrow} {type_} x{int(count)}{audio}")
        self._pending.clear()

    def event(self, arrow: str, event: dict[str, Any]) -> None:
        """Called for every event in either direction; prints nothing while the server has no `log`."""
        if self._session.fake.log is None:
            return
        type_ = event.get("type") or "?"
        if type_ in STREAM_EVENTS:
            entry = self._pending.setdefault((arrow, type_), [0, 0.0])
            entry[0] += 1
            if type_ in AUDIO_EVENTS:
                fmt = self._session.input_format if arrow == "<<" else self._session.output_format
                b64 = event.get("audio") if arrow == "<<" else event.get("delta")
                entry[1] += fmt.ms(len(b64) * 3 // 4 if isinstance(b64, str) else 0)
            if entry[0] >= 250:
                self.flush()
            return
        self.flush()
        self.line(f"{arrow} {type_}{_detail(type_, event)}")


def _detail(type_: str, event: dict[str, Any]) -> str:
    if type_ == "error":
        err = event.get("error") or {}
        return f" {err.get('code')}: {err.get('message')}"
    if type_ == "response.done":
        r = event.get("response") or {}
        return f" {r.get('status')} {((r.get('status_details') or {}).get('reason')) or ''}".rstrip()
    if type_ in ("response.output_audio_transcript.done", "conversation.item.input_audio_transcription.completed"):
        return f" {event.get('transcript')!r}"
    if type_ in ("session.update", "session.updated"):
        audio = (event.get("session") or {}).get("audio") or {}
        fmt_in = (audio.get("input") or {}).get("format")
        fmt_out = (audio.get("output") or {}).get("format")
        return f" in={fmt_in} out={fmt_out}"
    return ""
