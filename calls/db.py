"""The process's database threads: how live-call code reaches the ORM without waiting behind other work."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, OperationalError
from django.db.backends.signals import connection_created
from django.dispatch import receiver

log = logging.getLogger(__name__)

RETRYABLE = (OperationalError, InterfaceError, DatabaseError)
# Errors that retrying cannot fix (a call deleted meanwhile, a value the column refuses).
REFUSED = (IntegrityError, DataError)


# The threads that run the process's database work (as many as asyncio's default executor has).
DB_THREAD_PREFIX = "calls-db"
_db_threads = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix=DB_THREAD_PREFIX)


@receiver(connection_created, dispatch_uid="calls_db_threads_keep_sqlite_connections")
def _keep_sqlite_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On SQLite, a connection of a database thread stays open for the thread's life.

    A new SQLite connection re-reads the schema and prepares every statement again: measured, half
    of a call's setup time. These threads never end, so their connections cannot leak (unlike those
    of the threads Django makes per request, hence CONN_MAX_AGE = 0); close_old_connections still
    closes a broken one. PostgreSQL's connections come from its pool instead.
    """
    if connection.vendor == "sqlite" and threading.current_thread().name.startswith(DB_THREAD_PREFIX):
        connection.close_at = None
        with connection.cursor() as cursor:
            # Other connections' writes empty its page cache anyway: keep it small (KiB), as it lives on.
            cursor.execute("PRAGMA cache_size = -256")


def run_db(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a sync service in a database thread, several at once, so one slow query never queues the others.

    Channels' default funnels every ORM call of the process through one thread.
    """
    return database_sync_to_async(fn, thread_sensitive=False, executor=_db_threads)


async def retry(fn: Callable[..., Any], *, what: str, deadline_s: float, **kwargs: Any) -> Any:
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
