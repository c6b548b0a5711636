"""Transcript lines of every call are written together by one writer, off the audio path.

The store is the process's DbCallStore, driven directly: each test counts the writer's
transactions by wrapping `services.transcript_write`, and injects database faults there. The
tests' own reads close their connection after use (database_sync_to_async), as PostgreSQL's pool
must get every connection back before the test database can be dropped.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.utils import timezone

from calls import services
from calls.live.types import Outcome, TranscriptLine
from calls.models import Call, TranscriptEntry
from calls.store import DbCallStore

pytestmark = pytest.mark.django_db(transaction=True)

DONE = Outcome("completed", "caller_hangup")


@database_sync_to_async
def make_calls(n: int) -> list[int]:
    now = timezone.now()
    return [Call.objects.create(call_id=f"tr-{i}", started_at=now).pk for i in range(n)]


@database_sync_to_async
def rows(call_pk: int) -> list[tuple[int, str, str]]:
    return list(TranscriptEntry.objects.filter(call_id=call_pk).values_list("position", "role", "text"))


@pytest.fixture
def writes(monkeypatch):
    """Every call of transcript_write (one transaction each), as lists of (call pk, position, text)."""
    real = services.transcript_write
    seen: list[list[tuple[int, int, str]]] = []

    def counting(**kwargs):
        lines = list(kwargs["lines"])
        result = real(lines=lines)
        seen.append([(pk, line.position, line.text) for pk, line in lines])
        return result

    monkeypatch.setattr(services, "transcript_write", counting)
    return seen


def line(position: int, text: str, role: str = "assistant") -> TranscriptLine:
    return TranscriptLine(position, role, text, item_id=f"item_{position}")


async def settled(store: DbCallStore, timeout: float = 5.0) -> None:
    """Until every queued line is written: the writer's task ends when no line waits."""
    await asyncio.wait_for(store.transcripts._task, timeout)
    assert store.transcripts.pending == {}


async def test_lines_of_several_calls_share_one_transaction(writes):
    calls = await make_calls(3)
    store = DbCallStore(transcript_delay=0.1)
    for pk in calls:
        store.transcript(pk, line(0, f"Hello {pk}."))
        store.transcript(pk, line(1, "Hi.", role="caller"))
    await settled(store)
    assert len(writes) == 1 and len(writes[0]) == 6
    for pk in calls:
        assert await rows(pk) == [(0, "assistant", f"Hello {pk}."), (1, "caller", "Hi.")]


async def test_a_line_rewritten_before_the_flush_is_written_once_with_the_latest_text(writes):
    [pk] = await make_calls(1)
    store = DbCallStore(transcript_delay=0.1)
    store.transcript(pk, line(0, "Hel"))
    store.transcript(pk, line(0, "Hello there, how"))
    store.transcript(pk, line(0, "Hello there"))
    await settled(store)
    assert writes == [[(pk, 0, "Hello there")]]
    # Rewritten after it was written (the caller cut the assistant off): the row is replaced.
    store.transcript(pk, line(0, "Hello"))
    await settled(store)
    assert len(writes) == 2 and await rows(pk) == [(0, "assistant", "Hello")]


async def test_finish_writes_the_lines_at_once_then_records_the_end(writes):
    [pk] = await make_calls(1)
    store = DbCallStore(transcript_delay=30.0)  # only the end of the call flushes
    store.transcript(pk, line(0, "Goodbye."))
    await asyncio.wait_for(store.finish(pk, DONE), 5)
    assert writes == [[(pk, 0, "Goodbye.")]]
    assert await rows(pk) == [(0, "assistant", "Goodbye.")]
    call = await database_sync_to_async(Call.objects.get)(pk=pk)
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    await settled(store)
    assert store.transcripts._waiters == {}


