"""A server process that dies (SIGKILL) leaves no ghost calls, and never takes a healthy process's calls with it.

Two real server processes share the database (and Redis when REDIS_URL is set), each with live
simulated calls through its own fake OpenAI. The heartbeat is set short here so the tests are fast;
the production default's bound (SERVER_DEAD_AFTER_SECONDS + SERVER_HEARTBEAT_SECONDS) is asserted too.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from calls.models import Call, CallStatus, ServerProcess
from tests.bridge_helpers import NUMBER_A, NUMBER_B, fake_openai, get_call, make_assistant, simulator
from tests.conftest import FAST_TIMEOUTS, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

BEAT = {"SERVER_HEARTBEAT_SECONDS": "0.3", "SERVER_DEAD_AFTER_SECONDS": "1.5"}
LONG_CALL = [("silence", 60_000)]  # the caller keeps sending audio for the whole test


@pytest.fixture
def assistants(transactional_db):
    return make_assistant("Doomed", NUMBER_A), make_assistant("Healthy", NUMBER_B)


async def until(check, *, timeout: float, what: str):
    """Poll the database (via `check`, sync) until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = await sync_to_async(check)()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def active_call(callid: str) -> Call | None:
    return Call.objects.filter(call_id=callid, status=CallStatus.ACTIVE, server__isnull=False).first()


def ended_call(callid: str) -> Call | None:
    return Call.objects.exclude(status=CallStatus.ACTIVE).filter(call_id=callid).first()


def kill(server) -> float:
    """SIGKILL the process and reap it (a zombie would still look alive); returns when it was killed."""
    killed = time.monotonic()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    return killed


def test_the_production_default_closes_a_dead_process_calls_within_30_seconds():
    from django.conf import settings

    assert settings.SERVER_DEAD_AFTER_SECONDS + settings.SERVER_HEARTBEAT_SECONDS <= 30
    # A beat late by a few seconds (a busy loop, a slow query) must not declare a healthy process dead.
    assert settings.SERVER_DEAD_AFTER_SECONDS >= 3 * settings.SERVER_HEARTBEAT_SECONDS


async def test_a_killed_process_calls_close_within_the_bound_and_the_other_process_streams_on(
    django_db_setup, assistants
):
    from django.db import connection

    db = connection.settings_dict["NAME"]
    doomed = start_daphne(db, extra_env={**FAST_TIMEOUTS, **BEAT})
    healthy = start_daphne(db, extra_env={**FAST_TIMEOUTS, **BEAT})
    try:
        async with fake_openai(doomed), fake_openai(healthy) as healthy_fake:
            dying = simulator(doomed, to=NUMBER_A, caller_audio=LONG_CALL)
            living = simulator(healthy, to=NUMBER_B, caller_audio=LONG_CALL)
            dying_task = asyncio.ensure_future(dying.run())
            living_task = asyncio.ensure_future(living.run())
            living_session = await healthy_fake.next_session()
            for sim in (dying, living):
                await sim.wait_played_ms(300)
            doomed_call = await until(lambda: active_call(dying.result.callid), timeout=5, what="doomed call recorded")
            healthy_call = await until(
                lambda: active_call(living.result.callid), timeout=5, what="healthy call recorded"
            )
            assert doomed_call.server_id != healthy_call.server_id

            killed = await asyncio.to_thread(kill, doomed)
            heard_at_kill = len(living_session.input_audio)
            closed = await until(
                lambda: ended_call(dying.result.callid), timeout=10, what="the dead process's call closed"
            )
            took = time.monotonic() - killed
            # Not before the dead process's heartbeat could be stale, and well within the bound after.
            assert 1.5 - 0.3 <= took <= 1.5 + 0.3 + 2.0, took
            assert (closed.status, closed.end_reason) == ("failed", "server_shutdown")
            assert "stopped" in closed.end_detail
            dead = await sync_to_async(ServerProcess.objects.get)(pk=doomed_call.server_id)
            assert dead.stopped_at is not None

            # The healthy process's call is still active, and the caller's audio still reaches OpenAI.
            assert await sync_to_async(active_call)(living.result.callid) is not None
            await until(
                lambda: len(living_session.input_audio) >= heard_at_kill + 16_000,
                timeout=5,
                what="the healthy call's audio kept flowing",
            )
            assert (await sync_to_async(ServerProcess.objects.get)(pk=healthy_call.server_id)).stopped_at is None
            await living.hang_up()
            result = await asyncio.wait_for(living_task, 10)
            assert result.violations == []
            dying_task.cancel()
        call = await until(
            lambda: ended_call(living.result.callid), timeout=10, what="the healthy call recorded as ended"
        )
        assert call.status == "completed"
    finally:
        stop_daphne(doomed)
        stop_daphne(healthy)


