"""This server process's heartbeat: how calls of a process that died are closed within 30 seconds.

Each start of `python -m voiceagent.server` records a `ServerProcess` (its slot: the platform's dyno
name, or host and port) and beats every SERVER_HEARTBEAT_SECONDS; each call points at the process
that handles it. Every beat also closes the calls of processes silent for SERVER_DEAD_AFTER_SECONDS
(as does the `worker`), so a crash is cleaned up by whoever is still alive. A new start in the same
slot on the same machine closes the calls of the start before it at once, when that process is gone.
A second healthy process (a rolling deploy, a preboot) keeps beating, so its calls are never closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from . import services
from .db import RETRYABLE, run_db

log = logging.getLogger(__name__)


@dataclass
class ServerIdentity:
    pk: int
    slot: str
    boot_id: str


CURRENT: ServerIdentity | None = None
"""This process's record, once `register` has run (None outside a server process)."""


def current_server_id() -> int | None:
    return CURRENT.pk if CURRENT is not None else None


def server_slot(port: int) -> str:
    """Where this process runs: $DYNO on Heroku-like platforms, else this host and port."""
    return os.environ.get("DYNO") or f"{socket.gethostname()}:{port}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def register(*, port: int) -> tuple[ServerIdentity, int]:
    """Record this start (in the calling thread, before serving); returns it and how many old calls it closed."""
    global CURRENT
    slot = server_slot(port)
    boot_id = uuid.uuid4().hex
    pk, closed = services.server_process_start(
        slot=slot, host=socket.gethostname(), pid=os.getpid(), boot_id=boot_id, pids_alive=_pid_alive
    )
    CURRENT = ServerIdentity(pk, slot, boot_id)
    return CURRENT, closed


async def heartbeat_forever(every_s: float) -> None:
    """Beat every `every_s` seconds (in a database thread) until cancelled; close dead processes' calls."""
    if CURRENT is None:
        return
    from .live.registry import PROCESS_CALLS

    me = CURRENT
    while True:
        try:
            closed = await run_db(services.server_process_beat)(
                pk=me.pk,
                slot=me.slot,
                host=socket.gethostname(),
                pid=os.getpid(),
                boot_id=me.boot_id,
                call_pks=PROCESS_CALLS.call_pks(),
            )
            if closed:
                log.warning("closed %d call(s) of a server process that stopped beating", closed)
        except RETRYABLE as exc:
            log.warning("server heartbeat failed: %s", exc)
        except Exception:
            log.exception("server heartbeat failed")
        await asyncio.sleep(every_s)


async def stopped() -> None:
    """This process ended its calls and stops: say so, so nobody waits for its heartbeat to go stale."""
    if CURRENT is not None:
        try:
            await run_db(services.server_process_stop)(pk=CURRENT.pk)
        except Exception as exc:
            log.warning("could not record this process's stop: %s", exc)
