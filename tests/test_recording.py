"""Recordings: the telco's real-time queue model, the stereo WAV, a simulated call with a barge-in
through real daphne (length and channel alignment within 50 ms), playback access, and retention."""

from __future__ import annotations

import array
import asyncio
import datetime as dt
import io
import wave

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from assistants.audio_formats import PCM_24000, ULAW
from assistants.models import Assistant
from calls.live.audio import encode
from calls.models import Call, CallStatus
from calls.testing.fake_openai import tone
from insights.recording import Track, write_stereo_wav
from tests.bridge_helpers import fake_openai, get_call, make_assistant, simulator, wait_call_ended

ALIGN_S = 0.050
LOUD = 500  # the fake's tone and the simulator's speech peak near 8000


def pcm(ms: float) -> bytes:
    return tone(PCM_24000, ms)


# ---------------------------------------------------------------------------------- the queue model


def test_assistant_audio_plays_after_what_is_queued_and_an_interrupt_drops_the_rest():
    track = Track(PCM_24000, max_seconds=60)
    for at in (1.00, 1.01, 1.02):  # OpenAI delivers 300 ms of speech in 20 ms
        track.add_queued(pcm(100), at)
    assert [(round(s[0], 3), len(b) / 48000) for s, b in track.runs] == [(1.0, 0.3)]
    assert track.play_end == pytest.approx(1.3)
    track.cut(1.15)  # the caller barged in half-way
    assert track.end == pytest.approx(1.15) and track.play_end == pytest.approx(1.15)
    assert len(track.runs[0][1]) == 0.15 * 48000  # whole samples, none of the discarded audio
    track.add_queued(pcm(100), 2.0)  # the next answer starts when it is sent
    assert [round(s[0], 3) for s, _ in track.runs] == [1.0, 2.0]


def test_caller_frames_are_laid_end_to_end_from_the_earliest_arrival():
    track = Track(ULAW, max_seconds=60)
    frame = bytes(160)  # 20 ms of µ-law
    arrivals = [0.520, 0.545, 0.560, 0.581, 0.600]  # a little network jitter
    for at in arrivals:
        track.add_live(frame, at)
    ((start, data),) = track.runs
    assert len(data) == 5 * 160 and start[0] == pytest.approx(0.500)  # the first frame came 20 ms late
    track.add_live(frame, 2.0)  # the stream paused: a new run where it resumed
    assert len(track.runs) == 2 and track.runs[1][0][0] == pytest.approx(1.98)


def test_a_recording_is_bounded_by_the_longest_call():
    track = Track(ULAW, max_seconds=1)
    for k in range(60):
        track.add_live(bytes(160), 0.02 * (k + 1))
    assert track.nbytes == 8000 and track.overflow


def test_stereo_wav_puts_the_caller_left_and_the_assistant_right():
    caller, assistant = Track(ULAW, 60), Track(ULAW, 60)
    speech = encode(array.array("h", [8000, -8000] * 800), ULAW)  # 200 ms
    caller.add_live(speech, 0.7)  # spoken 0.5–0.7 s
    assistant.add_queued(tone(ULAW, 300), 1.0)
    buf = io.BytesIO()
    frames = write_stereo_wav(buf, caller, assistant, seconds=1.5)
    left, right, rate = read_wav(buf.getvalue())
    assert (frames, rate, len(left)) == (12000, 8000, 12000)
    assert loud_spans(left, rate) == [(0.5, 0.7)]
    ((start, end),) = loud_spans(right, rate)
    assert start == pytest.approx(1.0, abs=0.001) and end == pytest.approx(1.3, abs=0.002)


