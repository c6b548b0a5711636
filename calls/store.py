"""The database-backed CallStore: records calls without ever holding up their audio.

Transcript lines of every call in the process go to one queue, written by one task: a short
while after lines arrive (so the lines of many calls share one transaction and one thread hop),
at once when a call ends. When the database is briefly down, lines wait in memory (replaced by
position, and bounded per call) and are written when it is back. A slow database slows only the
writer, never a call's audio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from . import services
from .db import REFUSED, RETRYABLE, retry, run_db
from .live.elks import Hello
from .live.types import Opened, Outcome, TranscriptLine
from .processes import current_server_id

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _ordered(lines: dict[int, TranscriptLine]) -> list[TranscriptLine]:
    return sorted(lines.values(), key=lambda line: line.position)


class _TranscriptWriter:
    """The transcript lines of every call in the process, and the one task that writes them.

    The task runs while lines wait and ends when none do, so an idle process holds no task.
    """

    def __init__(self, *, max_lines_per_call: int, delay: float) -> None:
        self.max_lines = max_lines_per_call
        self.delay = delay
        self.pending: dict[int, dict[int, TranscriptLine]] = {}
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._task: asyncio.Task | None = None
        self._hurry = asyncio.Event()

    def add(self, call_pk: int, line: TranscriptLine) -> None:
        lines = self.pending.setdefault(call_pk, {})
        if line.position not in lines and len(lines) >= self.max_lines:
            log.error(
                "call %s: transcript buffer full (%d lines); line %d dropped", call_pk, self.max_lines, line.position
            )
            return
        lines[line.position] = line
        self._ensure_task()

    async def drain(self, call_pk: int, timeout: float) -> list[TranscriptLine]:
        """Write this call's lines now; returns those still unwritten after `timeout` (then dropped)."""
        if call_pk not in self.pending:
            return []
        done = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(call_pk, []).append(done)
        self._ensure_task()
        self._hurry.set()
        try:
            await asyncio.wait_for(done, timeout)
            return []
        except TimeoutError:
            return _ordered(self.pending.pop(call_pk, {}))
        finally:
            waiters = self._waiters.get(call_pk, [])
            if done in waiters:
                waiters.remove(done)
            if not waiters:
                self._waiters.pop(call_pk, None)

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._hurry = asyncio.Event()
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        retry_in = 0.2
        failures = 0
        while self.pending:
            if not self._hurry.is_set():
                try:
                    # Lines arriving meanwhile, from any call, join this flush.
                    async with asyncio.timeout(self.delay):
                        await self._hurry.wait()
                except TimeoutError:
                    pass
            self._hurry.clear()
            batch = [(call_pk, line) for call_pk, lines in self.pending.items() for line in lines.values()]
            try:
                await self._write(batch)
            except Exception as exc:
                failures += 1
                # A database that is down is expected now and then; anything else is a bug to see.
                report = log.warning if isinstance(exc, RETRYABLE) else log.exception
                report(
                    "transcript write failed (%s: %s); %d lines of %d calls kept, retrying in %.1fs",
                    type(exc).__name__,
                    exc,
                    len(batch),
                    len(self.pending),
                    retry_in,
                )
                await asyncio.sleep(retry_in)
                retry_in = min(retry_in * 2, 5.0)
                continue
            if failures:
                log.warning("transcript lines written again after %d failed attempts", failures)
            retry_in, failures = 0.2, 0
            self._written(batch)

    async def _write(self, batch: list[tuple[int, TranscriptLine]]) -> None:
        """One transaction for all; if the database refuses it, one per call, so one call cannot block the rest."""
        try:
            await run_db(services.transcript_write)(lines=batch)
            return
        except REFUSED as exc:
            log.warning("transcript write refused (%s); writing call by call", type(exc).__name__)
        by_call: dict[int, list[tuple[int, TranscriptLine]]] = {}
        for call_pk, line in batch:
            by_call.setdefault(call_pk, []).append((call_pk, line))
        for call_pk, lines in by_call.items():
            try:
                await run_db(services.transcript_write)(lines=lines)
            except REFUSED as exc:
                # Retrying cannot help (e.g. the call was deleted): drop them, saying what was lost.
                lost = _ordered({line.position: line for _, line in lines})
                log.error(
                    "call %s: transcript lines refused by the database (%s: %s), not written: %s",
                    call_pk,
                    type(exc).__name__,
                    exc,
                    [(line.role, line.text) for line in lost],
                )
            self._written(lines)

    def _written(self, batch: list[tuple[int, TranscriptLine]]) -> None:
        """Forget the lines just written (unless rewritten meanwhile); wake the calls that wait for theirs."""
        for call_pk, line in batch:
            lines = self.pending.get(call_pk)
            if lines is not None and lines.get(line.position) is line:
                del lines[line.position]
                if not lines:
                    del self.pending[call_pk]
        for call_pk, waiters in self._waiters.items():
            if call_pk not in self.pending:
                for done in waiters:
                    if not done.done():
                        done.set_result(None)


