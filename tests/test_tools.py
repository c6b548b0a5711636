"""Tools during a call, through real daphne: webhook tools (ok, slow, failing, bad arguments),
hanging up after a goodbye, transferring to a person, the date tool, and the pizza demo."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from assistants.models import PhoneNumber
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
from tests.fakes_http import FakeHttpServer, Reply
from tools.models import PizzaOrder, ToolCall, WebhookTool

pytestmark = pytest.mark.django_db(transaction=True)

STOCK_SCHEMA = {
    "type": "object",
    "properties": {"size": {"type": "string", "enum": ["small", "large"]}, "count": {"type": "integer"}},
    "required": ["size"],
}
# The caller says something; the model answers it with a function call.
CALLER_TURN = [("silence", 300), ("speech", 500), ("silence", 900)]
HUMAN = "+46701111111"


@pytest.fixture
def receiver():
    with FakeHttpServer() as server:
        yield server


def make_tool_assistant(url: str, **fields):
    defaults = dict(welcome_message="", end_call_enabled=False, datetime_tool_enabled=False)
    defaults.update(fields)
    assistant = make_assistant("Tooly", NUMBER_A, **defaults)
    WebhookTool.objects.create(
        assistant=assistant,
        name="check_stock",
        description="Check whether a pizza base is in stock.",
        parameters=STOCK_SCHEMA,
        url=url,
        secret_header_name="X-Api-Key",
        secret_header_value="s3cret-value",
        timeout_seconds=2.0,
    )
    return assistant


@sync_to_async
def tool_calls(callid: str) -> list[ToolCall]:
    return list(ToolCall.objects.filter(call__call_id=callid).order_by("pk"))


async def call_with_tool(server, tool_call: dict, *, reply: str = "Alright.", answer_ms: float = 400):
    """One call: the caller speaks, the model calls `tool_call`, then says `reply`, which is heard."""
    async with fake_openai(server, answer_ms=answer_ms) as fake:
        fake.reply_tool_calls[:] = [tool_call]
        fake.reply_texts[:] = [reply]
        sim = simulator(server, caller_audio=CALLER_TURN)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        created = await session.wait_for("conversation.item.create", timeout=15)
        await session.wait_for("response.create", timeout=10)  # the conversation goes on after the output
        await sim.wait_played_ms(answer_ms, timeout=10)
        if not sim.done.done():
            await sim.hang_up()
        result = await task
    call = await wait_call_ended(server, result.callid)
    return session, created["item"], result, call


async def test_webhook_tool_answer_reaches_the_model(daphne_server, receiver):
    await sync_to_async(make_tool_assistant)(receiver.url_for("/stock"))
    receiver.default = Reply(200, {"in_stock": True, "left": 7})
    session, output, result, call = await call_with_tool(
        daphne_server, {"name": "check_stock", "arguments": {"size": "large", "count": 2}, "call_id": "call_1"}
    )

    update = (await session.wait_for("session.update"))["session"]
    [definition] = update["tools"]
    assert definition == {
        "type": "function",
        "name": "check_stock",
        "description": "Check whether a pizza base is in stock.",
        "parameters": STOCK_SCHEMA,
    }
    assert output["type"] == "function_call_output" and output["call_id"] == "call_1"
    assert json.loads(output["output"]) == {"in_stock": True, "left": 7}

    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/stock")
    assert request.headers["x-api-key"] == "s3cret-value"
    body = request.json()
    assert body["tool"] == "check_stock" and body["arguments"] == {"size": "large", "count": 2}
    assert body["call"]["callid"] == result.callid and body["call"]["from"] == CALLER
    assert body["call"]["to"] == NUMBER_A and body["call"]["assistant"]["name"] == "Tooly"
    assert body["call"]["direction"] == "inbound" and body["call"]["id"] == call.pk

    [row] = await tool_calls(result.callid)
    assert (row.name, row.kind, row.status, row.http_status, row.openai_call_id) == (
        "check_stock",
        "webhook",
        "ok",
        200,
        "call_1",
    )
    assert json.loads(row.arguments) == {"size": "large", "count": 2} and json.loads(row.result)["left"] == 7
    assert row.duration_ms is not None and row.duration_ms < 2000
    lines = await transcript(result.callid)
    roles = [role for role, _, _ in lines]
    assert roles == ["caller", "tool", "assistant"], lines
    assert lines[1][1].startswith('check_stock {"size": "large", "count": 2} → {"in_stock": true')
    assert "s3cret" not in daphne_server.logs()


async def test_slow_webhook_is_cut_off_and_the_model_is_told(daphne_server, receiver):
    assistant = await sync_to_async(make_tool_assistant)(receiver.url_for("/slow"))
    await sync_to_async(WebhookTool.objects.filter(assistant=assistant).update)(timeout_seconds=0.5)
    receiver.default = Reply(200, {"in_stock": True}, delay=5)
    _, output, result, call = await call_with_tool(
        daphne_server, {"name": "check_stock", "arguments": {"size": "small"}}, reply="Sorry, I cannot check now."
    )
    error = json.loads(output["output"])["error"]
    assert "did not answer within 0.5 seconds" in error
    assert result.played_ms >= 400 and call.status == "completed"  # the conversation went on
    [row] = await tool_calls(result.callid)
    assert row.status == "timeout" and 400 <= row.duration_ms < 2000


async def test_failing_webhook_is_reported_to_the_model(daphne_server, receiver):
    await sync_to_async(make_tool_assistant)(receiver.url_for("/broken"))
    receiver.default = Reply(500, "database is down")
    _, output, result, _ = await call_with_tool(daphne_server, {"name": "check_stock", "arguments": {"size": "small"}})
    answer = json.loads(output["output"])
    assert "HTTP 500" in answer["error"] and answer["details"] == "database is down"
    [row] = await tool_calls(result.callid)
    assert (row.status, row.http_status) == ("error", 500) and "database is down" in row.error
    assert ("tool", f'check_stock {{"size": "small"}} → error: {row.error} ({row.duration_ms} ms)', False) in (
        await transcript(result.callid)
    )


@pytest.mark.parametrize(
    ("tool_call", "status", "says"),
    [
        ({"name": "check_stock", "arguments": {"size": "huge"}}, "invalid_arguments", "'huge' is not one of"),
        ({"name": "check_stock", "arguments": {"count": 2}}, "invalid_arguments", "'size' is a required property"),
        ({"name": "check_stock", "arguments": "{not json"}, "invalid_arguments", "not valid JSON"),
        ({"name": "launch_rocket", "arguments": {}}, "unknown_tool", "no tool called 'launch_rocket'"),
    ],
)
async def test_bad_calls_never_reach_the_service(daphne_server, receiver, tool_call, status, says):
    await sync_to_async(make_tool_assistant)(receiver.url_for("/stock"))
    _, output, result, call = await call_with_tool(daphne_server, tool_call)
    assert says in json.loads(output["output"])["error"]
    assert receiver.requests == []
    [row] = await tool_calls(result.callid)
    assert row.status == status and call.status == "completed"


async def test_end_call_lets_the_goodbye_play_to_the_end(daphne_server, transactional_db):
    await sync_to_async(make_assistant)(
        "Polite", NUMBER_A, welcome_message="", end_call_enabled=True, datetime_tool_enabled=False
    )
    async with fake_openai(daphne_server, answer_ms=1200) as fake:
        fake.reply_tool_calls[:] = [{"name": "end_call", "arguments": {"reason": "caller is done"}}]
        fake.reply_texts[:] = ["Thank you for calling, goodbye!"]
        sim = simulator(daphne_server, caller_audio=CALLER_TURN)
        session_task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        update = (await session.wait_for("session.update"))["session"]
        result = await session_task  # we never hang up: the server does

    assert [t["name"] for t in update["tools"]] == ["end_call"]
    assert json.loads(session.function_outputs[0]["output"])["ok"] is True
    assert result.ended_by == "server" and result.bye_received == {"t": "bye"}
    assert result.cut_ms_at_bye == 0 and result.played_ms == pytest.approx(1200, abs=40)
    assert result.violations == []
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason) == ("completed", "assistant_hangup")
    assert "caller is done" in call.end_detail
    [row] = await tool_calls(result.callid)
    assert (row.name, row.kind, row.status) == ("end_call", "builtin", "ok")


async def test_transfer_ends_the_ai_leg_and_answers_46elks_next(daphne_server, transactional_db):
    await sync_to_async(make_assistant)("Desk", NUMBER_A, welcome_message="", transfer_number=HUMAN)
    async with fake_openai(daphne_server, answer_ms=600) as fake:
        fake.reply_tool_calls[:] = [{"name": "transfer_call", "arguments": {"reason": "wants a human"}}]
        fake.reply_texts[:] = ["I am connecting you to a colleague now."]
        sim = simulator(daphne_server, caller_audio=CALLER_TURN)
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        update = (await session.wait_for("session.update"))["session"]
        result = await task
    assert "transfer_call" in [t["name"] for t in update["tools"]]
    assert result.ended_by == "server" and result.cut_ms_at_bye == 0 and result.played_ms >= 590
    call = await wait_call_ended(daphne_server, result.callid)
    assert (call.status, call.end_reason, call.transfer_to) == ("completed", "transferred", HUMAN)

    next_url = f"{daphne_server.http_url}/elks/next/{daphne_server.secret}/"
    form = {"callid": result.callid, "from": CALLER, "to": NUMBER_A, "result": "success"}
    async with httpx2.AsyncClient() as http:
        first = await http.post(next_url, data=form)
        again = await http.post(next_url, data=form)
        wrong = await http.post(next_url.replace(daphne_server.secret, "not-the-secret"), data=form)
    assert first.status_code == 200 and first.json() == {"connect": HUMAN}
    assert again.json() == {"hangup": "reject"}  # a transfer is used once
    assert wrong.status_code == 404


async def test_next_matches_a_transfer_by_the_callers_number(daphne_server, transactional_db):
    """46elks' `next` may carry the parent call's id, not the WebSocket leg's: the caller's number matches."""
    await sync_to_async(make_assistant)("Desk", NUMBER_A, welcome_message="", transfer_number=HUMAN)
    async with fake_openai(daphne_server, answer_ms=300) as fake:
        fake.reply_tool_calls[:] = [{"name": "transfer_call", "arguments": {}}]
        result = await simulator(daphne_server, caller_audio=CALLER_TURN).run()
    await wait_call_ended(daphne_server, result.callid)
    next_url = f"{daphne_server.http_url}/elks/next/{daphne_server.secret}/"
    async with httpx2.AsyncClient() as http:
        stranger = await http.post(next_url, data={"callid": "parent-1", "from": "+46708888888", "to": "+46766000000"})
        caller = await http.post(next_url, data={"callid": "parent-1", "from": CALLER, "to": "+46766000000"})
    assert stranger.json() == {"hangup": "reject"}
    assert caller.json() == {"connect": HUMAN}


async def test_current_datetime_in_the_assistants_time_zone(daphne_server, transactional_db):
    await sync_to_async(make_assistant)(
        "Clock", NUMBER_A, welcome_message="", end_call_enabled=False, time_zone="America/New_York"
    )
    _, output, _, _ = await call_with_tool(daphne_server, {"name": "current_datetime", "arguments": {}})
    answer = json.loads(output["output"])
    now = datetime.now(ZoneInfo("America/New_York"))
    assert answer["time_zone"] == "America/New_York"
    assert datetime.fromisoformat(answer["iso"]).utcoffset() == now.utcoffset()
    assert answer["date"] == now.date().isoformat() and answer["weekday"] == now.strftime("%A")


async def test_pizza_demo_takes_an_order_end_to_end(daphne_server, transactional_db):
    """`load_pizza_demo` pointed at this server: the model's submit_order lands in PizzaOrder."""
    await sync_to_async(call_command)("load_pizza_demo", site_url=daphne_server.http_url, number=NUMBER_A)
    order = {
        "items": [{"pizza": "Margherita", "size": "family", "quantity": 2}, {"pizza": "Hawaii", "quantity": 1}],
        "customer_name": "Alva",
        "pickup_or_delivery": "pickup",
    }
    async with fake_openai(daphne_server, answer_ms=400) as fake:
        fake.reply_tool_calls[:] = [None, {"name": "submit_order", "arguments": order}]
        fake.reply_texts[:] = ["Hej och välkommen!", "Order received, ready in twenty minutes."]
        sim = simulator(daphne_server, caller_audio=[("silence", 700), *CALLER_TURN])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        update = (await session.wait_for("session.update"))["session"]
        created = await session.wait_for("conversation.item.create", timeout=15)
        await sim.wait_played_ms(800)  # the greeting, then the answer after the order was placed
        await sim.hang_up()
        result = await task
    assert {t["name"] for t in update["tools"]} == {"end_call", "current_datetime", "submit_order"}
    answer = json.loads(created["item"]["output"])
    assert answer["status"] == "received" and answer["ready_in_minutes"] == 20
    saved = await sync_to_async(PizzaOrder.objects.select_related("call").get)(pk=answer["order_id"])
    assert saved.summary == "2 × family Margherita, 1 × Hawaii"
    assert (saved.customer_name, saved.phone, saved.call.call_id) == ("Alva", CALLER, result.callid)
    assert (await get_call(result.callid)).assistant.name == "Pizza Bella (demo)"
    assert await sync_to_async(PhoneNumber.objects.filter(number=NUMBER_A).count)() == 1
