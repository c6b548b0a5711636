"""The live dashboard: pages, its WebSocket, hang-up across processes, and the browser call socket."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from assistants.models import Assistant, PhoneNumber
from calls.consumers import call_group
from calls.models import Call, CallStatus, TranscriptEntry
from dashboard import charts, selectors
from dashboard.broadcast import Publisher
from dashboard.consumers import DashboardConsumer
from tests.bridge_helpers import (
    CALLER,
    NUMBER_A,
    fake_openai,
    get_call,
    make_assistant,
    simulator,
    transcript,
    wait_call_ended,
)
from tests.conftest import FAST_TIMEOUTS, Daphne, start_daphne, stop_daphne, wait_until_idle

# A daphne that browsers can use: its host is allowed, and cookies work over plain http.
BROWSER_ENV = {
    **FAST_TIMEOUTS,
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "STAFF_HANGUP_SECONDS": "3",  # the hard limit of a staff hang-up's goodbye, short so its test is quick
}
STAFF_HANGUP_SECONDS = 3.0


@contextmanager
def browser_facing_daphne() -> Iterator[Daphne]:
    """A daphne serving pages and browser sockets (the shared one allows no host: it serves 46elks only)."""
    from django.db import connection

    server = start_daphne(connection.settings_dict["NAME"], extra_env=BROWSER_ENV)
    try:
        yield server
    finally:
        stop_daphne(server)


def log_on_failure(request, fixture: str) -> Iterator[None]:
    """Around a test using the daphne of `fixture`: print what it logged if the test fails."""
    if fixture not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue(fixture)
    start = len(server.log)
    yield
    wait_until_idle(server)  # its calls are recorded before the next test flushes the database
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"---- {fixture} log during the test ----")
        print("\n".join(server.log[start:]))


@pytest.fixture(scope="module")
def dashboard_daphne(django_db_setup, django_db_blocker) -> Iterator[Daphne]:
    with browser_facing_daphne() as server:
        yield server


@pytest.fixture(autouse=True)
def _dashboard_daphne_log(request) -> Iterator[None]:
    yield from log_on_failure(request, "dashboard_daphne")


def make_user(username: str, *, staff: bool = True, perms: tuple[str, ...] = (), superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "pw")
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    for perm in perms:
        # Rows made here, not looked up: a test before this one may have flushed them for good.
        app_label, codename = perm.split(".")
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=codename.split("_", 1)[1])
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": codename}
        )
        user.user_permissions.add(permission)
    return user


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@asynccontextmanager
async def browser_socket(
    server: Daphne, path: str, cookie: str | None, origin: str | None = "same"
) -> AsyncIterator[ClientConnection]:
    """Open a WebSocket the way a page of the site does: its Origin and the session cookie."""
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = server.http_url if origin == "same" else origin
    async with connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers, open_timeout=5) as ws:
        yield ws


async def next_message(
    ws: ClientConnection, type_: str, predicate: Callable[[dict], bool] | None = None, timeout: float = 10
) -> dict:
    """The next message of a type (and matching `predicate`), skipping others (named if it never comes)."""
    skipped: list[str] = []

    async def find() -> dict:
        while True:
            message = json.loads(await ws.recv())
            if message.get("type", message.get("t")) == type_ and (predicate is None or predicate(message)):
                return message
            skipped.append(json.dumps(message)[:160])

    try:
        return await asyncio.wait_for(find(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {type_!r} message within {timeout}s; skipped: {skipped}") from None


def speech_pcm24(ms: int) -> bytes:
    """Loud, voice-like PCM 24 kHz: enough for the fake OpenAI's VAD to hear someone speak."""
    n = 24 * ms
    samples = (int(9000 * math.sin(2 * math.pi * 300 * i / 24000)) for i in range(n))
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


# ---------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def reception(db) -> Assistant:
    assistant = Assistant.objects.create(name="Reception", instructions="You answer for Pizza Bella.")
    PhoneNumber.objects.create(number="+46701234567", assistant=assistant)
    return assistant


