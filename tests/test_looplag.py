"""The event-loop lag probe (voiceagent.looplag) and the fast lane's start-up self-check (voiceagent.fastlane)."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from voiceagent import fastlane
from voiceagent.looplag import LoopLagProbe


async def test_a_blocked_loop_is_measured_and_logged_once_per_window(caplog):
    lags: list[float] = []
    probe = LoopLagProbe(lags.append, interval=0.02, late_s=0.1, log_every_s=30)
    probe.start()
    try:
        for _ in range(3):
            await asyncio.sleep(0.05)
            time.sleep(0.15)  # noqa: ASYNC251 -- the point: the whole loop blocked, as blocking work does
        await asyncio.sleep(0.05)
    finally:
        probe.stop()
    late = [lag for lag in lags if lag > 0.1]
    lines = [r for r in caplog.records if r.name == "voiceagent.looplag"]
    assert len(late) == 3 and all(lag < 0.3 for lag in late)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and "event loop late by" in lines[0].getMessage()
    assert probe.late_since_line == 2  # the next line will say how many it stood for
    assert min(lags) < 0.01


def test_the_fast_lane_self_check_passes_on_the_pinned_libraries():
    assert fastlane.self_check() == []


def test_the_fast_lane_self_check_names_a_changed_version_or_internal(monkeypatch):
    real_version = fastlane.importlib.metadata.version
    monkeypatch.setattr(
        fastlane.importlib.metadata, "version", lambda d: "27.1.0" if d == "autobahn" else real_version(d)
    )
    monkeypatch.setattr(fastlane, "Server", type("Server", (), {"run": lambda self: None}))  # a reworked daphne
    problems = fastlane.self_check()
    assert problems[0] == "autobahn 27.1.0 is installed; the fast lane was written for 26.10.x"
    assert (
        problems[1].endswith("Server no longer uses `ws_factory`")
        and problems[2] == "Server has no `create_application`"
    )
    assert len(problems) == 3


def test_a_server_on_other_versions_warns_once_and_runs_without_the_fast_lane(tmp_path, django_db_setup):
    """A real server, on a Python path where autobahn reports another release."""
    from django.db import connection

    from tests.conftest import start_daphne, stop_daphne

    info = tmp_path / "autobahn-99.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: autobahn\nVersion: 99.0\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    server = start_daphne(connection.settings_dict["NAME"], extra_env={"PYTHONPATH": path})
    try:
        assert server.process.poll() is None  # listening, without the lane
    finally:
        stop_daphne(server)
    warnings = [line for line in server.log if "fast lane switched off" in line]
    assert len(warnings) == 1 and "autobahn 99.0 is installed" in warnings[0]
    assert not any("call sockets: fast lane" in line for line in server.log)
