"""After-call webhooks: the signed document after a real call through daphne, retries with backoff
in the server process, `deliver_webhooks` for what is left due, and re-delivery from admin."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, CallStatus, TranscriptEntry
from tests.bridge_helpers import CALLER, NUMBER_A, fake_openai, make_assistant, simulator, wait_call_ended
from tests.fakes_http import FakeHttpServer, Reply
from tools import post_call
from tools.models import DeliveryStatus, ToolCall, WebhookDelivery
from tools.services import retry_delay_s, webhook_delivery_create

SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver():
    with FakeHttpServer() as server:
        yield server


def check_signed(request, secret: str = SECRET) -> dict:
    """What a receiver does: check the signature over timestamp + raw body, then parse."""
    timestamp = request.headers["x-voiceagent-timestamp"]
    assert abs(time.time() - int(timestamp)) < 60
    assert post_call.verify(secret, timestamp, request.body, request.headers["x-voiceagent-signature"])
    assert not post_call.verify("another-secret", timestamp, request.body, request.headers["x-voiceagent-signature"])
    assert not post_call.verify(secret, timestamp, request.body + b" ", request.headers["x-voiceagent-signature"])
    assert request.headers["content-type"] == "application/json"
    return request.json()


# ------------------------------------------------------------------ through daphne


@pytest.mark.django_db(transaction=True)
async def test_a_call_is_followed_by_its_signed_document(daphne_server, receiver):
    await sync_to_async(make_assistant)(
        "Hooked",
        NUMBER_A,
        end_call_enabled=False,
        post_call_webhook_url=receiver.url_for("/after-call"),
        post_call_webhook_secret=SECRET,
    )
    async with fake_openai(daphne_server, answer_ms=400) as fake:
        fake.reply_texts[:] = ["Hello, this is Hooked.", "It is ten past two."]
        fake.reply_tool_calls[:] = [None, {"name": "current_datetime", "arguments": {}}]
        sim = simulator(daphne_server, caller_audio=[("silence", 600), ("speech", 500), ("silence", 900)])
        task = asyncio.ensure_future(sim.run())
        await sim.wait_played_ms(800)  # the greeting and the answer after the tool call
        await sim.hang_up()
        result = await task
    [request] = await receiver.await_requests(1)
    document = check_signed(request)

    call = await wait_call_ended(daphne_server, result.callid)
    delivery = await sync_to_async(WebhookDelivery.objects.get)(call=call)
    assert request.headers["x-voiceagent-delivery"] == str(delivery.delivery_id) == document["delivery_id"]
    assert request.headers["x-voiceagent-event"] == "call.ended" == document["event"]
    assert document["call"]["callid"] == result.callid and document["call"]["from"] == CALLER
    assert document["call"]["assistant"]["name"] == "Hooked"
    assert document["call"]["status"] == "completed" and document["call"]["end_reason"] == "caller_hangup"
    roles = [line["role"] for line in document["transcript"]]
    assert roles == ["assistant", "caller", "tool", "assistant"]
    assert document["transcript"][0]["text"] == "Hello, this is Hooked."
    [tool] = document["tool_calls"]
    assert (tool["name"], tool["status"], tool["kind"]) == ("current_datetime", "ok", "builtin")
    assert "date" in json.loads(tool["result"])
    assert isinstance(document["usage"], dict)


@pytest.mark.django_db(transaction=True)
async def test_a_failed_delivery_is_retried_with_backoff(daphne_server, receiver):
    """The receiver fails once; the server process tries again (base delay 0.2 s in the tests)."""
    await sync_to_async(make_assistant)(
        "Retry", NUMBER_A, post_call_webhook_url=receiver.url_for("/flaky"), post_call_webhook_secret=SECRET
    )
    receiver.replies[:] = [Reply(503, "busy"), Reply(200, "thanks")]
    start = len(daphne_server.log)
    async with fake_openai(daphne_server, answer_ms=300):
        sim = simulator(daphne_server)
        task = asyncio.ensure_future(sim.run())
        await sim.wait_played_ms(300)
        await sim.hang_up()
        result = await task
    first, second = await receiver.await_requests(2)
    assert second.at - first.at >= 0.2
    assert check_signed(first) == check_signed(second)  # the same document, each attempt signed anew
    assert first.headers["x-voiceagent-delivery"] == second.headers["x-voiceagent-delivery"]
    await daphne_server.await_log("delivered (attempt 2, HTTP 200)", start=start)
    delivery = await sync_to_async(WebhookDelivery.objects.get)(call__call_id=result.callid)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None


# ------------------------------------------------------------------ in process


@pytest.fixture
def finished_call(db):
    assistant = make_assistant("Hooked", NUMBER_A, post_call_webhook_secret=SECRET)
    now = timezone.now()
    call = Call.objects.create(
        call_id="c-webhook",
        from_number=CALLER,
        to_number=NUMBER_A,
        assistant=assistant,
        started_at=now - timedelta(seconds=30),
        ended_at=now,
        duration=timedelta(seconds=30),
        status=CallStatus.COMPLETED,
        end_reason="caller_hangup",
        usage={"responses": 2, "input_tokens": 120},
    )
    TranscriptEntry.objects.create(call=call, position=0, role="assistant", text="Hej!")
    ToolCall.objects.create(call=call, name="check_stock", kind="webhook", arguments="{}", status="ok", result="{}")
    return call


def queue_delivery(call, url: str) -> WebhookDelivery:
    call.assistant.post_call_webhook_url = url
    call.assistant.save()
    return WebhookDelivery.objects.get(pk=webhook_delivery_create(call_pk=call.pk))


@override_settings(POST_CALL_WEBHOOK_RETRY_BASE_SECONDS=30)
def test_deliver_webhooks_retries_only_what_is_due(finished_call, receiver, capsys):
    delivery = queue_delivery(finished_call, receiver.url_for("/hook"))
    receiver.replies[:] = [Reply(500, "oops"), Reply(204)]

    call_command("deliver_webhooks")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500: oops" in delivery.last_error
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 30 <= wait < 32  # counted from the end of the attempt

    call_command("deliver_webhooks")  # nothing is due yet
    assert len(receiver.requests) == 1

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    call_command("deliver_webhooks")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 204)
    document = check_signed(receiver.requests[1])
    assert document["usage"] == {"responses": 2, "input_tokens": 120}
    assert [t["name"] for t in document["tool_calls"]] == ["check_stock"]
    assert document["transcript"] == [
        {"position": 0, "role": "assistant", "text": "Hej!", "interrupted": False, "offset_ms": None}
    ]
    assert "delivered 1, failed 0" in capsys.readouterr().out


@override_settings(POST_CALL_WEBHOOK_RETRY_BASE_SECONDS=30)
def test_backoff_grows_fourfold_and_gives_up(finished_call, receiver):
    assert [retry_delay_s(n) for n in (1, 2, 3, 4)] == [30, 120, 480, 1920]
    assert retry_delay_s(10) == 6 * 3600
    delivery = queue_delivery(finished_call, receiver.url_for("/down"))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(max_attempts=2)
    receiver.default = Reply(502, "bad gateway")
    assert post_call.attempt(delivery.pk).retry_in_s == 30
    assert post_call.attempt(delivery.pk) is None  # not due: a second process would skip it too
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    last = post_call.attempt(delivery.pk)
    assert (last.status, last.attempts, last.retry_in_s) == ("failed", 2, None)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None


def test_an_unreachable_receiver_is_recorded(finished_call):
    delivery = queue_delivery(finished_call, "http://127.0.0.1:9/nothing-listens-here")
    result = post_call.attempt(delivery.pk)
    assert result.status == "pending" and result.http_status is None
    assert "Could not reach http://127.0.0.1:9/nothing-listens-here" in result.error


def test_a_delivery_being_sent_is_not_taken_twice(finished_call, receiver):
    delivery = queue_delivery(finished_call, receiver.url_for("/hook"))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() + timedelta(seconds=30))
    assert post_call.attempt(delivery.pk) is None and receiver.requests == []


def test_without_a_secret_the_document_is_sent_unsigned(finished_call, receiver):
    finished_call.assistant.post_call_webhook_secret = ""
    delivery = queue_delivery(finished_call, receiver.url_for("/hook"))
    assert post_call.attempt(delivery.pk).status == "delivered"
    [request] = receiver.requests
    assert "x-voiceagent-signature" not in request.headers and "x-voiceagent-timestamp" in request.headers


def test_no_delivery_without_a_webhook_url(finished_call):
    assert webhook_delivery_create(call_pk=finished_call.pk) is None


def test_signature_rejects_stale_timestamps():
    body = b'{"event":"call.ended"}'
    old = str(int(time.time()) - 3600)
    assert not post_call.verify(SECRET, old, body, post_call.signature(SECRET, old, body))
    assert not post_call.verify(SECRET, "not-a-number", body, "sha256=00")


def test_admin_lists_deliveries_and_delivers_again(admin_client, finished_call, receiver):
    delivery = queue_delivery(finished_call, receiver.url_for("/hook"))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, attempts=8, max_attempts=8, next_attempt_at=None, last_error="HTTP 500"
    )
    changelist = reverse("admin:tools_webhookdelivery_changelist")
    page = admin_client.get(changelist)
    assert page.status_code == 200 and receiver.url_for("/hook") in page.content.decode()
    assert admin_client.get(reverse("admin:tools_webhookdelivery_change", args=[delivery.pk])).status_code == 200

    response = admin_client.post(
        changelist, {"action": "deliver_again", "_selected_action": [delivery.pk]}, follow=True
    )
    assert f"Delivery {delivery.pk} delivered (HTTP 200)." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 9)
    check_signed(receiver.requests[0])

    # A call's page shows its tool calls.
    page = admin_client.get(reverse("admin:calls_call_change", args=[finished_call.pk])).content.decode()
    assert "Tool calls" in page and "check_stock" in page