def test_dashboard_needs_a_staff_login(client, db):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(make_user("visitor", staff=False))
    assert client.get("/dashboard/").status_code == 302


def test_staff_without_call_access_are_told_why(client, db):
    client.force_login(make_user("clerk"))
    response = client.get("/dashboard/")
    assert response.status_code == 403
    assert "permission to view calls" in response.content.decode()


def test_prompt_editors_watch_calls_but_cannot_hang_up_or_see_the_secret(client, reception, settings):
    editor = make_user("editor", perms=("calls.view_call", "assistants.change_assistant"))  # as "Prompt editors"
    Call.objects.create(
        call_id="live1", from_number=CALLER, to_number="+46701234567", assistant=reception, started_at=timezone.now()
    )
    client.force_login(editor)
    html = client.get("/dashboard/").content.decode()
    assert "On the phone now" in html and CALLER in html
    assert settings.ELKS_WS_SECRET not in html
    assert "Only an administrator can see this address" in html
    assert 'class="btn btn-danger hangup"' not in html
    assert reverse("dashboard:talk", args=[reception.pk]) in html  # editors may try assistants


def test_superuser_sees_the_46elks_url_of_this_deployment(admin_client, settings):
    settings.ALLOWED_HOSTS = ["testserver", "voice.example.com"]
    html = admin_client.get("/dashboard/").content.decode()
    assert f"ws://testserver/ws/elks/{settings.ELKS_WS_SECRET}/" in html
    assert 'data-copy="#elks-url"' in html
    html = admin_client.get("/dashboard/", secure=True, HTTP_HOST="voice.example.com").content.decode()
    assert f"wss://voice.example.com/ws/elks/{settings.ELKS_WS_SECRET}/" in html


def test_setup_steps_tick_as_the_system_sees_them(admin_client, db):
    def ticks() -> list[bool]:
        response = admin_client.get("/dashboard/")
        return [step.done for step in response.context["steps"]]

    with override_settings(OPENAI_API_KEY=""):
        assert ticks() == [False, False, False, False]
        assistant = Assistant.objects.create(name="Anna", instructions="x")
        PhoneNumber.objects.create(number=NUMBER_A, assistant=assistant)
        assert ticks() == [True, False, False, False]
    with override_settings(OPENAI_API_KEY="sk-real"):
        assert ticks() == [True, True, False, False]
        Call.objects.create(call_id="t", assistant=assistant, is_test=True, started_at=timezone.now())
        assert ticks() == [True, True, False, False], "a browser test call does not prove 46elks reaches us"
        Call.objects.create(call_id="p", assistant=assistant, started_at=timezone.now())
        response = admin_client.get("/dashboard/")
        assert [s.done for s in response.context["steps"]] == [True, True, True, True]
        assert "Setup complete" in response.content.decode()


def test_calls_are_listed_live_first_with_cost_when_known(admin_client, reception):
    now = timezone.now()
    Call.objects.create(
        call_id="old",
        from_number="+46700000011",
        assistant=reception,
        started_at=now - dt.timedelta(minutes=9),
        status=CallStatus.COMPLETED,
        end_reason="caller_hangup",
        duration=dt.timedelta(seconds=75),
        cost=Decimal("0.4321"),
        cost_currency="USD",
    )
    live = Call.objects.create(call_id="live", from_number="+46700000022", assistant=reception, started_at=now)
    response = admin_client.get("/dashboard/")
    html = response.content.decode()
    assert [c.call_id for c in response.context["active_calls"]] == ["live"]
    assert [c.call_id for c in response.context["recent_calls"]] == ["old"]
    assert f'data-call="{live.pk}"' in html and "pulse" in html and "timer" in html
    assert "1:15" in html and "0.43 USD" in html and "caller hung up" in html


