"""Shared fixtures: a real daphne serving the project against the test database, and peers.

Daphne runs in a subprocess with the test settings, pointed at the test database, with OpenAI's
URL pointing at a port where each test starts its own fake Realtime server.

`make test` runs the suite in two pytest-xdist workers (`-n 2 --dist load`). Each worker is a
process of its own, with its own test database (pytest-django adds `_gw<n>` to the name), its own
session `daphne_server`, and its own Redis prefixes (voiceagent/test_settings.py; the daphnes it
starts inherit them), so workers never see each other's rows, calls or channel-layer groups. New
tests need nothing special: start servers with `start_daphne(connection.settings_dict["NAME"])`,
take ports from `free_port()`, never a fixed port; a module-scoped server may start once per worker;
wait for its calls to be recorded after each test (`wait_until_idle`, as `log_on_failure` in
test_dashboard does) before the next test flushes the database. `--dist load` keeps
pytest-django's order on each worker, so tests that read rows the migrations seed still run before
the transactional tests that flush them. `make test TEST_WORKERS=1` runs the suite in one process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "sk-test-key-0123456789"
# Short timeouts keep the tests of the waiting paths quick.
FAST_TIMEOUTS = {
    "CALL_HELLO_TIMEOUT": "1",
    "CALL_BYE_TIMEOUT": "2",
    "OPENAI_CONNECT_TIMEOUT": "3",
    "POST_CALL_WEBHOOK_RETRY_BASE_SECONDS": "0.2",  # an after-call webhook's retry comes at once
    "ALLOWED_HOSTS": "127.0.0.1,localhost",  # tests (and the pizza demo's tool) make HTTP requests to daphne
}


def pytest_configure(config) -> None:
    _flush_survives_deadlocks()


def _flush_survives_deadlocks() -> None:
    """A test's data is wiped (TRUNCATE) while the suite's shared servers still beat and write; on
    PostgreSQL the wipe can be picked as a deadlock's victim. It rolls back whole, so try it again."""
    from django.db.backends.postgresql.operations import DatabaseOperations
    from django.db.utils import OperationalError

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == 4:
                    raise

    DatabaseOperations.execute_sql_flush = execute_sql_flush


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Daphne:
    process: subprocess.Popen
    port: int
    openai_port: int
    secret: str
    log: list[str]
    changed: threading.Condition

    def wait_log(self, text: str, timeout: float = 10.0, start: int = 0) -> str:
        """Block until a log line containing `text` appears (from line `start`); returns it."""
        with self.changed:
            found = self.changed.wait_for(
                lambda: next((line for line in self.log[start:] if text in line), None), timeout
            )
        if not found:
            raise AssertionError(f"daphne never logged {text!r} within {timeout}s; log tail:\n" + self.logs()[-3000:])
        return found

    async def await_log(self, text: str, timeout: float = 10.0, start: int = 0) -> str:
        import asyncio

        return await asyncio.to_thread(self.wait_log, text, timeout, start)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def elks_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/elks/{self.secret}/"

    @property
    def openai_url(self) -> str:
        return f"ws://127.0.0.1:{self.openai_port}/v1/realtime"

    def logs(self) -> str:
        return "\n".join(self.log)


def start_daphne(
    db_name: str,
    *,
    extra_env: dict[str, str] | None = None,
    openai_port: int | None = None,
    port: int | None = None,
    args: tuple[str, ...] = (),
) -> Daphne:
    """Start daphne and return once it listens (it prints the line we wait for); `port` to restart one in its slot."""
    from django.conf import settings

    port = port or free_port()
    openai_port = openai_port or free_port()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="voiceagent.test_settings",
        VOICEAGENT_DB_NAME=db_name,
        OPENAI_API_KEY=TEST_API_KEY,
        OPENAI_REALTIME_URL=f"ws://127.0.0.1:{openai_port}/v1/realtime",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "voiceagent.server", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    ready = threading.Event()
    changed = threading.Condition()

    def pump() -> None:
        for line in process.stdout:
            with changed:
                log.append(line.rstrip())
                changed.notify_all()
            if "Listening on TCP address" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(30) or process.poll() is not None:
        process.kill()
        raise RuntimeError("daphne did not start:\n" + "\n".join(log))
    return Daphne(process, port, openai_port, settings.ELKS_WS_SECRET, log, changed)


def stop_daphne(server: Daphne) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def fake_responses_server():
    """One fake Responses API (text models: the after-call analysis) for the session; tests script it."""
    from calls.testing.fake_responses import FakeResponses

    fake = FakeResponses.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_responses(fake_responses_server, settings):
    """The session's fake Responses API, emptied, with this process' settings pointing at it."""
    fake_responses_server.reset()
    settings.OPENAI_BASE_URL = fake_responses_server.base_url
    settings.OPENAI_API_KEY = TEST_API_KEY
    settings.ANALYSIS_MAX_RETRIES = 2
    settings.ANALYSIS_TIMEOUT_SECONDS = 3.0
    return fake_responses_server


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, fake_responses_server):
    """One daphne for the session; tests start their fake OpenAI on `daphne_server.openai_port`
    (text models, e.g. the after-call analysis, go to the session's fake Responses API)."""
    from django.db import connection

    env = {
        **FAST_TIMEOUTS,
        "OPENAI_BASE_URL": fake_responses_server.base_url,
        "ANALYSIS_MAX_RETRIES": "2",
        "ANALYSIS_TIMEOUT_SECONDS": "3",
    }
    server = start_daphne(connection.settings_dict["NAME"], extra_env=env)
    yield server
    stop_daphne(server)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis of REDIS_URL; tests that need one are skipped, saying why, without it."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set: no real Redis to test against (.ci/run sets it)")
    return url


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _daphne_log_on_failure(request):
    """When a test that used daphne fails, show what daphne logged during it."""
    if "daphne_server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("daphne_server")
    start = len(server.log)
    yield
    wait_until_idle(server)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- daphne log during the test ----")
        print("\n".join(server.log[start:]))


@pytest.fixture(scope="session", autouse=True)
def _close_db_pools(django_db_setup, django_db_blocker):
    """Let the test database be dropped: close this thread's pool, and end the sessions that other
    threads of this process (asyncio.to_thread, sync_to_async) opened and never closed."""
    yield
    from django.db import connections

    for connection in connections.all():
        if connection.vendor == "postgresql":
            with django_db_blocker.unblock(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


def wait_until_idle(server: Daphne, tries: int = 20) -> None:
    """Let the shared server finish recording this test's calls before the next test flushes the database.

    The server says how many calls it holds when sent SIGUSR2 (cheap: no garbage collection, unlike
    SIGUSR1's memory summary, which only the soak asks for); a flush racing a call's last write deadlocks.
    """
    import signal
    import time

    for _ in range(tries):
        mark = len(server.log)
        server.process.send_signal(signal.SIGUSR2)
        line = server.wait_log("call summary", timeout=5, start=mark)
        if "live_calls=0 ending_calls=0 " in line:
            return
        time.sleep(0.1)  # another process's state: nothing to await but its next report


_wait_until_idle = wait_until_idle  # its former name, for tests written before it was public


def pytest_unconfigure(config):
    """SQLite in WAL mode leaves the test database's -wal and -shm files when it is deleted under open connections."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    name = (database.get("TEST") or {}).get("NAME")
    if name and database["ENGINE"].endswith("sqlite3"):
        for suffix in ("-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