class DbCallStore:
    """The CallStore the consumer gives each CallSession (one per process, shared by its calls)."""

    def __init__(
        self,
        *,
        worker: str = WORKER_ID,
        max_transcript_lines: int = 2000,
        flush_timeout: float = 20.0,
        transcript_delay: float = 0.25,
    ):
        self.worker = worker
        self.max_transcript_lines = max_transcript_lines
        self.flush_timeout = flush_timeout
        self.transcripts = _TranscriptWriter(max_lines_per_call=max_transcript_lines, delay=transcript_delay)
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
        early = None
        if on_assistant is not None:
            told: list[Any] = []

            def early(cfg: Any) -> None:
                # Once: a retried call_start (the database hiccuped) must not start a second connection.
                if not told:
                    told.append(cfg)
                    loop.call_soon_threadsafe(on_assistant, cfg)
                    # Let the loop's thread take the GIL now (measured: p90 9 -> 6 ms to the callback),
                    # not when this thread next waits for the database.
                    time.sleep(0)

        try:
            pk, config, refusal = await retry(
                services.call_start,
                what=f"call {hello.callid}: recording the call",
                deadline_s=3.0,
                call_id=hello.callid,
                from_number=hello.from_number,
                to_number=hello.to_number,
                worker=self.worker,
                server_id=current_server_id(),
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
        # A server process beats for all its calls (calls.processes); a call recorded elsewhere beats itself.
        if current_server_id() is not None:
            return
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        """Tell the database every so often that this process's calls are alive (one query for all)."""
        from django.conf import settings

        from .live.registry import PROCESS_CALLS

        while True:
            await asyncio.sleep(settings.CALL_HEARTBEAT_SECONDS)
            pks = PROCESS_CALLS.call_pks()
            if not pks:
                continue
            try:
                await run_db(services.calls_heartbeat)(call_pks=pks)
            except RETRYABLE as exc:
                log.warning("call heartbeat failed: %s", exc)

    def transcript(self, call_pk: int, line: TranscriptLine) -> None:
        """Queue a line (insert or replace by position) for the next flush; never blocks."""
        self.transcripts.add(call_pk, line)

    async def finish(self, call_pk: int, outcome: Outcome) -> None:
        """Write the call's lines at once (waiting at most `flush_timeout`), then record how it ended."""
        lost = await self.transcripts.drain(call_pk, self.flush_timeout)
        if lost:
            log.error(
                "call %s: database unavailable for %gs; transcript lines not written: %s",
                call_pk,
                self.flush_timeout,
                [(line.role, line.text) for line in lost],
            )
        await retry(
            services.call_finish,
            what=f"call {call_pk}: recording the end",
            deadline_s=self.flush_timeout,
            call_pk=call_pk,
            status=outcome.status,
            end_reason=outcome.end_reason,
            detail=outcome.detail,
        )
