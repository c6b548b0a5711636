"""The `worker` process's background jobs: each a function an app names in `settings.WORKER_JOBS`.

A job is a plain function that does one round of its work (send the webhooks that are due,
delete expired recordings, ...) and returns a short sentence for the log, or "" when there was
nothing to do. The worker runs each one every `interval` seconds; a job that fails is logged
and tried again at its next round, and never stops the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    run: Callable[[], str]
    interval: float
    due: float = field(default=0.0)


def registered_jobs() -> list[Job]:
    """The jobs of `settings.WORKER_JOBS`: (dotted path, interval in seconds) pairs."""
    return [Job(path, import_string(path), float(interval)) for path, interval in settings.WORKER_JOBS]


def run_due(jobs: list[Job], now: float) -> None:
    """Run the jobs that are due at `now` (monotonic seconds), each at most once."""
    for job in jobs:
        if job.due > now:
            continue
        job.due = now + job.interval
        close_old_connections()
        try:
            summary = job.run()
        except Exception:
            log.exception("job %s failed; it runs again in %gs", job.name, job.interval)
            continue
        if summary:
            log.info("job %s: %s", job.name, summary)


def run_forever(jobs: list[Job], *, stopping: Callable[[], bool], clock=time.monotonic, sleep=time.sleep) -> None:
    """Run the jobs on their schedule until `stopping()` turns true (checked at least once a second)."""
    while not stopping():
        run_due(jobs, clock())
        next_due = min((job.due for job in jobs), default=clock() + 1.0)
        sleep(max(0.0, min(1.0, next_due - clock())))


def close_calls_of_dead_servers() -> str:
    """Close the calls of server processes that stopped beating (also when no server process is left)."""
    from .services import calls_close_stale, server_processes_prune

    closed = calls_close_stale()
    pruned = server_processes_prune()
    parts = [f"closed {closed} call(s) of stopped server processes"] if closed else []
    parts += [f"forgot {pruned} long-stopped server process(es)"] if pruned else []
    return "; ".join(parts)
