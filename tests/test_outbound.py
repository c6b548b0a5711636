"""Outbound calls: placed through a fake 46elks REST API on a real socket (from the service, the
JSON API, the management command and admin), with clear errors, and paired with the WebSocket
leg 46elks opens when the callee answers (through real daphne)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from assistants.models import Assistant, PhoneNumber
from tests.bridge_helpers import fake_openai, get_call, simulator, wait_call_ended
from tests.fakes_http import FakeElksApi, Reply
from tools.models import ApiToken, OutboundCall
from tools.outbound import OutboundCallError, place_outbound_call
from tools.services import api_token_create

WEBSOCKET_NUMBER = "+46766860000"
OUR_NUMBER = "+46766861111"  # the assistant's own 46elks number: the callee sees it
CALLEE = "+46701234567"


@pytest.fixture
def elks():
    with FakeElksApi() as api:
        with override_settings(
            ELKS_API_URL=api.api_url,
            ELKS_API_USERNAME=api.username,
            ELKS_API_PASSWORD=api.password,
            ELKS_WEBSOCKET_NUMBER=WEBSOCKET_NUMBER,
            ELKS_CALLER_ID="",
            PUBLIC_BASE_URL="https://voice.example.com",
        ):
            yield api


def make_caller(name: str = "Sales") -> Assistant:
    assistant = Assistant.objects.create(name=name, instructions="You call customers.", welcome_message="Hi!")
    PhoneNumber.objects.create(number=OUR_NUMBER, assistant=assistant)
    return assistant


@pytest.fixture
def caller(db):
    return make_caller()


# ------------------------------------------------------------------ placing calls


def test_a_call_is_placed_through_46elks(elks, caller, settings):
    outbound = place_outbound_call(assistant=caller, to="+46 70-123 45 67", source="command")
    [form] = elks.calls
    assert form["from"] == OUR_NUMBER and form["to"] == CALLEE
    assert json.loads(form["voice_start"]) == {
        "connect": WEBSOCKET_NUMBER,
        "next": f"https://voice.example.com/elks/next/{settings.ELKS_WS_SECRET}/",
    }
    assert form["whenhangup"] == f"https://voice.example.com/elks/hangup/{settings.ELKS_WS_SECRET}/"
    assert elks.requests[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert (outbound.status, outbound.to_number, outbound.from_number) == ("calling", CALLEE, OUR_NUMBER)
    assert outbound.elks_call_id.startswith("c") and outbound.elks_state == "ongoing"


def test_the_caller_id_setting_wins(elks, caller, settings):
    settings.ELKS_CALLER_ID = "+46 766 86 22 22"
    settings.PUBLIC_BASE_URL = ""  # no callbacks without knowing our address
    place_outbound_call(assistant=caller, to=CALLEE, source="command")
    [form] = elks.calls
    assert form["from"] == "+46766862222" and "whenhangup" not in form
    assert json.loads(form["voice_start"]) == {"connect": WEBSOCKET_NUMBER}


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply(401, "Unauthorized"), "refused the API credentials (HTTP 401). Check ELKS_API_USERNAME"),
        (Reply(403, "Number not allowed"), "refused to place the call (HTTP 403): Number not allowed."),
        (Reply(402, "Insufficient credits"), "lack of credit (HTTP 402)"),
        (Reply(400, "Invalid to"), "rejected the request (HTTP 400): Invalid to."),
        (Reply(503, "Service Unavailable"), "server problem (HTTP 503): Service Unavailable. Try again"),
        (Reply(200, {"id": "c1", "state": "failed"}), "could not place the call (state 'failed')"),
        (Reply(200, "<html>"), "not JSON"),
    ],
)
def test_46elks_refusals_are_explained_and_recorded(elks, caller, reply, says):
    elks.fail = reply
    with pytest.raises(OutboundCallError) as exc:
        place_outbound_call(assistant=caller, to=CALLEE, source="api")
    assert says in exc.value.message
    assert exc.value.http_status == 502
    outbound = OutboundCall.objects.get()
    assert outbound.status == "failed" and says in outbound.error and outbound.ended_at is not None


def test_wrong_credentials_are_explained(elks, caller, settings):
    settings.ELKS_API_PASSWORD = "wrong"
    with pytest.raises(OutboundCallError, match="HTTP 401"):
        place_outbound_call(assistant=caller, to=CALLEE, source="api")


def test_46elks_unreachable_is_explained(elks, caller, settings):
    settings.ELKS_API_URL = "http://127.0.0.1:9/a1"
    with pytest.raises(OutboundCallError) as exc:
        place_outbound_call(assistant=caller, to=CALLEE, source="api")
    assert "Could not reach 46elks at http://127.0.0.1:9/a1/calls" in exc.value.message
    assert OutboundCall.objects.get().status == "failed"


def test_missing_setup_is_explained_before_anything_is_recorded(elks, caller, settings):
    settings.ELKS_API_USERNAME = ""
    settings.ELKS_WEBSOCKET_NUMBER = ""
    with pytest.raises(OutboundCallError) as exc:
        place_outbound_call(assistant=caller, to=CALLEE, source="api")
    assert "ELKS_API_USERNAME" in exc.value.message and "ELKS_WEBSOCKET_NUMBER" in exc.value.message
    assert exc.value.http_status == 503 and exc.value.outbound is None
    with pytest.raises(OutboundCallError, match="looks like a national number"):
        place_outbound_call(assistant=caller, to="0701234567", source="api")
    assert not OutboundCall.objects.exists() and elks.requests == []


def test_whenhangup_closes_a_call_never_answered(elks, caller, client, settings):
    outbound = place_outbound_call(assistant=caller, to=CALLEE, source="api")
    url = reverse("tools:elks_hangup", args=[settings.ELKS_WS_SECRET])
    assert client.post(url, {"id": outbound.elks_call_id, "state": "failed"}).status_code == 204
    outbound.refresh_from_db()
    assert outbound.status == "ended" and outbound.elks_state == "failed" and "failed" in outbound.error
    assert client.post(reverse("tools:elks_hangup", args=["wrong"]), {"id": "x"}).status_code == 404


# ------------------------------------------------------------------ the JSON API


@pytest.fixture
def token(db) -> str:
    return api_token_create(name="CRM")[1]


def post_call(client, token: str | None, body) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/api/calls/", data, content_type="application/json", **headers)


def test_api_places_a_call_with_a_token(elks, caller, client, token):
    response = post_call(client, token, {"assistant": "Sales", "to": CALLEE})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "calling" and body["to"] == CALLEE and body["assistant"]["name"] == "Sales"
    assert body["elks_call_id"] == OutboundCall.objects.get().elks_call_id and body["call"] is None
    assert OutboundCall.objects.get().source == "api"
    detail = client.get(f"/api/calls/{body['id']}/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert detail.status_code == 200 and detail.json()["id"] == body["id"]
    by_id = post_call(client, token, {"assistant": caller.pk, "to": CALLEE})
    assert by_id.status_code == 201 and len(elks.calls) == 2
    assert ApiToken.objects.get().last_used_at is not None


def test_api_refuses_without_a_valid_token(elks, caller, client, token):
    for sent in (None, "va_wrong", token + "x"):
        response = post_call(client, sent, {"assistant": "Sales", "to": CALLEE})
        assert response.status_code == 401 and "Authorization: Bearer" in response.json()["error"]
    ApiToken.objects.update(is_active=False)
    assert post_call(client, token, {"assistant": "Sales", "to": CALLEE}).status_code == 401
    assert client.get("/api/calls/1/").status_code == 401
    assert elks.requests == [] and not ApiToken.objects.filter(key_hash__contains=token).exists()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("not json", 400, "must be JSON"),
        ({"to": CALLEE}, 400, "are required"),
        ({"assistant": "Nobody", "to": CALLEE}, 404, "No assistant 'Nobody'"),
        ({"assistant": "Sales", "to": "12"}, 400, "not a phone number"),
    ],
)
def test_api_explains_bad_requests(elks, caller, client, token, body, status, says):
    response = post_call(client, token, body)
    assert response.status_code == status and says in response.json()["error"]


def test_api_reports_46elks_refusing(elks, caller, client, token):
    elks.fail = Reply(403, "Number not allowed")
    response = post_call(client, token, {"assistant": "Sales", "to": CALLEE})
    assert response.status_code == 502
    body = response.json()
    assert "Number not allowed" in body["error"] and body["elks_status"] == 403
    assert body["outbound_call"]["status"] == "failed"


# ------------------------------------------------------------------ command and admin


def test_call_number_command(elks, caller, capsys):
    call_command("call_number", assistant="Sales", to=CALLEE)
    assert "46elks is calling +46701234567 from +46766861111" in capsys.readouterr().out
    elks.fail = Reply(403, "Number not allowed")
    with pytest.raises(CommandError, match=r"HTTP 403\): Number not allowed.*recorded as outbound call"):
        call_command("call_number", assistant=str(caller.pk), to=CALLEE)
    with pytest.raises(CommandError, match=r"No assistant 'Nobody'\. Assistants: Sales"):
        call_command("call_number", assistant="Nobody", to=CALLEE)


def test_admin_calls_a_number_with_an_assistant(elks, caller, admin_client):
    changelist = reverse("admin:assistants_assistant_changelist")
    response = admin_client.post(changelist, {"action": "call_number", "_selected_action": [caller.pk]})
    add_url = reverse("admin:tools_outboundcall_add")
    assert response.status_code == 302 and response["Location"] == f"{add_url}?assistant={caller.pk}"
    form = admin_client.get(response["Location"]).content.decode()
    assert f'<option value="{caller.pk}" selected>Sales</option>' in form

    response = admin_client.post(add_url, {"assistant": caller.pk, "to_number": "+46 70 123 45 67"}, follow=True)
    page = response.content.decode()
    assert "46elks is calling +46701234567 from +46766861111" in page
    assert OutboundCall.objects.get().created_by.username == "admin"

    elks.fail = Reply(403, "Number not allowed")
    page = admin_client.post(add_url, {"assistant": caller.pk, "to_number": CALLEE}, follow=True).content.decode()
    assert "The call was not placed." in page and "Number not allowed" in page
    assert OutboundCall.objects.filter(status="failed").count() == 1


def test_admin_explains_missing_setup(elks, caller, admin_client, settings):
    settings.ELKS_WEBSOCKET_NUMBER = ""
    add_url = reverse("admin:tools_outboundcall_add")
    page = admin_client.post(add_url, {"assistant": caller.pk, "to_number": CALLEE}).content.decode()
    assert "Outbound calls are not set up yet." in page and "ELKS_WEBSOCKET_NUMBER" in page
    assert not OutboundCall.objects.exists()


def test_admin_creates_an_api_token_shown_once(admin_client):
    response = admin_client.post(reverse("admin:tools_apitoken_add"), {"name": "CRM"}, follow=True)
    page = response.content.decode()
    token = ApiToken.objects.get()
    raw = page.split("cannot be shown again: ")[1].split("<")[0].strip()
    assert raw.startswith(token.prefix) and token.key_hash != raw and raw not in token.key_hash


# ------------------------------------------------------------------ pairing with the WebSocket leg


async def ring(assistant_name: str) -> OutboundCall:
    def place():
        with (
            FakeElksApi() as api,
            override_settings(
                ELKS_API_URL=api.api_url,
                ELKS_API_USERNAME=api.username,
                ELKS_API_PASSWORD=api.password,
                ELKS_WEBSOCKET_NUMBER=WEBSOCKET_NUMBER,
            ),
        ):
            return place_outbound_call(assistant=Assistant.objects.get(name=assistant_name), to=CALLEE, source="api")

    return await sync_to_async(place)()


async def answered_call(server, *, callid: str, from_: str, to: str):
    async with fake_openai(server, answer_ms=300) as fake:
        sim = simulator(server, to=to, from_=from_, callid=callid)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await sim.wait_played_ms(300)
        await sim.hang_up()
        await task
    update = (await session.wait_for("session.update"))["session"]
    return await wait_call_ended(server, callid), update


@pytest.mark.django_db(transaction=True)
async def test_the_answered_leg_is_paired_by_46elks_call_id(daphne_server):
    await sync_to_async(make_caller)()
    outbound = await ring("Sales")
    call, update = await answered_call(daphne_server, callid=outbound.elks_call_id, from_=OUR_NUMBER, to=CALLEE)
    assert (call.direction, call.assistant.name, call.status) == ("outbound", "Sales", "completed")
    assert update["instructions"] == "You call customers."
    await sync_to_async(outbound.refresh_from_db)()
    assert (outbound.status, outbound.call_id, outbound.paired_by) == ("answered", call.pk, "callid")


@pytest.mark.django_db(transaction=True)
async def test_the_answered_leg_is_paired_by_numbers(daphne_server):
    """46elks may give the WebSocket leg its own id: the callee's and our number pair it."""
    await sync_to_async(make_caller)()
    outbound = await ring("Sales")
    call, _ = await answered_call(daphne_server, callid="ws-leg-1", from_=OUR_NUMBER, to=CALLEE)
    assert (call.direction, call.assistant.name) == ("outbound", "Sales")
    await sync_to_async(outbound.refresh_from_db)()
    assert (outbound.status, outbound.paired_by) == ("answered", "numbers")

    # Paired once: the next leg with the same numbers is an ordinary (refused) inbound call.
    async with fake_openai(daphne_server):
        result = await simulator(daphne_server, to=CALLEE, from_=OUR_NUMBER, callid="ws-leg-2").run()
    again = await get_call(result.callid)
    assert (again.direction, again.status) == ("inbound", "rejected")


@pytest.mark.django_db(transaction=True)
async def test_a_leg_after_the_pairing_window_is_not_paired(daphne_server):
    await sync_to_async(make_caller)()
    outbound = await ring("Sales")
    old = timezone.now() - timedelta(hours=1)
    await sync_to_async(OutboundCall.objects.filter(pk=outbound.pk).update)(created_at=old)
    async with fake_openai(daphne_server):
        result = await simulator(daphne_server, to=CALLEE, from_=OUR_NUMBER, callid=outbound.elks_call_id).run()
    call = await get_call(result.callid)
    assert (call.direction, call.status, call.end_reason) == ("inbound", "rejected", "unknown_number")
    assert (await sync_to_async(OutboundCall.objects.get)(pk=outbound.pk)).status == "calling"