async def test_database_down_then_back(monkeypatch, caplog):
    """Lines wait in memory, one warning per attempt (not per line), and are written when it is back."""
    calls = await make_calls(2)
    real = services.transcript_write
    outage = {"left": 3, "failures": 0}

    def flaky(**kwargs):
        if outage["left"]:
            outage["left"] -= 1
            outage["failures"] += 1
            raise OperationalError("connection refused (injected)")
        return real(**kwargs)

    monkeypatch.setattr(services, "transcript_write", flaky)
    store = DbCallStore(transcript_delay=0.05)
    with caplog.at_level(logging.WARNING, logger="calls.store"):
        for pk in calls:
            for n in range(5):
                store.transcript(pk, line(n, f"line {n}"))
        started = asyncio.get_running_loop().time()
        store.transcript(calls[0], line(9, "Audio goes on."))  # queuing never waits for the database
        assert asyncio.get_running_loop().time() - started < 0.01
        await asyncio.wait_for(store.finish(calls[0], DONE), 10)
        await settled(store)
    assert outage["failures"] == 3
    failed = [r for r in caplog.records if "transcript write failed" in r.getMessage()]
    assert len(failed) == 3 and "11 lines of 2 calls kept" in failed[0].getMessage()
    assert any("written again after 3 failed attempts" in r.getMessage() for r in caplog.records)
    assert len(await rows(calls[0])) == 6 and len(await rows(calls[1])) == 5
    assert (await database_sync_to_async(Call.objects.get)(pk=calls[0])).status == "completed"


async def test_finish_gives_up_after_flush_timeout_and_logs_the_lost_lines(monkeypatch, caplog):
    [pk] = await make_calls(1)

    def down(**kwargs):
        raise OperationalError("connection refused (injected)")

    monkeypatch.setattr(services, "transcript_write", down)
    store = DbCallStore(transcript_delay=0.05, flush_timeout=0.5)
    store.transcript(pk, line(0, "Nobody will read this."))
    with caplog.at_level(logging.ERROR, logger="calls.store"):
        await asyncio.wait_for(store.finish(pk, DONE), 5)
    assert any("Nobody will read this." in r.getMessage() for r in caplog.records)
    assert (await database_sync_to_async(Call.objects.get)(pk=pk)).status == "completed"
    # Nothing of the call is kept: the writer stops once its backoff ends.
    assert store.transcripts._waiters == {}
    await settled(store)


async def test_a_call_the_database_refuses_does_not_hold_up_the_others(writes, caplog):
    [pk] = await make_calls(1)
    store = DbCallStore(transcript_delay=0.05)
    gone = pk + 1000  # no such call: its lines break the foreign key
    store.transcript(gone, line(0, "Lost."))
    store.transcript(pk, line(0, "Kept."))
    with caplog.at_level(logging.ERROR, logger="calls.store"):
        await settled(store)
    assert await rows(pk) == [(0, "assistant", "Kept.")]
    assert any("Lost." in r.getMessage() and f"call {gone}" in r.getMessage() for r in caplog.records)


async def test_a_slow_database_delays_no_one_and_lines_coalesce(monkeypatch):
    """While one flush is stuck in the database, calls keep queuing; the next flush takes them all."""
    import time

    calls = await make_calls(4)
    real = services.transcript_write
    batches: list[int] = []

    def slow(**kwargs):
        lines = list(kwargs["lines"])
        time.sleep(0.3)
        batches.append(len(lines))
        return real(lines=lines)

    monkeypatch.setattr(services, "transcript_write", slow)
    store = DbCallStore(transcript_delay=0.02)
    store.transcript(calls[0], line(0, "first"))
    await asyncio.sleep(0.1)  # the first flush is in the database now
    loop = asyncio.get_running_loop()
    for n in range(1, 40):
        started = loop.time()
        store.transcript(calls[n % 4], line(n, f"line {n}"))
        assert loop.time() - started < 0.01
        await asyncio.sleep(0.001)
    await settled(store, timeout=10)
    assert batches == [1, 39]


async def test_the_buffer_is_bounded_per_call(caplog):
    [pk, other] = await make_calls(2)
    store = DbCallStore(transcript_delay=0.05, max_transcript_lines=3)
    with caplog.at_level(logging.ERROR, logger="calls.store"):
        for n in range(5):
            store.transcript(pk, line(n, f"line {n}"))
        store.transcript(pk, line(1, "rewritten"))  # a rewrite of a queued line always fits
        store.transcript(other, line(0, "another call has its own room"))
        await settled(store)
    assert [r[2] for r in await rows(pk)] == ["line 0", "rewritten", "line 2"]
    assert len(await rows(other)) == 1
    assert sum("transcript buffer full" in r.getMessage() for r in caplog.records) == 2
