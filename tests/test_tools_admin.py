"""Webhook tools as admins edit them (names and JSON Schemas checked with a clear message), the
tools a call is offered, the pizza demo's loader and order endpoint, and the admin pages."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from assistants.models import Assistant, PhoneNumber
from assistants.realtime_config import AssistantConfig
from tools.admin import WebhookToolForm
from tools.models import PizzaOrder, WebhookTool
from tools.runner import tool_runner
from tools.schema import SchemaProblem, argument_errors, check_parameters_schema, compile_validator
from tools.selectors import call_extras
from tools.views import demo_token

GOOD_SCHEMA = {"type": "object", "properties": {"size": {"type": "string"}}, "required": ["size"]}


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(name="Reception", instructions="You answer.", welcome_message="Hej!")


def form(assistant, **changes) -> WebhookToolForm:
    data = {
        "assistant": assistant.pk,
        "name": "check_stock",
        "description": "Checks the stock.",
        "parameters": json.dumps(GOOD_SCHEMA),
        "url": "https://shop.example.com/stock",
        "method": "POST",
        "secret_header_name": "X-Api-Key",
        "secret_header_value": "abc",
        "timeout_seconds": "3",
        "is_active": "on",
    }
    data.update(changes)
    return WebhookToolForm(data=data)


def test_a_good_tool_saves(assistant):
    f = form(assistant)
    assert f.is_valid(), f.errors
    tool = f.save()
    assert tool.parameters == GOOD_SCHEMA and tool.url == "https://shop.example.com/stock"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"name": "check stock"}, "name", "no spaces"),
        ({"name": "end_call"}, "name", "built-in action"),
        ({"parameters": "{not json"}, "parameters", "Enter a valid JSON"),
        ({"parameters": '{"type": "array"}'}, "parameters", 'The top level must be {"type": "object"'),
        ({"parameters": '["size"]'}, "parameters", "described by a JSON object"),
        (
            {"parameters": '{"type": "object", "properties": {"n": {"type": "number", "minimum": "one"}}}'},
            "parameters",
            "Not a valid JSON Schema at properties/n/minimum: 'one' is not of type 'number'",
        ),
        (
            {"parameters": '{"type": "object", "properties": {}, "required": ["size"]}'},
            "parameters",
            'not in "properties": size',
        ),
        ({"secret_header_name": "X Api Key"}, "secret_header_name", "no spaces or colons"),
        ({"secret_header_name": ""}, "secret_header_name", "Give the header a name"),
        ({"timeout_seconds": "60"}, "timeout_seconds", "less than or equal to 20"),
        ({"url": "ftp://example.com/x"}, "url", "Enter a valid URL"),
    ],
)
def test_mistakes_are_explained(assistant, changes, field, says):
    f = form(assistant, **changes)
    assert not f.is_valid()
    assert says in " ".join(f.errors[field]), f.errors


def test_a_tool_name_is_unique_per_assistant(assistant):
    form(assistant).save()
    f = form(assistant)
    assert not f.is_valid() and "already exists" in str(f.errors)


def test_argument_errors_read_like_sentences():
    validator = compile_validator(
        {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    )
    assert argument_errors(validator, {"items": [1, "two"]}) == ["items.1: 'two' is not of type 'integer'"]
    assert argument_errors(validator, {"items": [1, 2]}) == []
    with pytest.raises(SchemaProblem):
        check_parameters_schema({"type": "object", "properties": []})


def _session(assistant) -> SimpleNamespace:
    config = AssistantConfig.from_assistant(assistant)
    config.extra.update(call_extras(assistant))
    return SimpleNamespace(config=config, tool_timeout=10.0, call_pk=None, hello=None)


def test_a_call_is_offered_the_switched_on_tools(assistant):
    WebhookTool.objects.create(
        assistant=assistant, name="check_stock", description="d", parameters=GOOD_SCHEMA, url="https://x.example"
    )
    WebhookTool.objects.create(
        assistant=assistant, name="off_tool", description="d", url="https://x.example", is_active=False
    )
    WebhookTool.objects.create(
        assistant=assistant, name="slow", description="d", url="https://x.example", timeout_seconds=15
    )
    assistant.transfer_number = "+46701111111"
    session = _session(assistant)
    runner = tool_runner(session)
    names = [t["name"] for t in runner.definitions()]
    assert names == ["end_call", "transfer_call", "current_datetime", "check_stock", "slow"]
    assert runner.timeout == 16.0  # the slowest tool's own timeout comes first
    assert "Europe/Stockholm" in runner.definitions()[2]["description"]
    assert all(t["type"] == "function" and t["parameters"]["type"] == "object" for t in runner.definitions())
    assert "s3cret" not in json.dumps(session.config.as_dict())


def test_an_assistant_with_nothing_switched_on_has_no_tools(assistant):
    assistant.end_call_enabled = assistant.datetime_tool_enabled = False
    assert tool_runner(_session(assistant)) is None


def test_the_assistant_page_shows_its_tools(admin_client, assistant):
    WebhookTool.objects.create(
        assistant=assistant,
        name="check_stock",
        description="d",
        parameters=GOOD_SCHEMA,
        url="https://x.example",
        secret_header_name="X-Api-Key",
        secret_header_value="hidden-value",
    )
    page = admin_client.get(reverse("admin:assistants_assistant_change", args=[assistant.pk])).content.decode()
    assert "Tools: things the assistant can do" in page and "check_stock" in page
    assert 'type="password"' in page
    assert "&quot;required&quot;: [\n    &quot;size&quot;\n  ]" in page  # the schema is shown indented
    actions = admin_client.get(reverse("admin:assistants_assistant_changelist")).content.decode()
    assert "Call a number with this assistant" in actions


def test_every_tools_admin_page_opens(admin_client, assistant):
    for model in ("toolcall", "transfer", "webhookdelivery", "outboundcall", "apitoken", "pizzaorder"):
        assert admin_client.get(reverse(f"admin:tools_{model}_changelist")).status_code == 200, model
    for model in ("outboundcall", "apitoken"):
        assert admin_client.get(reverse(f"admin:tools_{model}_add")).status_code == 200, model


# ------------------------------------------------------------------ the pizza demo


def test_load_pizza_demo_is_repeatable(db, capsys):
    call_command("load_pizza_demo", site_url="https://pizza.example.com", number="+46 766 86 12 34")
    call_command("load_pizza_demo", site_url="https://pizza.example.com/")
    assistant = Assistant.objects.get(name="Pizza Bella (demo)")
    [tool] = assistant.webhook_tools.all()
    assert tool.url == f"https://pizza.example.com/demo/orders/{demo_token()}/"
    assert tool.name == "submit_order" and tool.parameters["required"] == [
        "items",
        "customer_name",
        "pickup_or_delivery",
    ]
    assert list(assistant.numbers.values_list("number", flat=True)) == ["+46766861234"]
    assert "Updated the assistant" in capsys.readouterr().out


def test_load_pizza_demo_explains_mistakes(db):
    with pytest.raises(CommandError, match="--site-url must look like"):
        call_command("load_pizza_demo", site_url="pizza.example.com")
    other = Assistant.objects.create(name="Other", instructions="x")
    PhoneNumber.objects.create(number="+46766861234", assistant=other)
    with pytest.raises(CommandError, match="already belongs to Other"):
        call_command("load_pizza_demo", site_url="https://pizza.example.com", number="+46766861234")


def test_demo_order_endpoint(client, admin_client, db):
    url = reverse("tools:demo_orders", args=[demo_token()])
    order = {
        "tool": "submit_order",
        "arguments": {
            "items": [{"pizza": "Vesuvio", "quantity": 1}],
            "customer_name": "Sam",
            "pickup_or_delivery": "delivery",
            "address": "Storgatan 1",
        },
        "call": {"callid": "no-such-call", "from": "+46709999999"},
    }
    response = client.post(url, order, content_type="application/json")
    assert response.status_code == 201 and response.json()["ready_in_minutes"] == 35
    saved = PizzaOrder.objects.get()
    assert (saved.customer_name, saved.phone, saved.address, saved.call) == ("Sam", "+46709999999", "Storgatan 1", None)

    no_address = {**order, "arguments": {**order["arguments"], "address": ""}}
    assert "needs an address" in client.post(url, no_address, content_type="application/json").json()["error"]
    no_items = {**order, "arguments": {**order["arguments"], "items": []}}
    assert client.post(url, no_items, content_type="application/json").status_code == 400
    assert client.post(url, "nope", content_type="text/plain").status_code == 400
    wrong = reverse("tools:demo_orders", args=["0" * 32])
    assert client.post(wrong, order, content_type="application/json").status_code == 404
    assert PizzaOrder.objects.count() == 1
    page = admin_client.get(reverse("admin:tools_pizzaorder_changelist")).content.decode()
    assert "1 × Vesuvio" in page and "Sam" in page


def test_actions_setup_prints_the_voice_start_to_paste(db, capsys, settings):
    settings.ELKS_API_USERNAME = settings.ELKS_API_PASSWORD = ""
    call_command("actions_setup", base_url="https://voice.example.com/", websocket_number="+46766860000")
    out = capsys.readouterr().out
    voice_start = {"connect": "+46766860000", "next": f"https://voice.example.com/elks/next/{settings.ELKS_WS_SECRET}/"}
    assert json.dumps(voice_start) in out
    assert "Set ELKS_API_USERNAME and ELKS_API_PASSWORD" in out
