"""Pushes call events to every dashboard, in every process, through the channel layer.

`publish` is called from call observers on the event loop and only queues the event; one task
per process sends the queue in order. A call never waits for it: when the layer (Redis) is slow
or down, events are dropped and logged once per outage, and the call goes on as if nothing
happened. Dashboards catch up from the database when they reconnect.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

GROUP = "dashboard"


class Publisher:
    """One process's queue of dashboard events and the task that sends them."""

    def __init__(self, *, group: str = GROUP, max_queued: int = 500, send_timeout: float = 2.0) -> None:
        self.group = group
        self.max_queued = max_queued
        self.send_timeout = send_timeout
        self.sent = 0
        self.dropped = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._wake: asyncio.Event | None = None
        self.idle: asyncio.Event | None = None  # set while nothing is queued or being sent
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    def publish(self, message: dict[str, Any]) -> None:
        """Queue a channel-layer message for the dashboard group; never blocks, never raises."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on an event loop (a management command): nobody is watching live
        if self._loop is not loop or self._task is None or self._task.done():
            self._start(loop)
        if len(self._queue) >= self.max_queued:
            self._drop("the queue is full")
            return
        self._queue.append(message)
        self.idle.clear()
        self._wake.set()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue.clear()
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            log.warning("no channel layer is configured: dashboards will not update live")
            self._queue.clear()
            self.idle.set()
            return
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                message = self._queue.popleft()
                try:
                    await asyncio.wait_for(layer.group_send(self.group, message), self.send_timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._drop(f"{type(exc).__name__}: {exc}")
                else:
                    self.sent += 1
                    if self._failing:
                        self._failing = False
                        log.warning("dashboard updates flow again (%d were dropped meanwhile)", self.dropped)
            self.idle.set()

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if not self._failing:
            self._failing = True
            log.warning("dashboard update dropped (%s); calls are not affected, later drops are counted", why)


publisher = Publisher()


def publish(message: dict[str, Any]) -> None:
    """Queue an event for the live dashboards (see Publisher.publish)."""
    publisher.publish(message)