def test_a_calls_conversation_in_order(admin_client, reception):
    call = Call.objects.create(call_id="c", assistant=reception, started_at=timezone.now(), status="completed")
    TranscriptEntry.objects.create(call=call, position=1, role="caller", text="En margherita, tack.", offset_ms=4200)
    TranscriptEntry.objects.create(
        call=call, position=0, role="assistant", text="Hej! Pizza Bella.", offset_ms=300, interrupted=True
    )
    html = admin_client.get(reverse("dashboard:call", args=[call.pk])).content.decode()
    assert html.index("Hej! Pizza Bella.") < html.index("En margherita, tack.")
    assert "0:04" in html and "cut off by the caller" in html
    assert admin_client.get(reverse("dashboard:call", args=[call.pk + 100])).status_code == 404


def test_usage_per_day_and_assistant_leaves_test_calls_out(db, reception):
    today = timezone.localdate()
    noon = timezone.make_aware(dt.datetime.combine(today, dt.time(12)))
    other = Assistant.objects.create(name="Support", instructions="x")
    for assistant, minutes, is_test in (
        (reception, 2, False),
        (reception, 3, False),
        (other, 1, False),
        (other, 9, True),
    ):
        Call.objects.create(
            call_id=f"{assistant.pk}-{minutes}",
            assistant=assistant,
            started_at=noon,
            duration=dt.timedelta(minutes=minutes),
            status="completed",
            is_test=is_test,
        )
    Call.objects.create(call_id="refused", started_at=noon - dt.timedelta(days=1), status="rejected")
    Call.objects.create(call_id="too-old", assistant=reception, started_at=noon - dt.timedelta(days=30))

    days, usage = selectors.daily_usage(today=today)
    assert len(days) == 30 and days[-1] == today
    rows = {(u.day, u.assistant): (u.calls, u.seconds) for u in usage}
    assert rows == {
        (today, "Reception"): (2, 300.0),
        (today, "Support"): (1, 60.0),
        (today - dt.timedelta(days=1), selectors.NO_ASSISTANT): (1, 0.0),
    }


def test_charts_draw_a_stacked_bar_per_day(admin_client, reception):
    noon = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(12)))
    for i in range(3):
        Call.objects.create(call_id=f"c{i}", assistant=reception, started_at=noon, duration=dt.timedelta(minutes=2))
    html = admin_client.get("/dashboard/").content.decode()
    assert html.count("<svg") == 2
    assert "Reception: 3 calls</title>" in html and "Reception: 6 min</title>" in html


def test_stacked_bars_scale_to_a_round_maximum():
    days = [dt.date(2026, 11, d) for d in (20, 21, 22)]
    values = {"A": {days[0]: 3, days[2]: 1}, "B": {days[0]: 5}}
    colour_of = charts.colours(values, "none")
    chart = charts.stacked_daily(days, values, colour_of, describe=charts.count, width=300, height=130)
    # 8 calls on day one: the axis goes to 10; B (more calls in all) sits at the bottom of the stack.
    assert [t.label for t in chart.ticks] == ["0", "5", "10"]
    first_day = [b for b in chart.bars if b.title.startswith("Fri 20 Nov")]
    assert [b.title.split(" · ")[1] for b in first_day] == ["B: 5 calls", "A: 3 calls"]
    assert first_day[0].y + first_day[0].height == pytest.approx(chart.baseline)
    assert sum(b.height for b in first_day) == pytest.approx(0.8 * (chart.baseline - 10), abs=0.2)
    assert chart.total == 9 and [name for name, _ in chart.legend] == ["B", "A"]
    assert charts.nice_ceiling(0) == 1 and charts.nice_ceiling(11) == 20 and charts.nice_ceiling(240) == 250


def test_admin_links_to_the_dashboard_and_to_a_test_call(admin_client, reception):
    assert 'href="/dashboard/"' in admin_client.get(reverse("admin:index")).content.decode()
    html = admin_client.get(reverse("admin:assistants_assistant_change", args=[reception.pk])).content.decode()
    assert f'href="/dashboard/talk/{reception.pk}/"' in html and "Talk to this assistant" in html


