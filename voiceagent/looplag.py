"""How late the server's event loop wakes up: the early warning that a process carries too many calls.

Every frame of every call waits for the loop; a loop that is late by tens of milliseconds is heard
by callers before CPU graphs say anything. A timer asks to be woken every `interval` seconds and
measures how much later it actually ran (one histogram observation per wake-up, a few per second:
nothing per frame). A wake-up later than `late_s` is logged, at most one line per `log_every_s`,
with the count of late wake-ups since the previous line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopLagProbe:
    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        interval: float = 0.2,
        late_s: float = 0.1,
        log_every_s: float = 30.0,
    ) -> None:
        self.observe = observe
        self.interval = interval
        self.late_s = late_s
        self.log_every_s = log_every_s
        self.late_since_line = 0
        self.worst_since_line = 0.0
        self._last_line = float("-inf")
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_event_loop()
        self._schedule(time.monotonic())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, now: float) -> None:
        self._due = now + self.interval
        self._handle = self._loop.call_later(self.interval, self._wake)

    def _wake(self) -> None:
        now = time.monotonic()
        lag = max(0.0, now - self._due)
        self.observe(lag)
        if lag > self.late_s:
            self._late(now, lag)
        self._schedule(now)

    def _late(self, now: float, lag: float) -> None:
        self.late_since_line += 1
        self.worst_since_line = max(self.worst_since_line, lag)
        if now - self._last_line < self.log_every_s:
            return
        log.warning(
            "event loop late by %.0f ms: every call's audio waited that long (%d late wake-up(s) over %.0f ms "
            "since the last such line, worst %.0f ms); too many calls or blocking work in this process?",
            lag * 1000,
            self.late_since_line,
            self.late_s * 1000,
            self.worst_since_line * 1000,
        )
        self._last_line = now
        self.late_since_line = 0
        self.worst_since_line = 0.0
