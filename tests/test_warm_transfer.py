"""The warm transfer: the assistant's hand-off note is kept with the transfer and sent by SMS
(46elks `POST /a1/sms`, the fake REST API) just before 46elks is told to connect the caller."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from django.utils import timezone

from calls.models import Call
from tests.bridge_helpers import CALLER, NUMBER_A, fake_openai, make_assistant, simulator, wait_call_ended
from tests.fakes_http import FakeElksApi, Reply
from tools.models import Transfer
from tools.services import transfer_request

HUMAN = "+46701111111"
CALLER_TURN = [("silence", 300), ("speech", 500), ("silence", 900)]
NOTE = "Anna Svensson wants to move her Tuesday appointment; she has her booking number ready."


def next_from_46elks(client, secret: str, callid: str):
    return client.post(f"/elks/next/{secret}/", {"callid": callid, "from": CALLER, "to": NUMBER_A, "result": "success"})


@pytest.mark.django_db(transaction=True)
async def test_the_hand_off_note_is_kept_and_sent_by_sms_before_the_connect(daphne_server, client, settings):
    await sync_to_async(make_assistant)("Desk", NUMBER_A, welcome_message="", transfer_number=HUMAN)
    async with fake_openai(daphne_server, answer_ms=400) as fake:
        fake.reply_tool_calls[:] = [
            {"name": "transfer_call", "arguments": {"reason": "reschedule", "summary": NOTE}, "call_id": "t1"}
        ]
        fake.reply_texts[:] = ["I am connecting you to a colleague now."]
        sim = simulator(daphne_server, caller_audio=CALLER_TURN)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        update = (await session.wait_for("session.update"))["session"]
        result = await task
    await wait_call_ended(daphne_server, result.callid)
    [transfer_tool] = [t for t in update["tools"] if t["name"] == "transfer_call"]
    assert "summary" in transfer_tool["parameters"]["properties"]
    transfer = await sync_to_async(Transfer.objects.get)()
    assert (transfer.summary, transfer.reason) == (NOTE, "reschedule")

    def connect():
        with (
            FakeElksApi() as api,
            override_settings(
                ELKS_API_URL=api.api_url,
                ELKS_API_USERNAME=api.username,
                ELKS_API_PASSWORD=api.password,
                TRANSFER_SMS=True,
                TRANSFER_SMS_FROM="Reception",
                ELKS_ALLOWED_IPS=[],
            ),
        ):
            answer = next_from_46elks(client, settings.ELKS_WS_SECRET, result.callid)
            return answer, api.sms

    answer, sms = await sync_to_async(connect)()
    assert answer.json() == {"connect": HUMAN}
    assert sms == [{"from": "Reception", "to": HUMAN, "message": f"Call from {CALLER}: {NOTE}"}]
    transfer = await sync_to_async(Transfer.objects.get)()
    assert transfer.sms_status == "Sent" and transfer.connected_at is not None


def test_a_failing_sms_never_stops_the_transfer(db, client, settings):

    call = Call.objects.create(call_id="warm-1", from_number=CALLER, to_number=NUMBER_A, started_at=timezone.now())
    transfer_request(call_pk=call.pk, number=HUMAN, reason="", summary=NOTE)
    with FakeElksApi() as api:
        api.replies.append(Reply(402, "Not enough credits"))
        with override_settings(
            ELKS_API_URL=api.api_url,
            ELKS_API_USERNAME=api.username,
            ELKS_API_PASSWORD=api.password,
            TRANSFER_SMS=True,
            TRANSFER_SMS_FROM="",
            ELKS_CALLER_ID="",
            ELKS_ALLOWED_IPS=[],
        ):
            answer = next_from_46elks(client, settings.ELKS_WS_SECRET, "warm-1")
    assert answer.json() == {"connect": HUMAN}
    status = Transfer.objects.get().sms_status
    assert status.startswith("Failed:") and "credit" in status


def test_the_dashboard_shows_the_note_to_the_person_taking_over(db, admin_client):
    call = Call.objects.create(call_id="warm-2", from_number=CALLER, to_number=NUMBER_A, started_at=timezone.now())
    transfer_request(call_pk=call.pk, number=HUMAN, reason="", summary="Wants <b>help</b> with a refund.")
    page = admin_client.get(f"/dashboard/calls/{call.pk}/").content.decode()
    assert f"Hand-off note for {HUMAN}" in page
    assert "Wants &lt;b&gt;help&lt;/b&gt; with a refund." in page