def test_talk_page_is_for_people_who_edit_assistants(client, reception):
    client.force_login(make_user("viewer", perms=("calls.view_call",)))
    assert client.get(reverse("dashboard:talk", args=[reception.pk])).status_code == 403
    client.force_login(make_user("writer", perms=("assistants.change_assistant",)))
    html = client.get(reverse("dashboard:talk", args=[reception.pk])).content.decode()
    assert "Talk to Reception" in html and f'data-socket="/ws/browser-call/{reception.pk}/"' in html
    assert client.get(reverse("dashboard:talk", args=[reception.pk + 100])).status_code == 404


# ---------------------------------------------------------------------------------------------------
# The broadcast never holds up a call
# ---------------------------------------------------------------------------------------------------


class _Layer:
    def __init__(self, behaviour: str = "ok") -> None:
        self.behaviour = behaviour
        self.sent: list[dict] = []

    async def group_send(self, group: str, message: dict) -> None:
        if self.behaviour == "down":
            raise ConnectionRefusedError("Redis is down")
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        self.sent.append(message)


async def test_broadcast_drops_and_logs_once_while_the_layer_is_down(monkeypatch, caplog):
    layer = _Layer("down")
    monkeypatch.setattr("dashboard.broadcast.get_channel_layer", lambda: layer)
    publisher = Publisher(send_timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="dashboard.broadcast"):
        for i in range(3):
            publisher.publish({"type": "dashboard.call", "call": i})
        await asyncio.wait_for(publisher.idle.wait(), 2)
        layer.behaviour = "hang"
        publisher.publish({"type": "dashboard.call", "call": 3})  # returns at once, however long Redis hangs
        await asyncio.wait_for(publisher.idle.wait(), 2)
        assert publisher.dropped == 4
        layer.behaviour = "ok"
        publisher.publish({"type": "dashboard.call", "call": 4})
        await asyncio.wait_for(publisher.idle.wait(), 2)
    assert [m["call"] for m in layer.sent] == [4]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "dashboard update dropped (ConnectionRefusedError: Redis is down)" in messages[0]
    assert "flow again (4 were dropped meanwhile)" in messages[1]


async def test_broadcast_queue_is_bounded(monkeypatch):
    layer = _Layer("hang")
    monkeypatch.setattr("dashboard.broadcast.get_channel_layer", lambda: layer)
    publisher = Publisher(max_queued=5, send_timeout=30)
    for i in range(20):
        publisher.publish({"type": "dashboard.call", "call": i})
    assert len(publisher._queue) == 5 and publisher.dropped == 15
    publisher._task.cancel()


# ---------------------------------------------------------------------------------------------------
# The dashboard socket, in process
# ---------------------------------------------------------------------------------------------------

transactional = pytest.mark.django_db(transaction=True)


@asynccontextmanager
async def dashboard_communicator(user: User) -> AsyncIterator[WebsocketCommunicator]:
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    try:
        yield communicator
    finally:
        await communicator.disconnect()


@pytest.fixture
def live_call(transactional_db) -> Call:
    assistant = make_assistant("Anna", NUMBER_A)
    return Call.objects.create(call_id="live", from_number=CALLER, assistant=assistant, started_at=timezone.now())


@transactional
async def test_consumer_refuses_staff_without_call_access():
    user = await sync_to_async(make_user)("clerk")
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


