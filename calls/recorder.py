"""The database-backed CallStore: records calls without ever holding up their audio.

Transcript lines are queued per call and written by that call's own writer task, in batches,
in a worker thread. When the database is briefly down, lines wait in memory (replaced by
position, so the buffer is bounded by the length of the conversation) and are written when it is
back. A slow database slows only the writer, never a call's audio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError

from . import services
from .elks import Hello
from .session import Opened, Outcome, TranscriptLine

log = logging.getLogger(__name__)

RETRYABLE = (OperationalError, InterfaceError, DatabaseError)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def run_db(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync service in a pool thread of its own, so one slow query never queues the others.

    Channels' default funnels every ORM call of the process through one thread.
    """
    return database_sync_to_async(fn, thread_sensitive=False)


async def _retry(fn: Callable[..., Any], *, what: str, deadline_s: float, **kwargs: Any) -> Any:
    delay = 0.2
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + deadline_s
    while True:
        try:
            return await run_db(fn)(**kwargs)
        except RETRYABLE as exc:
            if loop.time() + delay > stop_at:
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class _TranscriptWriter:
    """One call's queue of transcript lines and the task that writes them."""

    def __init__(self, call_pk: int, max_lines: int) -> None:
        self.call_pk = call_pk
        self.pending: dict[int, TranscriptLine] = {}
        self.max_lines = max_lines
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task = asyncio.ensure_future(self._run())

    def add(self, line: TranscriptLine) -> None:
        if line.position not in self.pending and len(self.pending) >= self.max_lines:
            log.error(
                "call %s: transcript buffer full (%d lines); line %d dropped",
                self.call_pk,
                self.max_lines,
                line.position,
            )
            return
        self.pending[line.position] = line
        self.idle.clear()
        self.wake.set()

    async def _run(self) -> None:
        delay = 0.2
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                batch = sorted(self.pending.values(), key=lambda line: line.position)
                try:
                    await run_db(services.transcript_write)(call_pk=self.call_pk, lines=batch)
                except RETRYABLE as exc:
                    log.warning(
                        "call %s: transcript write failed (%s); %d lines kept, retrying in %.1fs",
                        self.call_pk,
                        type(exc).__name__,
                        len(self.pending),
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.2
                for line in batch:
                    if self.pending.get(line.position) is line:
                        del self.pending[line.position]
            self.idle.set()


class DbCallStore:
    """The CallStore the consumer gives each CallSession."""

    def __init__(self, *, worker: str = WORKER_ID, max_transcript_lines: int = 2000, flush_timeout: float = 20.0):
        self.worker = worker
        self.max_transcript_lines = max_transcript_lines
        self.flush_timeout = flush_timeout
        self._writers: dict[int, _TranscriptWriter] = {}
        self._heartbeat: asyncio.Task | None = None

    async def open(
        self,
        hello: Hello,
        *,
        refuse: Outcome | None = None,
        on_assistant: Callable[..., None] | None = None,
        assistant_id: int | None = None,
        is_test: bool = False,
    ) -> Opened:
        """Record the call; a browser test call passes its assistant and `is_test` (see services.call_start)."""
        self._ensure_heartbeat()
        loop = asyncio.get_running_loop()
        early = (lambda cfg: loop.call_soon_threadsafe(on_assistant, cfg)) if on_assistant else None
        try:
            pk, config, refusal = await _retry(
                services.call_start,
                what=f"call {hello.callid}: recording the call",
                deadline_s=3.0,
                call_id=hello.callid,
                from_number=hello.from_number,
                to_number=hello.to_number,
                worker=self.worker,
                refuse_reason=refuse.end_reason if refuse else "",
                refuse_detail=refuse.detail if refuse else "",
                assistant_id=assistant_id,
                is_test=is_test,
                on_assistant=early,
            )
        except RETRYABLE as exc:
            log.error("call %s: database unavailable at call start: %s", hello.callid, exc)
            return Opened(None, None, "The database is unavailable, so the assistant could not be looked up.")
        return Opened(pk, config, refusal)

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        """Tell the database every so often that this process's calls are alive (one query for all)."""
        from django.conf import settings

        from . import registry

        while True:
            await asyncio.sleep(settings.CALL_HEARTBEAT_SECONDS)
            pks = [s.call_pk for s in registry.live | registry.ending if s.call_pk is not None]
            if not pks:
                continue
            try:
                await run_db(services.calls_heartbeat)(call_pks=pks)
            except RETRYABLE as exc:
                log.warning("call heartbeat failed: %s", exc)

    def transcript(self, call_pk: int, line: TranscriptLine) -> None:
        writer = self._writers.get(call_pk)
        if writer is None:
            writer = self._writers[call_pk] = _TranscriptWriter(call_pk, self.max_transcript_lines)
        writer.add(line)

    async def finish(self, call_pk: int, outcome: Outcome) -> None:
        writer = self._writers.pop(call_pk, None)
        try:
            if writer is not None:
                try:
                    await asyncio.wait_for(writer.idle.wait(), self.flush_timeout)
                except TimeoutError:
                    lost = sorted(writer.pending.values(), key=lambda line: line.position)
                    log.error(
                        "call %s: database unavailable for %gs; transcript lines not written: %s",
                        call_pk,
                        self.flush_timeout,
                        [(line.role, line.text) for line in lost],
                    )
            await _retry(
                services.call_finish,
                what=f"call {call_pk}: recording the end",
                deadline_s=self.flush_timeout,
                call_pk=call_pk,
                status=outcome.status,
                end_reason=outcome.end_reason,
                detail=outcome.detail,
            )
        finally:
            if writer is not None:
                writer.task.cancel()