def read_wav(data: bytes) -> tuple[array.array, array.array, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (2, 2)
        rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    return samples[0::2], samples[1::2], rate


def loud_spans(samples: array.array, rate: int, gap_s: float = 0.03) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches above LOUD, bridging quiet gaps shorter than `gap_s`."""
    spans: list[list[float]] = []
    gap = int(gap_s * rate)
    last = -gap - 1
    for i, s in enumerate(samples):
        if abs(s) > LOUD:
            if i - last > gap:
                spans.append([i / rate, i / rate])
            spans[-1][1] = (i + 1) / rate
            last = i
    return [(round(a, 3), round(b, 3)) for a, b in spans]


# ---------------------------------------------------------------------------------- a whole call


async def test_barge_in_call_is_recorded_as_the_caller_heard_it(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Taped", "+46700000001", record_calls=True)
    async with fake_openai(daphne_server, answer_ms=3000) as fake:
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_played_ms(1000)
        session.answer_ms = 600  # the answer after the interruption is short
        sim.speak(600)
        await sim.wait_for("interrupt", timeout=5)
        greeting_heard = sim.played_ms()  # nothing more plays until the answer's `sending`
        await sim.wait_for("sending", count=2, timeout=8)
        await sim.wait_played_ms(greeting_heard + 600)  # the answer, heard to the end
        await asyncio.sleep(0.3)  # a moment of silence before hanging up (part of the scenario, not a wait)
        await sim.hang_up()
        result = await task
    assert result.violations == [] and len(result.interrupts) == 1
    await wait_call_ended(daphne_server, result.callid)
    await daphne_server.await_log(f"call {result.callid} recording saved", timeout=10)
    call = await get_call(result.callid)
    try:
        data = await sync_to_async(lambda: call.recording.open("rb").read())()
    finally:
        await sync_to_async(default_storage.delete)(call.recording.name)
    left, right, rate = read_wav(data)
    assert rate == 24000

    # The recording's clock: anchored where the caller first heard the assistant.
    heard = loud_spans(right, rate)
    offset = result.played[0].start - heard[0][0]
    assert abs(offset - result.hello_sent_at) < ALIGN_S  # it starts with the call
    assert abs(len(left) / rate - (result.ended_at - offset)) < ALIGN_S  # and ends with it

    # Right channel: the greeting cut off where 46elks cut it, then the whole answer.
    assert len(heard) == 2, heard
    cut = result.interrupts[0]
    assert abs(heard[0][1] - (cut.at - offset)) < ALIGN_S
    assert abs((heard[0][1] - heard[0][0]) * 1000 - cut.segment_played_ms) < ALIGN_S * 1000
    answer = next(p for p in result.played if p.start > cut.at)
    assert abs(heard[1][0] - (answer.start - offset)) < ALIGN_S
    assert abs((heard[1][1] - heard[1][0]) - 0.6) < ALIGN_S
    total_heard = sum(b - a for a, b in heard)
    assert abs(total_heard * 1000 - result.played_ms) < ALIGN_S * 1000

    # Left channel: the caller's speech burst where the simulator spoke it. (The simulator sends a
    # frame at the start of its 20 ms; a phone sends it at the end, which is what the recorder assumes.)
    spoke = loud_spans(left, rate)
    assert len(spoke) == 1, spoke
    assert abs(spoke[0][0] - (result.speech_started_at[0] - offset)) < ALIGN_S
    assert abs((spoke[0][1] - spoke[0][0]) - 0.6) < ALIGN_S


async def test_assistants_that_do_not_record_leave_no_recording(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Untaped", "+46700000001")
    async with fake_openai(daphne_server, answer_ms=300):
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        await sim.wait_played_ms(300)
        await sim.hang_up()
        result = await task
    call = await wait_call_ended(daphne_server, result.callid)
    assert not call.recording and "recording" not in daphne_server.logs().split(result.callid, 1)[1]


# ---------------------------------------------------------------------------------- listening, retention


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def recorded_call(name: str, *, days_ago: float = 0, assistant: Assistant | None = None) -> Call:
    call = Call.objects.create(
        call_id=name,
        assistant=assistant,
        started_at=timezone.now() - dt.timedelta(days=days_ago),
        status=CallStatus.COMPLETED,
    )
    buf = io.BytesIO()
    write_stereo_wav(buf, Track(ULAW, 1), Track(ULAW, 1), seconds=0.5)
    call.recording.save(f"call-{call.pk}.wav", ContentFile(buf.getvalue()))
    return call


def test_only_staff_who_may_see_calls_may_listen(client, db, media):
    call = recorded_call("listen")
    url = reverse("insights:recording", args=[call.pk])
    assert url.startswith("/recordings/")  # not under MEDIA_URL: never served as a public file
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    denied = client.get(url)
    assert denied.status_code == 403 and b"permission to listen" in denied.content
    editor = User.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="view_call"))
    client.force_login(editor)
    allowed = client.get(url)  # (the body streams asynchronously: read in the next test)
    assert allowed.status_code == 200 and allowed["Content-Type"] == "audio/wav"


@pytest.mark.django_db(transaction=True)
async def test_recordings_stream_whole_or_in_ranges(media):
    call = await sync_to_async(recorded_call)("stream")
    url = reverse("insights:recording", args=[call.pk])
    client = AsyncClient()
    await client.aforce_login(await User.objects.acreate_superuser("boss", password="pw"))
    whole = await client.get(url)
    body = b"".join([chunk async for chunk in whole.streaming_content])
    assert whole.status_code == 200 and whole["Content-Type"] == "audio/wav" and body[:4] == b"RIFF"
    assert whole["Cache-Control"] == "private, no-store" and int(whole["Content-Length"]) == len(body)
    part = await client.get(url, headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 4-11/{len(body)}"
    assert b"".join([chunk async for chunk in part.streaming_content]) == body[4:12]
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert b"".join([chunk async for chunk in tail.streaming_content]) == body[-10:]
    assert (await client.get(url, headers={"Range": f"bytes={len(body) + 5}-"})).status_code == 416

    await Call.objects.filter(pk=call.pk).aupdate(recording="")
    assert (await client.get(url)).status_code == 404


def test_call_page_plays_the_recording_or_says_why_there_is_none(admin_client, media):
    quiet = Assistant.objects.create(name="Quiet", instructions="x")
    taped = recorded_call(
        "taped", assistant=Assistant.objects.create(name="Taped", instructions="x", record_calls=True)
    )
    html = admin_client.get(reverse("admin:calls_call_change", args=[taped.pk])).content.decode()
    assert f'<audio controls preload="none" src="/recordings/call-{taped.pk}.wav"' in html
    untaped = Call.objects.create(call_id="u", assistant=quiet, started_at=timezone.now())
    html = admin_client.get(reverse("admin:calls_call_change", args=[untaped.pk])).content.decode()
    assert "recording is off for this assistant" in html and "<audio" not in html


def test_expired_recordings_are_deleted_per_assistant(db, media):
    week = Assistant.objects.create(name="Week", instructions="x", recording_retention_days=7)
    month = Assistant.objects.create(name="Month", instructions="x", recording_retention_days=30)
    old_week = recorded_call("old-week", days_ago=10, assistant=week)
    new_week = recorded_call("new-week", days_ago=2, assistant=week)
    old_month = recorded_call("old-month", days_ago=10, assistant=month)
    orphan = recorded_call("orphan", days_ago=40)
    path = media / old_week.recording.name
    assert path.exists()

    out = io.StringIO()
    call_command("delete_expired_recordings", "--dry-run", stdout=out)
    assert "2 recording(s) would be deleted" in out.getvalue() and path.exists()

    out = io.StringIO()
    call_command("delete_expired_recordings", stdout=out)
    assert "deleted 2 expired recording(s)" in out.getvalue()
    assert not path.exists() and not (media / orphan.recording.name).exists()
    for call, kept in ((old_week, False), (new_week, True), (old_month, True), (orphan, False)):
        call.refresh_from_db()
        assert bool(call.recording) is kept, call.call_id


@pytest.mark.django_db(transaction=True)
def test_deleting_a_call_deletes_its_recording(media):
    call = recorded_call("gone")
    path = media / call.recording.name
    assert path.exists()
    call.delete()
    assert not path.exists()


# ---------------------------------------------------------------------------------- shutdown


async def test_sigterm_waits_for_the_recording_being_written(django_db_setup, transactional_db, tmp_path):
    import signal

    from django.db import connection

    from tests.conftest import FAST_TIMEOUTS, start_daphne, stop_daphne

    await sync_to_async(make_assistant)("Taped", "+46700000001", record_calls=True)
    env = {**FAST_TIMEOUTS, "SHUTDOWN_GRACE_SECONDS": "8", "MEDIA_ROOT": str(tmp_path)}
    server = start_daphne(connection.settings_dict["NAME"], extra_env=env)
    try:
        async with fake_openai(server, answer_ms=400):
            sim = simulator(server, caller_audio=[("silence", 20000)])
            task = asyncio.ensure_future(sim.run())
            await sim.wait_played_ms(400)
            server.process.send_signal(signal.SIGTERM)
            result = await asyncio.wait_for(task, 15)
        assert await asyncio.to_thread(server.process.wait, 15) == 0
    finally:
        stop_daphne(server)
    logs = server.logs()
    # Saved before the process exited, not cut off by it.
    assert f"call {result.callid} recording saved" in logs, logs[-2000:]
    call = await get_call(result.callid)
    assert call.recording and (tmp_path / call.recording.name).stat().st_size > 44


async def test_shutdown_waits_for_the_waiters_and_no_longer_than_its_time(settings):
    from calls.hooks import wait_for_shutdown

    done.clear()
    settings.SHUTDOWN_WAITERS = ["tests.test_recording.quick_waiter"]
    assert await wait_for_shutdown(2) is True and done == ["quick"]
    settings.SHUTDOWN_WAITERS = ["tests.test_recording.quick_waiter", "tests.test_recording.stuck_waiter"]
    started = asyncio.get_running_loop().time()
    assert await wait_for_shutdown(0.3) is False
    assert asyncio.get_running_loop().time() - started < 1.0
    settings.SHUTDOWN_WAITERS = []
    assert await wait_for_shutdown(0) is True


done: list[str] = []


async def quick_waiter() -> None:
    await asyncio.sleep(0.05)
    done.append("quick")


async def stuck_waiter() -> None:
    await asyncio.Event().wait()