@transactional
async def test_consumer_sends_a_snapshot_then_pushed_rows_and_lines(live_call):
    boss = await sync_to_async(make_user)("boss", superuser=True)
    async with dashboard_communicator(boss) as ws:
        snapshot = await ws.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot" and snapshot["active_count"] == 1
        assert f'data-call="{live_call.pk}"' in snapshot["active"] and "Hang up" in snapshot["active"]
        layer = get_channel_layer()
        await layer.group_send("dashboard", {"type": "dashboard.call", "call": live_call.pk, "event": "started"})
        row = await ws.receive_json_from(timeout=5)
        assert (row["type"], row["call"], row["active"], row["event"]) == ("call", live_call.pk, True, "started")
        line = {"call": live_call.pk, "position": 2, "role": "caller", "text": "<b>hi</b>", "offset_ms": 900}
        await layer.group_send("dashboard", {"type": "dashboard.transcript", **line, "interrupted": False})
        assert await ws.receive_json_from(timeout=5) == {"type": "line", **line, "interrupted": False}
        # A refused call is not announced (it never gets observers): the page's periodic refresh shows it.
        await sync_to_async(Call.objects.create)(
            call_id="refused", to_number="+46766861234", status="rejected", started_at=timezone.now()
        )
        await ws.send_json_to({"action": "refresh"})
        refreshed = await ws.receive_json_from(timeout=5)
        assert refreshed["type"] == "snapshot" and refreshed["refresh"] is True
        assert "+46766861234" in refreshed["recent"] and refreshed["active_count"] == 1


@transactional
async def test_consumer_hang_up_goes_to_the_calls_group(live_call):
    boss = await sync_to_async(make_user)("boss", superuser=True)
    layer = get_channel_layer()
    holder = await layer.new_channel()  # stands in for the process holding the call
    await layer.group_add(call_group(live_call.pk), holder)
    async with dashboard_communicator(boss) as ws:
        await ws.receive_json_from(timeout=5)
        await ws.send_json_to({"action": "hangup", "call": live_call.pk})
        answer = await ws.receive_json_from(timeout=5)
        assert answer["type"] == "hangup" and answer["ok"] is True
        message = await asyncio.wait_for(layer.receive(holder), 5)
        assert message == {"type": "call.hangup", "detail": "Ended from the dashboard by boss.", "now": False}


