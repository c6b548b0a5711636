"""The worker process: background jobs on their schedule, a failing job never stops the others, SIGTERM stops it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from calls.jobs import Job, run_due, run_forever
from calls.models import Call
from tests.bridge_helpers import NUMBER_A, make_assistant
from tests.conftest import ROOT


def test_jobs_run_on_their_schedule_and_a_failing_one_spares_the_rest(caplog):
    ran: list[str] = []

    def broken() -> str:
        ran.append("broken")
        raise RuntimeError("boom")

    jobs = [Job("broken", broken, interval=10), Job("fine", lambda: ran.append("fine") or "did it", interval=5)]
    run_due(jobs, now=100)
    run_due(jobs, now=104)  # nothing due yet
    run_due(jobs, now=105)  # only "fine" is due again
    assert ran == ["broken", "fine", "fine"]
    assert "job broken failed; it runs again in 10s" in caplog.text
    assert "job fine: did it" in caplog.text


def test_run_forever_sleeps_until_the_next_job_and_stops_when_asked():
    clock = [0.0]
    slept: list[float] = []
    runs: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    jobs = [Job("a", lambda: runs.append(clock[0]) or "", interval=2.5)]
    run_forever(jobs, stopping=lambda: clock[0] >= 6, clock=lambda: clock[0], sleep=sleep)
    assert runs == [0.0, 2.5, 5.0]
    assert max(slept) <= 1.0  # a stop request is seen within a second


@pytest.mark.django_db(transaction=True)
def test_the_worker_process_deletes_expired_recordings_and_stops_on_sigterm(settings, tmp_path):
    from django.db import connection

    assistant = make_assistant("Keeper", NUMBER_A, record_calls=True, recording_retention_days=1)
    old = Call.objects.create(call_id="old", assistant=assistant, started_at=timezone.now() - dt.timedelta(days=2))
    new = Call.objects.create(call_id="new", assistant=assistant, started_at=timezone.now())
    env = dict(os.environ, VOICEAGENT_DB_NAME=connection.settings_dict["NAME"], MEDIA_ROOT=str(tmp_path))
    settings.MEDIA_ROOT = str(tmp_path)
    for call in (old, new):
        call.recording.save(f"{call.call_id}.wav", ContentFile(b"RIFF"), save=True)
    old_file = tmp_path / old.recording.name
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "voiceagent.test_settings", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    watchdog = threading.Timer(30, worker.kill)  # a worker that never does it fails the test, not the suite
    watchdog.start()
    for line in worker.stdout:
        lines.append(line)
        if "deleted 1 expired recording" in line:
            break
    worker.send_signal(signal.SIGTERM)
    rest, _ = worker.communicate(timeout=10)
    watchdog.cancel()
    assert worker.returncode == 0, "".join(lines) + rest
    assert "worker stopped" in rest
    old.refresh_from_db()
    new.refresh_from_db()
    assert not old.recording and new.recording
    assert not old_file.exists()