async def test_a_restart_in_the_same_slot_closes_the_dead_process_calls_at_once(django_db_setup, assistants):
    from django.db import connection

    db = connection.settings_dict["NAME"]
    # Nobody else would close them for a minute: only the restart can.
    slow = {**FAST_TIMEOUTS, "SERVER_HEARTBEAT_SECONDS": "0.3", "SERVER_DEAD_AFTER_SECONDS": "60"}
    first = start_daphne(db, extra_env=slow)
    second = None
    try:
        async with fake_openai(first):
            sim = simulator(first, to=NUMBER_A, caller_audio=LONG_CALL)
            task = asyncio.ensure_future(sim.run())
            await sim.wait_played_ms(300)
            await until(lambda: active_call(sim.result.callid), timeout=5, what="call recorded")
            killed = await asyncio.to_thread(kill, first)
            task.cancel()
        second = start_daphne(db, extra_env=slow, port=first.port, openai_port=first.openai_port)
        took = time.monotonic() - killed
        call = await get_call(sim.result.callid)  # closed before the new process listens
        assert (call.status, call.end_reason) == ("failed", "server_shutdown"), (call.status, took)
        assert "closed 1 call(s) left active by a stopped process" in second.logs()
        in_slot = ServerProcess.objects.filter(slot__endswith=f":{first.port}").order_by("started_at")
        old, new = await sync_to_async(list)(in_slot)  # other tests' servers share the database
        assert old.slot == new.slot and old.boot_id != new.boot_id and old.stopped_at is not None
        assert call.server_id == old.pk
        # The new start beats (its row moves on), so nobody will take its own calls for dead.
        await until(
            lambda: ServerProcess.objects.filter(pk=new.pk, last_seen_at__gt=new.last_seen_at).exists(),
            timeout=5,
            what="the restarted process beats",
        )
    finally:
        stop_daphne(first)
        if second is not None:
            stop_daphne(second)


def test_release_and_worker_close_only_the_calls_of_silent_processes(assistants):
    from django.core.management import call_command

    from calls.jobs import close_calls_of_dead_servers

    now = timezone.now()
    old = now - timezone.timedelta(minutes=10)

    def process(name: str, last_seen) -> ServerProcess:
        return ServerProcess.objects.create(
            slot=name, host="h", pid=1, boot_id=name, started_at=old, last_seen_at=last_seen
        )

    # A preboot: the same slot twice, the old one still beating.
    beating = process("web.1", now)
    second = ServerProcess.objects.create(
        slot="web.1", host="h2", pid=1, boot_id="b2", started_at=now, last_seen_at=now
    )
    silent = process("web.2", now - timezone.timedelta(seconds=25))
    for name, server in (("alive", beating), ("alive2", second), ("dead", silent)):
        Call.objects.create(call_id=name, started_at=old, last_seen_at=old, status=CallStatus.ACTIVE, server=server)
    call_command("close_orphan_calls")
    assert Call.objects.get(call_id="dead").status == "failed"
    assert set(Call.objects.filter(status="active").values_list("call_id", flat=True)) == {"alive", "alive2"}
    assert ServerProcess.objects.get(pk=silent.pk).stopped_at is not None

    ServerProcess.objects.filter(pk=beating.pk).update(last_seen_at=now - timezone.timedelta(seconds=21))
    assert close_calls_of_dead_servers() == "closed 1 call(s) of stopped server processes"
    assert Call.objects.get(call_id="alive").end_reason == "server_shutdown"
    assert Call.objects.get(call_id="alive2").status == "active"


def test_a_beat_writes_its_deleted_row_again_and_adopts_the_calls_recorded_meanwhile(assistants):
    from calls import services

    now = timezone.now()
    me = ServerProcess.objects.create(slot="web.1", host="h", pid=5, boot_id="me", started_at=now, last_seen_at=now)
    pk = me.pk
    me.delete()  # e.g. by hand in admin, or a test database flushed under a running server
    call_pk, _, refusal = services.call_start(
        call_id="meanwhile", from_number="+46700000009", to_number=NUMBER_A, worker="h:5", server_id=pk
    )
    assert refusal == "" and Call.objects.get(pk=call_pk).server_id is None  # the call is still answered
    services.server_process_beat(pk=pk, slot="web.1", host="h", pid=5, boot_id="me", call_pks=[call_pk])
    assert ServerProcess.objects.get(pk=pk).boot_id == "me"
    assert Call.objects.get(pk=call_pk).server_id == pk
