"""Shared fixtures: a real daphne serving the project against the test database, and peers.

Daphne runs in a subprocess with the test settings, pointed at the test database, with OpenAI's
URL pointing at a port where each test starts its own fake Realtime server.
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


def start_daphne(db_name: str, *, extra_env: dict[str, str] | None = None, openai_port: int | None = None) -> Daphne:
    """Start daphne and return once it listens (it prints the line we wait for)."""
    from django.conf import settings

    port = free_port()
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
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "voiceagent.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        for line in process.stdout:
            log.append(line.rstrip())
            if "Listening on TCP address" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(30) or process.poll() is not None:
        process.kill()
        raise RuntimeError("daphne did not start:\n" + "\n".join(log))
    return Daphne(process, port, openai_port, settings.ELKS_WS_SECRET, log)


def stop_daphne(server: Daphne) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """One daphne for the session; tests start their fake OpenAI on `daphne_server.openai_port`."""
    from django.db import connection

    server = start_daphne(connection.settings_dict["NAME"])
    yield server
    stop_daphne(server)