@transactional
async def test_consumer_explains_a_hang_up_it_cannot_do(live_call):
    viewer = await sync_to_async(make_user)("viewer", perms=("calls.view_call",))
    boss = await sync_to_async(make_user)("boss", superuser=True)
    async with dashboard_communicator(viewer) as ws:
        await ws.receive_json_from(timeout=5)
        await ws.send_json_to({"action": "hangup", "call": live_call.pk})
        answer = await ws.receive_json_from(timeout=5)
        assert answer["ok"] is False and "not allowed to end calls" in answer["message"]
    await sync_to_async(Call.objects.filter(pk=live_call.pk).update)(status="completed")
    async with dashboard_communicator(boss) as ws:
        await ws.receive_json_from(timeout=5)
        await ws.send_json_to({"action": "hangup", "call": live_call.pk})
        assert (await ws.receive_json_from(timeout=5))["message"] == "This call has already ended."
        await ws.send_json_to({"action": "hangup", "call": "7"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "error"
        await ws.send_to(text_data="not json")
        assert (await ws.receive_json_from(timeout=5))["type"] == "error"


# ---------------------------------------------------------------------------------------------------
# Through real daphne: refusals, a whole call followed and hung up, the browser call socket
# ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "origin", "path"),
    [
        ("anonymous", "same", "/ws/dashboard/"),
        ("clerk", "same", "/ws/dashboard/"),
        ("boss", None, "/ws/dashboard/"),
        ("boss", "http://evil.example", "/ws/dashboard/"),
        ("anonymous", "same", "/ws/browser-call/{id}/"),
        ("viewer", "same", "/ws/browser-call/{id}/"),
        ("boss", "http://evil.example", "/ws/browser-call/{id}/"),
        ("boss", "same", "/ws/browser-call/999999/"),
    ],
)
async def test_browser_sockets_refuse_before_accepting(dashboard_daphne, who, origin, path):
    assistant = await sync_to_async(make_assistant)("Anna", NUMBER_A)
    users = {
        "clerk": lambda: make_user("clerk"),
        "viewer": lambda: make_user("viewer", perms=("calls.view_call",)),
        "boss": lambda: make_user("boss", superuser=True),
    }
    cookie = None if who == "anonymous" else await sync_to_async(session_cookie)(await sync_to_async(users[who])())
    with pytest.raises(InvalidStatus) as refused:
        async with browser_socket(dashboard_daphne, path.format(id=assistant.pk), cookie, origin):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_dashboard_follows_a_call_and_staff_hang_it_up_politely(dashboard_daphne):
    await sync_to_async(make_assistant)("Anna", NUMBER_A)
    cookie = await sync_to_async(session_cookie)(await sync_to_async(make_user)("boss", superuser=True))
    async with fake_openai(dashboard_daphne, answer_ms=1200) as fake:
        fake.reply_texts[:] = ["Hello, this is Anna.", "Sure, one margherita coming up."]
        fake.caller_transcripts[:] = ["I would like a pizza."]
        async with browser_socket(dashboard_daphne, "/ws/dashboard/", cookie) as dash:
            await next_message(dash, "snapshot")
            sim = simulator(dashboard_daphne, caller_audio=[("silence", 1500), ("speech", 600), ("silence", 20000)])
            task = asyncio.ensure_future(sim.run())
            started = await next_message(dash, "call", lambda m: m["active"])
            pk = started["call"]
            assert CALLER in started["html"] and "Anna" in started["html"] and "Hang up" in started["html"]
            greeting = await next_message(dash, "line", lambda m: m["role"] == "assistant")
            assert (greeting["call"], greeting["text"], greeting["position"]) == (pk, "Hello, this is Anna.", 0)
            caller = await next_message(dash, "line", lambda m: m["role"] == "caller")
            assert caller["text"] == "I would like a pizza."
            session = fake.sessions[0]
            await session.wait_for("response.done", predicate=lambda e: len(session.responses) >= 2)
            await sim.wait_played_ms(1200 + 200)  # the whole reply is queued; the caller is hearing it
            await dash.send(json.dumps({"action": "hangup", "call": pk}))
            answer = await next_message(dash, "hangup")
            assert answer["ok"] is True, answer
            assert "goodbye" in answer["message"]
            ended = await next_message(dash, "call", lambda m: not m["active"])
            assert ended["call"] == pk and "ended by staff" in ended["html"]
            result = await task

    assert result.ended_by == "server" and result.violations == []
    assert result.cut_ms_at_bye == 0, "the caller heard the reply and the goodbye to their end before the line closed"
    # Greeting, reply and the goodbye (1.2 s each), all heard.
    assert result.played_ms >= 3600 - 60, result.played_ms
    asked = [e for _, e in session.received if e["type"] == "response.create"]
    assert "goodbye" in asked[-1]["response"]["instructions"] and "staff" in asked[-1]["response"]["instructions"]
    lines = await transcript(result.callid)
    assert lines[-1][0] == "assistant" and "goodbye" in lines[-1][1], lines
    call = await get_call(result.callid)
    assert (call.status, call.end_reason) == ("completed", "staff_hangup")
    assert call.end_detail == "Ended from the dashboard by boss."


async def _staff_call(dashboard_daphne, fake, dash) -> tuple:
    sim = simulator(dashboard_daphne, caller_audio=[("silence", 20000)])
    task = asyncio.ensure_future(sim.run())
    started = await next_message(dash, "call", lambda m: m["active"])
    session = await fake.next_session()
    return sim, task, started["call"], session


@pytest.mark.django_db(transaction=True)
async def test_staff_hang_up_ends_at_the_hard_limit_when_the_model_never_says_goodbye(dashboard_daphne):
    await sync_to_async(make_assistant)("Anna", NUMBER_A)
    cookie = await sync_to_async(session_cookie)(await sync_to_async(make_user)("boss", superuser=True))
    async with fake_openai(dashboard_daphne, answer_ms=600) as fake:
        async with browser_socket(dashboard_daphne, "/ws/dashboard/", cookie) as dash:
            await next_message(dash, "snapshot")
            sim, task, pk, session = await _staff_call(dashboard_daphne, fake, dash)
            await sim.wait_played_ms(600)
            session.first_delta_delay_ms = 60_000  # the goodbye is asked for, and never comes
            await dash.send(json.dumps({"action": "hangup", "call": pk}))
            assert (await next_message(dash, "hangup"))["ok"] is True
            asked = asyncio.get_running_loop().time()
            result = await asyncio.wait_for(task, STAFF_HANGUP_SECONDS + 5)
            took = asyncio.get_running_loop().time() - asked
    assert STAFF_HANGUP_SECONDS - 0.5 <= took <= STAFF_HANGUP_SECONDS + 2.5, took
    assert result.ended_by == "server" and result.violations == []
    assert [e for _, e in session.received if e["type"] == "response.create"], "the goodbye was asked for"
    call = await wait_call_ended(dashboard_daphne, result.callid)
    assert (call.status, call.end_reason) == ("completed", "staff_hangup")


@pytest.mark.django_db(transaction=True)
async def test_hang_up_now_ends_at_once_even_mid_sentence(dashboard_daphne):
    await sync_to_async(make_assistant)("Anna", NUMBER_A)
    cookie = await sync_to_async(session_cookie)(await sync_to_async(make_user)("boss", superuser=True))
    async with fake_openai(dashboard_daphne, answer_ms=8000) as fake:  # a long greeting, still playing
        async with browser_socket(dashboard_daphne, "/ws/dashboard/", cookie) as dash:
            await next_message(dash, "snapshot")
            sim, task, pk, session = await _staff_call(dashboard_daphne, fake, dash)
            await sim.wait_played_ms(500)
            await dash.send(json.dumps({"action": "hangup", "call": pk, "now": True}))
            answer = await next_message(dash, "hangup")
            assert answer["ok"] is True and "at once" in answer["message"], answer
            asked = asyncio.get_running_loop().time()
            result = await asyncio.wait_for(task, 5)
            took = asyncio.get_running_loop().time() - asked
    assert took < 1.5, took
    assert result.ended_by == "server" and result.violations == []
    assert result.played_ms < 4000, "the line closed mid-greeting, without waiting for it"
    assert not [e for _, e in session.received if e["type"] == "response.create" and "staff" in str(e)]
    call = await wait_call_ended(dashboard_daphne, result.callid)
    assert (call.status, call.end_reason) == ("completed", "staff_hangup")
    assert call.end_detail == "Ended at once from the dashboard by boss."


@pytest.mark.django_db(transaction=True)
async def test_browser_call_socket_is_a_test_call_through_the_call_session(dashboard_daphne):
    # An inactive assistant with no number: people try assistants before they go live.
    assistant = await sync_to_async(Assistant.objects.create)(
        name="Draft", instructions="You are a draft.", welcome_message="Hi, draft here.", is_active=False
    )
    writer = await sync_to_async(make_user)("writer", perms=("assistants.change_assistant",))
    cookie = await sync_to_async(session_cookie)(writer)
    async with fake_openai(dashboard_daphne, answer_ms=600) as fake:
        fake.reply_texts[:] = ["Hi, draft here.", "Yes."]
        async with browser_socket(dashboard_daphne, f"/ws/browser-call/{assistant.pk}/", cookie) as ws:
            hello = [json.loads(await ws.recv()) for _ in range(3)]
            assert hello[:2] == [{"t": "listening", "format": "pcm_24000"}, {"t": "sending", "format": "pcm_24000"}]
            info = hello[2]
            assert info["t"] == "info" and info["callid"].startswith("browser-")
            session = await fake.next_session()
            update = (await session.wait_for("session.update"))["session"]
            assert update["instructions"] == "You are a draft."
            greeting = await next_message(ws, "audio")
            assert base64.b64decode(greeting["data"])
            speech = speech_pcm24(600) + bytes(2 * 24 * 700)
            for i in range(0, len(speech), 960):  # 20 ms frames, as the page sends them
                await ws.send(json.dumps({"t": "audio", "data": base64.b64encode(speech[i : i + 960]).decode()}))
            await session.wait_for("input_audio_buffer.speech_stopped")
            await ws.send(json.dumps({"t": "bye", "reason": "hangup", "message": "Hung up in the browser."}))
            with pytest.raises(Exception):  # noqa: B017 - the server closes the socket once the call is recorded
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
    await dashboard_daphne.await_log(f"call {info['callid']} ended")
    call = await sync_to_async(Call.objects.select_related("assistant").get)(pk=info["call"])
    assert call.is_test and call.assistant == assistant
    assert (call.from_number, call.to_number) == ("browser:writer", "browser-test")
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    assert bytes(session.input_audio)[: len(speech)] == speech, "the page's audio reached OpenAI untouched"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_hang_up_reaches_a_call_served_by_another_process(redis_url, daphne_server, dashboard_daphne):
    """The call runs on one daphne, the dashboard on another: only Redis connects them."""
    await sync_to_async(make_assistant)("Anna", NUMBER_A)
    cookie = await sync_to_async(session_cookie)(await sync_to_async(make_user)("boss", superuser=True))
    assert daphne_server.port != dashboard_daphne.port
    async with fake_openai(daphne_server, answer_ms=3000) as fake:
        async with browser_socket(dashboard_daphne, "/ws/dashboard/", cookie) as dash:
            await next_message(dash, "snapshot")
            sim = simulator(daphne_server)
            task = asyncio.ensure_future(sim.run())
            session = await fake.next_session()
            started = await next_message(dash, "call", lambda m: m["active"])
            await session.wait_for("response.done")  # the greeting is on its way to the caller
            await sim.wait_played_ms(200)
            await dash.send(json.dumps({"action": "hangup", "call": started["call"]}))
            assert (await next_message(dash, "hangup"))["ok"] is True
            ended = await next_message(dash, "call", lambda m: not m["active"], timeout=15)
            result = await task
    assert ended["call"] == started["call"]
    assert result.ended_by == "server" and result.cut_ms_at_bye == 0, "the greeting was heard to its end"
    assert result.played_ms >= 3000 - 60
    call = await get_call(result.callid)
    assert (call.end_reason, call.end_detail) == ("staff_hangup", "Ended from the dashboard by boss.")


@pytest.mark.django_db(transaction=True)
async def test_a_redis_outage_does_not_touch_calls(transactional_db):
    """With Redis unreachable, dashboards go quiet (logged once) and calls go on as before."""
    from django.db import connection

    from tests.conftest import free_port

    await sync_to_async(make_assistant)("Anna", NUMBER_A)
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    server = await asyncio.to_thread(
        start_daphne, connection.settings_dict["NAME"], extra_env={**BROWSER_ENV, "REDIS_URL": dead_redis}
    )
    try:
        async with fake_openai(server, answer_ms=600) as fake:
            fake.caller_transcripts[:] = ["Is anybody there?"]
            sim = simulator(server, caller_audio=[("silence", 900), ("speech", 500), ("silence", 5000)])
            task = asyncio.ensure_future(sim.run())
            session = await fake.next_session()
            await session.wait_for("response.done", predicate=lambda e: len(session.responses) >= 2, timeout=8)
            await sim.wait_played_ms(1200)
            await sim.hang_up()
            result = await task
        await server.await_log(f"call {result.callid} ended")
        call = await get_call(result.callid)
        assert (call.status, call.end_reason) == ("completed", "caller_hangup")
        assert result.violations == [] and result.played_ms == pytest.approx(1200, abs=60)
        dropped = [line for line in server.log if "dashboard update dropped" in line]
        assert len(dropped) == 1, server.logs()[-3000:]
    finally:
        await asyncio.to_thread(stop_daphne, server)
