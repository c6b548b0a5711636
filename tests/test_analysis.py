"""After-call analysis: the assistant's settings in admin, the run against the fake Responses API, and
where the result shows (admin, command, API, webhook, export), ending with a real call through daphne."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import urllib.request
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from assistants.analysis_schema import SchemaProblem, field_order, fields_to_schema, schema_to_fields, strict_problems
from assistants.models import Assistant
from calls.models import Call, CallStatus, TranscriptEntry
from insights import analysis
from insights.analysis_services import call_analysis_queue, pending_analyses
from insights.models import CallAnalysis
from tests.bridge_helpers import NUMBER_B, fake_openai, make_assistant, simulator, wait_call_ended
from tests.fakes_http import FakeHttpServer
from tests.test_revisions import admin_form
from tools import post_call
from tools.services import api_token_create

# The export streams asynchronously (for ASGI: daphne); the sync test client reads it whole, and says so.
pytestmark = pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")

ROWS = [
    {"name": "customer_name", "type": "text", "description": "The caller's name", "required": True},
    {"name": "party_size", "type": "number", "description": "", "required": False},
    {"name": "booking_date", "type": "date", "required": False},
    {"name": "wants_parking", "type": "yes_no", "required": False},
    {"name": "table", "type": "choice", "choices": "inside, terrace", "required": False},
]
ANSWER = {
    "summary": "Anna booked a table for four.",
    "outcome": "success",
    "reason": "A table was booked.",
    "data": {
        "customer_name": "Anna",
        "party_size": 4,
        "booking_date": "2026-12-24",
        "wants_parking": False,
        "table": None,
    },
}


def configure(assistant: Assistant) -> Assistant:
    assistant.analysis_summary_enabled = True
    assistant.analysis_summary_instructions = "Two sentences."
    assistant.analysis_success_goal = "The caller booked a table."
    assistant.analysis_schema = fields_to_schema(ROWS)
    assistant.save()
    return assistant


@pytest.fixture
def assistant(db):
    return configure(Assistant.objects.create(name="Bookings", instructions="You take bookings."))


@pytest.fixture
def call(assistant):
    c = Call.objects.create(
        call_id="call-analysis-1",
        from_number="+46701111111",
        to_number="+46702222222",
        assistant=assistant,
        started_at=timezone.now(),
        ended_at=timezone.now(),
        duration=timezone.timedelta(seconds=75),
        status=CallStatus.COMPLETED,
        end_reason="caller_hangup",
        usage={"realtime": {"model": "gpt-realtime-2.1", "responses": 0}},
    )
    TranscriptEntry.objects.create(call=c, position=0, role="assistant", text="Bookings, hello!")
    TranscriptEntry.objects.create(call=c, position=1, role="caller", text="A table for four, I'm Anna.")
    TranscriptEntry.objects.create(call=c, position=2, role="tool", text="book_table → ok (12 ms)")
    return c


# ------------------------------------------------------------------ the settings


def test_fields_table_becomes_strict_schema_and_back():
    schema = fields_to_schema(ROWS)
    assert schema["additionalProperties"] is False and schema["required"] == [r["name"] for r in ROWS]
    assert schema["properties"]["customer_name"] == {"type": "string", "description": "The caller's name"}
    assert schema["properties"]["party_size"] == {"type": ["number", "null"]}
    assert schema["properties"]["booking_date"] == {"type": ["string", "null"], "format": "date"}
    assert schema["properties"]["table"]["enum"] == ["inside", "terrace", None]
    assert strict_problems(schema) == []
    back = schema_to_fields(schema)
    assert [(r["name"], r["type"], r["required"]) for r in back] == [
        (r["name"], r["type"], r["required"]) for r in ROWS
    ]
    assert back[4]["choices"] == "inside, terrace"


def test_bad_fields_get_one_clear_message_each():
    with pytest.raises(SchemaProblem) as exc:
        fields_to_schema([{"name": "2nd name"}, {"name": "a"}, {"name": "a"}, {"name": "t", "type": "choice"}])
    assert exc.value.problems == [
        "Field “2nd name”: use letters, digits and _ only (e.g. booking_date), starting with a letter.",
        "Field “a”: the name is already used.",
        "Field “t”: list at least two choices, separated by commas.",
    ]
    loose = {"type": "object", "properties": {"x": {"type": "string"}}}
    assert strict_problems(loose) == [
        "the schema: set “additionalProperties”: false.",
        "the schema: every property must be listed in “required” (make optional ones nullable, "
        'e.g. "type": ["string", "null"]); missing: x.',
    ]


def test_admin_table_editor_saves_fields_and_they_enter_the_history(admin_client, assistant):
    url = reverse("admin:assistants_assistant_change", args=[assistant.pk])
    page = admin_client.get(url).content.decode()
    assert "After the call: summary, success and fields" in page and "Advanced: edit JSON Schema" in page
    data = admin_form(admin_client, url)
    assert data["analysis_schema-0-name"] == ["customer_name"] and data["analysis_schema-1-name"] == ["party_size"]
    data["analysis_schema-5-name"] = ["order_number"]
    data["analysis_schema-5-required"] = ["on"]
    data["analysis_success_goal"] = ["The caller booked a table for tonight."]
    response = admin_client.post(url, {**data, "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    assistant.refresh_from_db()
    assert field_order(assistant.analysis_schema)[-1] == "order_number"
    assert assistant.analysis_schema["properties"]["order_number"] == {"type": "string"}
    latest = assistant.revisions.order_by("-number").first()
    assert {"analysis_schema", "analysis_success_goal"} <= set(latest.changed_fields)
    assert latest.settings["analysis_schema"] == assistant.analysis_schema

    data = admin_form(admin_client, url)
    data["analysis_schema-json"] = [json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})]
    page = admin_client.post(url, {**data, "_save": "Save"}).content.decode()
    assert "set “additionalProperties”: false" in page and "missing: a" in page
    data["analysis_schema-json"] = ["{not json"]
    assert "The JSON Schema is not valid JSON" in admin_client.post(url, {**data, "_save": "Save"}).content.decode()
    assistant.refresh_from_db()
    assert "order_number" in assistant.analysis_schema["properties"]  # nothing saved from the bad posts


# ------------------------------------------------------------------ running it


def test_analysis_stores_result_and_cost_and_leaves_the_call_alone(fake_responses, call):
    fake_responses.script(ANSWER)
    pk = call_analysis_queue(call_pk=call.pk)
    result = analysis.analyse(pk)
    assert (result.status, result.summary, result.outcome, result.reason) == (
        "done",
        ANSWER["summary"],
        "success",
        "A table was booked.",
    )
    assert result.data == ANSWER["data"] and result.model == "gpt-5-mini" and result.attempts == 1
    (body,) = fake_responses.requests
    assert body["model"] == "gpt-5-mini" and fake_responses.problems == []
    assert "Caller: A table for four, I'm Anna." in body["input"] and "Tool call: book_table" in body["input"]
    assert "How it ended: Caller hung up" in body["input"]
    assert "The caller booked a table." in body["instructions"] and "Two sentences." in body["instructions"]
    schema = body["text"]["format"]["schema"]
    assert list(schema["properties"]) == ["summary", "outcome", "reason", "data"]
    # 1000 uncached + 200 cached tokens in, 80 out at gpt-5-mini's seeded prices.
    expected = (1000 * Decimal("0.25") + 200 * Decimal("0.025") + 80 * Decimal("2.00")) / 1_000_000
    assert result.cost == expected.quantize(Decimal("0.0001"))
    call.refresh_from_db()
    assert call.usage["analysis"]["input_tokens"] == 1200 and "analysis" in call.usage["cost"]["parts"]
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")


def test_rate_limit_then_success(fake_responses, call):
    fake_responses.script("429", ANSWER)
    result = analysis.analyse(call_analysis_queue(call_pk=call.pk))
    assert result.status == "done" and len(fake_responses.requests) == 2


@pytest.mark.parametrize(
    ("script", "reason"),
    [("timeout", "did not answer in time"), ("malformed", "not JSON"), ("500", "answered 500")],
)
def test_failures_are_stored_with_their_reason(fake_responses, settings, call, script, reason):
    settings.ANALYSIS_TIMEOUT_SECONDS = 0.3
    settings.ANALYSIS_MAX_RETRIES = 1
    fake_responses.timeout_seconds = 1.0
    fake_responses.script(script)
    result = analysis.analyse(call_analysis_queue(call_pk=call.pk))
    assert result.status == "failed" and reason in result.error
    call.refresh_from_db()
    assert (call.status, call.end_reason, call.end_detail) == ("completed", "caller_hangup", "")


def test_worker_job_takes_each_waiting_analysis_once(fake_responses, call, assistant):
    other = Call.objects.create(call_id="call-analysis-2", assistant=assistant, started_at=timezone.now())
    off = Assistant.objects.create(name="Plain", instructions="x")
    Call.objects.create(call_id="call-analysis-3", assistant=off, started_at=timezone.now())
    for c in Call.objects.all():
        call_analysis_queue(call_pk=c.pk)
    assert CallAnalysis.objects.count() == 2  # the plain assistant asks for none
    assert analysis.analyse_pending_calls() == "analysed 2 call(s)"
    assert pending_analyses() == [] and analysis.analyse_pending_calls() == ""
    assert CallAnalysis.objects.get(call=other).status == "done"


def test_command_analyses_and_prints_json(fake_responses, call):
    fake_responses.script(ANSWER)
    out = io.StringIO()
    call_command("analyze_calls", "--call-id", call.call_id, stdout=out)
    printed = json.loads(out.getvalue())
    assert (printed["status"], printed["outcome"], printed["data"]["customer_name"]) == ("done", "success", "Anna")
    out = io.StringIO()
    call_command("analyze_calls", "--call-id", call.call_id, stdout=out)  # stored: no second request
    assert len(fake_responses.requests) == 1 and json.loads(out.getvalue())["summary"] == ANSWER["summary"]
    fake_responses.script("malformed")
    with pytest.raises(CommandError, match="The analysis failed: The model's answer is not JSON"):
        call_command("analyze_calls", "--call-id", call.call_id, "--force", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No call with the id"):
        call_command("analyze_calls", "--call-id", "nope")


# ------------------------------------------------------------------ where it shows


def test_admin_shows_the_analysis_filters_searches_and_reruns(fake_responses, admin_client, call, settings):
    settings.ANALYSIS_IN_WEB = False  # the action queues; the test runs the job itself
    fake_responses.script(ANSWER)
    analysis.analyse(call_analysis_queue(call_pk=call.pk))
    page = admin_client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert ANSWER["summary"] in page and "A table was booked." in page and "Anna" in page
    assert "After-call analysis gpt-5-mini" in page  # in the cost breakdown
    panel = admin_client.get(reverse("dashboard:call", args=[call.pk])).content.decode()
    assert ANSWER["summary"] in panel and "Success</strong> · A table was booked." in panel
    assert "<th>customer_name</th><td>Anna</td>" in panel and "<th>wants_parking</th><td>no</td>" in panel
    changelist = reverse("admin:calls_call_changelist")
    assert "Success" in admin_client.get(changelist).content.decode()
    assert call.from_number in admin_client.get(changelist, {"outcome": "success"}).content.decode()
    assert call.from_number not in admin_client.get(changelist, {"outcome": "failure"}).content.decode()
    assert call.from_number in admin_client.get(changelist, {"q": "booked a table"}).content.decode()
    assert call.from_number not in admin_client.get(changelist, {"q": "pizza"}).content.decode()
    fake_responses.script({**ANSWER, "outcome": "failure", "reason": "No table free."})
    response = admin_client.post(
        changelist, {"action": "analyse_again", "_selected_action": [call.pk]}, follow=True
    ).content.decode()
    assert "1 call(s) are being analysed again" in response
    assert analysis.analyse_pending_calls() == "analysed 1 call(s)"
    assert CallAnalysis.objects.get(call=call).reason == "No table free."
    export = admin_client.post(changelist, {"action": "export_csv", "_selected_action": [call.pk]})
    rows = list(csv.DictReader(io.StringIO(b"".join(export).decode())))
    assert rows[0]["outcome"] == "failure" and rows[0]["customer_name"] == "Anna"


def test_export_api_streams_csv_and_jsonl_with_a_token(fake_responses, call, assistant):
    fake_responses.script(ANSWER)
    analysis.analyse(call_analysis_queue(call_pk=call.pk))
    Call.objects.create(
        call_id="unanalysed", assistant=assistant, started_at=timezone.now() - timezone.timedelta(days=3)
    )
    _, token = api_token_create(name="crm")
    client, auth = Client(), {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/api/calls/export.csv").status_code == 401
    today = timezone.localdate().isoformat()
    response = client.get("/api/calls/export.csv", {"from": today, "to": today, "assistant": "Bookings"}, **auth)
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response).decode())))
    assert [r["callid"] for r in rows] == [call.call_id]
    row = rows[0]
    assert (row["summary"], row["outcome"], row["customer_name"], row["party_size"]) == (
        ANSWER["summary"],
        "success",
        "Anna",
        "4",
    )
    assert (row["wants_parking"], row["table"], row["booking_date"]) == ("no", "", "2026-12-24")
    response = client.get("/api/calls/export.jsonl", {"assistant": str(assistant.pk)}, **auth)
    lines = [json.loads(line) for line in b"".join(response).decode().splitlines()]
    assert [line["callid"] for line in lines] == ["unanalysed", call.call_id]
    assert lines[0]["analysis"] is None and lines[1]["analysis"]["data"] == ANSWER["data"]
    bad = client.get("/api/calls/export.csv", {"from": "yesterday"}, **auth)
    assert bad.status_code == 400 and "like 2026-12-01" in bad.json()["error"]
    assert client.get("/api/calls/export.csv", {"assistant": "Nobody"}, **auth).status_code == 400


# ------------------------------------------------------------------ end to end


@pytest.mark.django_db(transaction=True)
async def test_a_call_is_analysed_and_shows_everywhere(daphne_server, fake_responses_server, settings):
    """A real call through daphne → the server analyses it (ANALYSIS_IN_WEB) against the fake Responses API →
    stored, in the after-call webhook (pending, then a signed call.analyzed), admin and the CSV export."""
    fake_responses_server.reset()
    fake_responses_server.script(
        lambda body: {**ANSWER, "summary": "Heard: " + body["input"].split("Assistant: ", 1)[1].split("\n")[0]}
    )
    secret = "whsec-analysis-0123456789"
    with FakeHttpServer() as receiver:
        assistant = await sync_to_async(make_assistant)(
            "Analysed",
            NUMBER_B,
            end_call_enabled=False,
            post_call_webhook_url=receiver.url_for("/after-call"),
            post_call_webhook_secret=secret,
        )
        await sync_to_async(configure)(assistant)
        async with fake_openai(daphne_server, answer_ms=300) as fake:
            fake.reply_texts[:] = ["Hello, this is Analysed."]
            sim = simulator(daphne_server, to=NUMBER_B, caller_audio=[("silence", 300)])
            task = asyncio.ensure_future(sim.run())
            await sim.wait_played_ms(300)
            await sim.hang_up()
            result = await task
        first, second = await receiver.await_requests(2)
    call = await wait_call_ended(daphne_server, result.callid)
    stored = await sync_to_async(CallAnalysis.objects.get)(call=call)
    assert stored.status == "done" and stored.summary == "Heard: Hello, this is Analysed."
    documents = {}
    for request in (first, second):
        ts = request.headers["x-voiceagent-timestamp"]
        assert post_call.verify(secret, ts, request.body, request.headers["x-voiceagent-signature"])
        documents[request.headers["x-voiceagent-event"]] = request.json()
    assert set(documents) == {"call.ended", "call.analyzed"}
    assert documents["call.ended"]["analysis"]["status"] in ("pending", "running", "done")
    analysed = documents["call.analyzed"]["analysis"]
    assert (analysed["status"], analysed["outcome"], analysed["data"]["customer_name"]) == ("done", "success", "Anna")
    assert analysed["model"] == "gpt-5-mini" and analysed["summary"] == stored.summary

    @sync_to_async
    def shown() -> tuple[str, str]:
        from django.contrib.auth.models import User

        admin = User.objects.create_superuser("boss", password="pw")
        client = Client()
        client.force_login(admin)
        page = client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
        _, token = api_token_create(name="crm")
        export = client.get("/api/calls/export.csv", {"assistant": "Analysed"}, HTTP_AUTHORIZATION=f"Bearer {token}")
        return page, b"".join(export).decode(), token

    page, exported, token = await shown()
    assert stored.summary in page and "A table was booked." in page
    (row,) = list(csv.DictReader(io.StringIO(exported)))
    assert (row["callid"], row["outcome"], row["customer_name"]) == (result.callid, "success", "Anna")

    def download() -> tuple[str, str]:  # through daphne (ASGI), where the rows stream asynchronously
        url = f"{daphne_server.http_url}/api/calls/export.jsonl?assistant=Analysed"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["Content-Type"], response.read().decode()

    content_type, body = await asyncio.to_thread(download)
    (line,) = [json.loads(text) for text in body.splitlines()]
    assert content_type.startswith("application/x-ndjson") and line["analysis"]["summary"] == stored.summary


def test_api_detail_and_list_carry_the_analysis(fake_responses, call, assistant):
    from tools.models import OutboundCall

    outbound = OutboundCall.objects.create(assistant=assistant, to_number="+46701111111", call=call, status="ended")
    _, token = api_token_create(name="crm")
    client, auth = Client(), {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    pending_call = Call.objects.create(call_id="no-analysis", assistant=assistant, started_at=timezone.now())
    OutboundCall.objects.create(assistant=assistant, to_number="+46701111112", call=pending_call)
    call_analysis_queue(call_pk=pending_call.pk)
    fake_responses.script(ANSWER)
    analysis.analyse(call_analysis_queue(call_pk=call.pk))
    detail = client.get(f"/api/calls/{outbound.pk}/", **auth).json()
    assert detail["call"]["analysis"] == {
        "status": "done",
        "summary": ANSWER["summary"],
        "outcome": "success",
        "reason": "A table was booked.",
        "data": ANSWER["data"],
        "model": "gpt-5-mini",
        "error": None,
    }
    listed = client.get("/api/calls/", **auth).json()["outbound_calls"]
    assert [o["call"]["analysis"]["status"] for o in listed] == ["pending", "done"]
    assert client.get("/api/calls/").status_code == 401


def test_prompt_editors_export_but_do_not_rerun(client, call):
    from django.contrib.auth.models import Group, User

    editor = User.objects.create_user("editor", password="pw", is_staff=True)
    editor.groups.add(Group.objects.get(name="Prompt editors"))
    client.force_login(editor)
    page = client.get(reverse("admin:calls_call_changelist")).content.decode()
    assert "Export with analysis (CSV)" in page and "Analyse again" not in page
