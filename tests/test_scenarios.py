"""Scenario tests of an assistant: the pure checks, YAML, and whole runs in text mode against the fakes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from assistants.models import Assistant
from scenarios import checks
from scenarios.models import RunStatus, Scenario
from scenarios.services import run_create, run_execute
from scenarios.yaml_io import ScenarioFileError, export_yaml, scenarios_import
from tests.conftest import TEST_API_KEY
from tests.fakes_http import FakeHttpServer, Reply
from tests.scenario_fakes import FakeTextModel, ThreadedRealtime

# -- checks (pure) ----------------------------------------------------------------------------------


def _scenario(**kw) -> Scenario:
    return Scenario(slug="s", caller_instructions="x", **kw)


def test_tool_check_passes_on_matching_arguments_case_and_spaces_ignored():
    out = checks.check_tools(
        [{"name": "book", "arguments": {"day": "Friday", "guests": 4}}],
        [{"name": "book", "arguments": json.dumps({"day": " friday", "guests": 4, "extra": 1})}],
    )
    assert [r.passed for r in out] == [True]


def test_tool_check_names_wrong_tool_and_wrong_argument():
    missing = checks.check_tools([{"name": "book"}], [{"name": "cancel", "arguments": {}}])
    assert not missing[0].passed and "never called (called: cancel)" in missing[0].reason
    wrong = checks.check_tools(
        [{"name": "book", "arguments": {"guests": 4}}], [{"name": "book", "arguments": {"guests": 2}}]
    )
    assert not wrong[0].passed and "guests=2 (wanted 4)" in wrong[0].reason


def test_ending_turns_first_reply_and_forbidden_phrases():
    assert checks.check_ending("transfer:+46 70 000", "transfer:+4670000").passed
    assert not checks.check_ending("assistant_hangup", "caller_hangup").passed
    assert checks.check_ending("transfer:", "transfer:+46").passed
    assert not checks.check_turns(2, 3).passed and checks.check_turns(3, 3).passed
    assert not checks.check_first_reply(500, None).passed
    assert not checks.check_first_reply(500, 700).passed
    said = [{"role": "caller", "text": "my card number is 1"}, {"role": "assistant", "text": "Your CARD NUMBER please"}]
    result = checks.check_forbidden(["card number"], said)
    assert not result[0].passed and "Your CARD NUMBER please" in result[0].reason
    assert checks.check_forbidden(["card number"], said[:1])[0].passed  # the caller may say it


def test_evaluate_runs_only_the_checks_asked_for():
    outcome = checks.Outcome(ended_with="caller_hangup", turns=9)
    assert checks.evaluate(_scenario(), outcome) == []
    names = [r.name for r in checks.evaluate(_scenario(max_turns=3, ends_with="caller_hangup"), outcome)]
    assert names == ["ends with", "turns"]


# -- YAML -------------------------------------------------------------------------------------------

YAML = """
- id: book-table
  caller:
    instructions: Eva, 67, wants a table for four on Friday at seven.
    language: en
  expect:
    tools_called:
      - name: book_table
        arguments: {guests: 4}
    ends_with: assistant_hangup
    max_turns: 4
    never_say: [card number]
  judge:
    - confirms the date and time before ending
  tool_mocks:
    book_table: {ok: true, table: 12}
  repeat: 2
"""


@pytest.mark.django_db
def test_yaml_round_trip_and_update_by_id():
    assistant = Assistant.objects.create(name="Pizza", instructions="Take bookings.")
    assert scenarios_import(assistant=assistant, text=YAML) == (1, 0)
    scenario = assistant.scenarios.get()
    assert scenario.tools_called == [{"name": "book_table", "arguments": {"guests": 4}}]
    assert (scenario.ends_with, scenario.max_turns, scenario.repeat) == ("assistant_hangup", 4, 2)
    text = export_yaml(assistant)
    assert scenarios_import(assistant=assistant, text=text) == (0, 1)
    assert export_yaml(assistant) == text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: a\n  caller: {}\n", "caller.instructions is missing"),
        ("- caller: {instructions: x}\n", "has no id"),
        ("- id: a\n  caller: {instructions: x}\n  expect: {tools_called: [{arguments: {}}]}\n", "needs a name"),
        ("- id: a\n  caller: {instructions: x}\n  expect: {max_turns: many}\n", "not a number"),
        ("- id: [\n", "not valid YAML"),
        ("- id: a\n  caller: {instructions: x}\n  mode: phone\n", "mode must be one of text, voice"),
    ],
)
def test_yaml_errors_say_where(text, message):
    assistant = Assistant.objects.create(name="Pizza", instructions="Take bookings.")
    with pytest.raises(ScenarioFileError, match=message):
        scenarios_import(assistant=assistant, text=text)
    assert not assistant.scenarios.exists()


# -- whole runs in text mode ------------------------------------------------------------------------


@pytest.fixture
def text_model(settings):
    with FakeTextModel() as fake:
        settings.OPENAI_API_KEY = TEST_API_KEY
        settings.OPENAI_BASE_URL = fake.base_url
        yield fake


def realtime(settings, **knobs):
    server = ThreadedRealtime(answer_ms=0, chunk_interval_ms=0, **knobs)
    fake = server.__enter__()
    settings.OPENAI_REALTIME_URL = fake.url
    return server, fake


def _caller(*turns):
    return [{"say": say, "hang_up": hang} for say, hang in turns]


def _booking(assistant, **kw) -> Scenario:
    fields = {
        "slug": "book-table",
        "caller_instructions": "Eva wants a table for four on Friday at seven.",
        "tools_called": [{"name": "book_table", "arguments": {"guests": 4, "day": "Friday"}}],
        "ends_with": "assistant_hangup",
        "max_turns": 3,
        "forbidden_phrases": ["card number"],
        "judge": ["confirms the date and time before ending"],
        "tool_mocks": {"book_table": {"ok": True}},
        **kw,
    }
    return Scenario.objects.create(assistant=assistant, **fields)


# The assistant's script on the fake Realtime server: greet, book, confirm, hang up, say goodbye.
BOOKING_REPLIES = ["Bella Pizza, how can I help?", "Booked: four people, Friday at seven.", "Goodbye!"]
BOOKING_TOOLS = [
    None,
    {"name": "book_table", "arguments": {"guests": 4, "day": "friday"}},
    None,
    {"name": "end_call"},
    None,
]


@pytest.mark.django_db(transaction=True)
def test_passing_scenario_passes_with_its_transcript_tools_judge_and_revision(settings, text_model):
    from insights.models import ModelPrice

    realtime_prices = dict(text_input=4, cached_text_input=0, text_output=24, audio_input=32, audio_output=64)
    ModelPrice.objects.update_or_create(model="gpt-realtime-2.1", defaults={**realtime_prices, "cached_audio_input": 0})
    ModelPrice.objects.update_or_create(
        model=settings.SCENARIO_CALLER_MODEL, defaults=dict(text_input=1000, cached_text_input=100, text_output=2000)
    )
    assistant = Assistant.objects.create(
        name="Pizza", instructions="Take bookings.", welcome_message="Bella Pizza, how can I help?"
    )
    scenario = _booking(assistant)
    text_model.scripts["caller_turn"] = _caller(
        ("A table for four on Friday at seven, please.", False), ("Thanks, bye.", False)
    )
    text_model.scripts["judgement"] = [
        {"results": [{"criterion": "c", "passed": True, "reason": "It repeated Friday at seven."}]}
    ]
    server, fake = realtime(settings, reply_texts=list(BOOKING_REPLIES), reply_tool_calls=list(BOOKING_TOOLS))
    try:
        run = run_execute(run_pk=run_create(assistant=assistant).pk)
    finally:
        server.__exit__()
    attempt = run.attempts.get()
    assert attempt.error == ""
    assert [c["passed"] for c in attempt.check_results] == [True, True, True, True], attempt.check_results
    assert attempt.passed and run.status == RunStatus.DONE and (run.done, run.passed, run.total) == (1, 1, 1)
    assert attempt.ended_with == "assistant_hangup"
    assert [line["role"] for line in attempt.transcript] == ["assistant", "caller", "assistant", "caller", "assistant"]
    assert attempt.transcript[2]["text"] == "Booked: four people, Friday at seven."
    assert attempt.judge_results == [
        {
            "criterion": "confirms the date and time before ending",
            "passed": True,
            "reason": "It repeated Friday at seven.",
        }
    ]
    assert run.revision is not None and run.revision.assistant_id == assistant.pk
    # The assistant ran in text mode with its own instructions and tools; the mock answered book_table.
    session = fake.sessions[0]
    update = next(e for _, e in session.received if e["type"] == "session.update")["session"]
    assert update["output_modalities"] == ["text"] and update["instructions"] == "Take bookings."
    assert "end_call" in [t["name"] for t in update["tools"]]
    assert json.loads(session.function_outputs[0]["output"]) == {"ok": True}
    # The caller model was told who to be; the judge read the transcript.
    assert text_model.fake.problems == []
    assert text_model.fake.headers[0]["authorization"] == f"Bearer {TEST_API_KEY}"
    caller_body = text_model.bodies("caller_turn")[0]
    assert "Eva wants a table" in caller_body["instructions"]
    assert caller_body["text"]["format"]["strict"] is True
    assert "Booked: four people" in text_model.bodies("judgement")[0]["input"]
    assert scenario.attempts.count() == 1
    # Two caller turns and one verdict (the same model), each 1000 fresh + 200 cached in, 80 out at
    # $1000/$100/$2000 per 1M, are $3.54; the assistant's few realtime tokens add a little.
    assert Decimal("3.54") < attempt.cost_usd < Decimal("3.60") and run.cost_usd == attempt.cost_usd


@pytest.mark.django_db(transaction=True)
def test_failing_scenarios_fail_with_the_right_reason(settings, text_model):
    assistant = Assistant.objects.create(name="Pizza", instructions="Take bookings.")
    _booking(assistant, judge=[], max_turns=1)
    # The assistant calls the wrong tool, asks for a card number, and the caller needs two turns.
    replies = ["What is your card number?", "Anything else?"]
    tools = [{"name": "cancel_booking", "arguments": {}}, None, None]
    text_model.scripts["caller_turn"] = _caller(("Table for four, Friday.", False), ("No.", False), ("", True))
    server, _ = realtime(settings, reply_texts=replies, reply_tool_calls=tools)
    try:
        run = run_execute(run_pk=run_create(assistant=assistant).pk)
    finally:
        server.__exit__()
    attempt = run.attempts.get()
    failed = {c["name"]: c["reason"] for c in attempt.check_results if not c["passed"]}
    assert not attempt.passed and run.passed == 0
    assert "book_table was never called (called: cancel_booking)" in failed["tool book_table called"]
    assert failed["ends with"] == "The call ended with caller_hangup, not assistant_hangup."
    assert failed["turns"].startswith("2 turns (more than the limit of 1)")
    assert "What is your card number?" in failed["never says “card number”"]


@pytest.mark.django_db(transaction=True)
def test_webhook_tool_runs_against_its_webhook_and_command_prints_table_and_junit(
    settings, text_model, tmp_path, capsys
):
    from tools.models import WebhookTool

    assistant = Assistant.objects.create(name="Pizza", instructions="Take bookings.")
    _booking(assistant, tool_mocks={}, judge=["never asks for card details"], repeat=2)
    with FakeHttpServer() as hook:
        hook.default = Reply(200, {"booked": True, "table": 7})
        WebhookTool.objects.create(
            assistant=assistant,
            name="book_table",
            description="Book a table.",
            parameters={"type": "object", "properties": {"guests": {"type": "integer"}, "day": {"type": "string"}}},
            url=hook.url + "/book",
        )
        text_model.scripts["caller_turn"] = _caller(("Four on Friday.", False), ("Bye.", False)) * 2
        text_model.scripts["judgement"] = [
            {"results": [{"criterion": "c", "passed": True, "reason": "No card talk."}]},
            {"results": [{"criterion": "c", "passed": False, "reason": "It asked for a card."}]},
        ]
        server, fake = realtime(settings, reply_texts=["Booked.", "Bye!"] * 2, reply_tool_calls=BOOKING_TOOLS[1:] * 2)
        junit = tmp_path / "out.xml"
        try:
            with pytest.raises(SystemExit) as exit_info:
                call_command("test_assistant", "Pizza", "--junit", str(junit))
        finally:
            server.__exit__()
        assert exit_info.value.code == 1
        sent = hook.requests[0].json()
        assert (sent["tool"], sent["arguments"]) == ("book_table", {"guests": 4, "day": "friday"})
        assert len(hook.requests) == 2  # once per attempt
    out = capsys.readouterr().out
    assert "book-table" in out and "1/2" in out and "It asked for a card." in out
    assert "1 of 2 attempts passed" in out
    report = junit.read_text()
    assert 'tests="2" failures="1"' in report and "It asked for a card." in report
    assert '"table": 7' in fake.sessions[0].function_outputs[0]["output"]  # the webhook's answer reached the model


@pytest.mark.django_db
def test_command_refuses_unknown_assistant_and_scenario():
    from django.core.management.base import CommandError

    Assistant.objects.create(name="Pizza", instructions="x")
    with pytest.raises(CommandError, match="No assistant is called or numbered 'Nope'"):
        call_command("test_assistant", "Nope")
    with pytest.raises(CommandError, match="has no scenarios to run"):
        call_command("test_assistant", "Pizza")
    _booking(Assistant.objects.get(name="Pizza"))
    with pytest.raises(CommandError, match="has no scenario nope"):
        call_command("test_assistant", "Pizza", "--scenario", "nope")


# -- admin ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_admin_runs_all_scenarios_in_the_background_with_progress_and_results(admin_client, settings, text_model):
    import time

    from django.core.files.uploadedfile import SimpleUploadedFile

    assistant = Assistant.objects.create(name="Pizza", instructions="Take bookings.")
    page = admin_client.post(
        "/admin/scenarios/scenario/import/",
        {
            "assistant": assistant.pk,
            "file": SimpleUploadedFile("s.yaml", YAML.replace("repeat: 2", "repeat: 1").encode()),
        },
        follow=True,
    )
    assert "Imported: 1 new, 0 updated." in page.content.decode()
    text_model.scripts["caller_turn"] = _caller(("A table for four on Friday at seven.", False), ("Bye.", False))
    text_model.scripts["judgement"] = [
        {"results": [{"criterion": "c", "passed": False, "reason": "Never said Friday."}]}
    ]
    server, _ = realtime(
        settings,
        reply_texts=["Booked.", "Bye!"],
        reply_tool_calls=[{"name": "book_table", "arguments": {"guests": 4}}, None, {"name": "end_call"}, None],
    )
    try:
        page = admin_client.post(f"/admin/scenarios/scenario/run/{assistant.pk}/", follow=True)
        run = assistant.scenario_runs.get()
        assert "It runs in the background now." in page.content.decode()
        assert f"/admin/scenarios/scenariorun/{run.pk}/progress.json" in page.content.decode()
        deadline = time.monotonic() + 10
        while (progress := admin_client.get(f"/admin/scenarios/scenariorun/{run.pk}/progress.json").json())[
            "status"
        ] in ("queued", "running"):
            assert time.monotonic() < deadline, progress
            time.sleep(0.05)  # the run is in another thread of this process; its progress is only in the DB
    finally:
        server.__exit__()
    assert progress == {"status": "done", "done": 1, "total": 1, "passed": 0, "error": ""}
    result = admin_client.get(f"/admin/scenarios/scenariorun/{run.pk}/change/").content.decode()
    assert "book-table: 0 of 1 passed (0%)" in result
    assert "confirms the date and time before ending: Never said Friday." in result
    assert "A table for four on Friday at seven." in result
    # The assistant's page shows the version × scenario matrix, its version linking to the revision.
    page = admin_client.get(f"/admin/assistants/assistant/{assistant.pk}/change/").content.decode()
    assert "Results per version" in page and f"/admin/assistants/assistantrevision/{run.revision_id}/change/" in page
    assert "<td>0%</td>" in page
    exported = admin_client.get(f"/admin/scenarios/scenario/export/{assistant.pk}/")
    assert exported["Content-Type"].startswith("application/yaml") and b"id: book-table" in exported.content


@pytest.mark.django_db
def test_admin_import_says_what_is_wrong(admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    assistant = Assistant.objects.create(name="Pizza", instructions="x")
    page = admin_client.post(
        "/admin/scenarios/scenario/import/",
        {"assistant": assistant.pk, "file": SimpleUploadedFile("s.yaml", b"- id: a\n")},
        follow=True,
    )
    assert "Scenario &#x27;a&#x27;: caller.instructions is missing." in page.content.decode()
    page = admin_client.post(f"/admin/scenarios/scenario/run/{assistant.pk}/", follow=True)
    assert "Pizza has no scenarios yet: add one first." in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_worker_job_runs_queued_runs_one_by_one(settings, text_model):
    from scenarios.jobs import run_queued_scenarios

    assistant = Assistant.objects.create(name="Pizza", instructions="x")
    _booking(assistant, judge=[], tools_called=[], ends_with="caller_hangup", max_turns=None)
    text_model.scripts["caller_turn"] = _caller(("Bye.", True))
    assert run_queued_scenarios() == ""
    run = run_create(assistant=assistant)
    server, _ = realtime(settings)
    try:
        summary = run_queued_scenarios()
    finally:
        server.__exit__()
    assert summary == f"scenario run {run.pk}: 1/1 passed (Finished)"
    assert run_queued_scenarios() == ""


@pytest.mark.django_db(transaction=True)
def test_a_prompt_change_queues_a_run_against_the_new_version_when_the_assistant_asks(settings):
    from scenarios.models import ScenarioRun, ScenarioSettings

    settings.SCENARIO_RUNS_IN_WORKER = True  # queued for the worker: nothing runs in this test
    assistant = Assistant.objects.create(name="Pizza", instructions="Take bookings.")
    _booking(assistant)
    assistant.voice = "cedar"
    assistant.save()  # not the prompt: no run
    assistant.instructions = "Take bookings politely."
    assistant.save()  # the prompt, but the assistant did not ask
    assert not ScenarioRun.objects.exists()
    ScenarioSettings.objects.create(assistant=assistant, run_on_prompt_change=True)
    assistant.instructions = "Take bookings very politely."
    assistant.save()
    run = ScenarioRun.objects.get()
    assert run.status == RunStatus.QUEUED and run.total == 1
    assert run.revision == assistant.revisions.order_by("-number").first()


@pytest.mark.django_db(transaction=True)
def test_an_attempt_that_cannot_reach_openai_fails_with_the_reason(settings, text_model):
    settings.OPENAI_REALTIME_URL = "ws://127.0.0.1:9/v1/realtime"  # nothing listens there
    assistant = Assistant.objects.create(name="Pizza", instructions="x")
    _booking(assistant)
    run = run_execute(run_pk=run_create(assistant=assistant).pk)
    attempt = run.attempts.get()
    assert run.status == RunStatus.DONE and not attempt.passed and attempt.ended_with == "error"
    assert attempt.error.startswith("Could not connect to OpenAI")
    assert attempt.judge_results == []  # nothing to judge


# -- voice mode -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_voice_mode_without_a_number_fails_the_attempt_with_what_to_do(settings, text_model):
    assistant = Assistant.objects.create(name="Pizza", instructions="x")
    _booking(assistant, mode="voice")
    run = run_execute(run_pk=run_create(assistant=assistant).pk)
    attempt = run.attempts.get()
    assert not attempt.passed and attempt.ended_with == "error" and attempt.mode == "voice"
    assert "give it an active phone number" in attempt.error


def _play_both_sides(caller_marker: str, caller: dict, assistant: dict):
    """An on_send hook: once a session is configured, script it as the caller or as the assistant."""

    def on_send(session, event):
        if event["type"] == "session.updated":
            knobs = caller if caller_marker in (event["session"].get("instructions") or "") else assistant
            for name, value in knobs.items():
                setattr(session, name, list(value))

    return on_send


@pytest.mark.django_db(transaction=True)
def test_voice_scenario_phones_the_real_server_and_passes_from_the_calls_records(
    settings, daphne_server, text_model, admin_client
):
    from assistants.models import PhoneNumber
    from calls.models import Call
    from insights.export import filtered_calls

    assistant = Assistant.objects.create(
        name="Pizza", instructions="Take bookings.", welcome_message="Bella Pizza, how can I help?", language="en"
    )
    PhoneNumber.objects.create(number="+46700000077", assistant=assistant)
    from insights.models import ModelPrice

    prices = dict(text_input=4, cached_text_input=0, text_output=24, audio_input=32, audio_output=64)
    ModelPrice.objects.update_or_create(model="gpt-realtime-2.1", defaults={**prices, "cached_audio_input": 0})
    scenario = _booking(
        assistant,
        mode="voice",
        caller_instructions="Eva wants a table for four on Friday at seven.",
        tools_called=[{"name": "book_table", "arguments": {"guests": 4}}, {"name": "end_call"}],
        max_turns=2,
        max_first_audio_ms=5000,
    )
    said = "A table for four on Friday at seven, please."
    text_model.scripts["judgement"] = [{"results": [{"criterion": "c", "passed": True, "reason": "Confirmed."}]}]
    settings.OPENAI_REALTIME_URL = daphne_server.openai_url
    settings.SCENARIO_VOICE_URL = f"ws://127.0.0.1:{daphne_server.port}"
    settings.ELKS_WS_SECRET = daphne_server.secret
    hook = _play_both_sides(
        "Eva wants a table",
        caller={"reply_texts": [said, "Thanks, bye."], "reply_tool_calls": [None, {"name": "hang_up"}]},
        assistant={
            "reply_texts": ["Bella Pizza, how can I help?", "Booked: four on Friday at seven. Goodbye!"],
            "reply_tool_calls": [None, {"name": "book_table", "arguments": {"guests": 4}}, {"name": "end_call"}, None],
            "caller_transcripts": [said],
        },
    )
    server = ThreadedRealtime(port=daphne_server.openai_port, answer_ms=400, chunk_interval_ms=0, on_send=hook)
    fake = server.__enter__()
    try:
        run = run_execute(run_pk=run_create(assistant=assistant).pk)
    finally:
        server.__exit__()
    attempt = run.attempts.get()
    assert attempt.error == "", attempt.error
    assert attempt.mode == "voice" and attempt.ended_with == "assistant_hangup"
    assert [c["passed"] for c in attempt.check_results] == [True] * 6, attempt.check_results
    assert attempt.passed and run.passed == 1
    assert attempt.transcript[:3] == [
        {"role": "assistant", "text": "Bella Pizza, how can I help?"},
        {"role": "caller", "text": said},
        {"role": "assistant", "text": "Booked: four on Friday at seven. Goodbye!"},
    ]
    assert attempt.tool_calls == [
        {"name": "book_table", "arguments": {"guests": 4}},
        {"name": "end_call", "arguments": {}},
    ]
    # The call went through the real server, and it is a test call no export counts.
    call = Call.objects.get(pk=attempt.call_id)
    assert call.call_id.startswith("scenario-") and call.is_test and call.assistant_id == assistant.pk
    assert not filtered_calls().filter(pk=call.pk).exists()
    # Its cost: the assistant's side as the server priced the call, plus the caller's session.
    assert call.cost and attempt.cost_usd > call.cost
    page = admin_client.get(f"/admin/scenarios/scenariorun/{run.pk}/change/").content.decode()
    assert f"/admin/calls/call/{call.pk}/change/" in page
    # Two sessions: the assistant's (its instructions) and the caller's (its own voice, a hang_up tool).
    updates = [next(e for _, e in s.received if e["type"] == "session.update")["session"] for s in fake.sessions]
    caller = next(u for u in updates if "Eva wants a table" in u["instructions"])
    assert caller["audio"]["output"]["voice"] == settings.SCENARIO_CALLER_VOICE
    assert [t["name"] for t in caller["tools"]] == ["hang_up"]
    assert any(u["instructions"] == "Take bookings." for u in updates)
    # The server answered book_table with the scenario's mock.
    outputs = [json.loads(o["output"]) for session in fake.sessions for o in session.function_outputs]
    assert {"ok": True} in outputs
    assert scenario.attempts.count() == 1


@pytest.mark.django_db(transaction=True)
def test_voice_mode_from_the_command_ends_when_the_simulated_caller_hangs_up(settings, daphne_server, capsys):
    from assistants.models import PhoneNumber

    assistant = Assistant.objects.create(name="Shop", instructions="Sell shoes.", welcome_message="Shoe shop!")
    PhoneNumber.objects.create(number="+46700000078", assistant=assistant)
    yaml_text = (
        "- id: just-asking\n  caller: {instructions: Kim asks about the opening hours.}\n"
        "  expect: {ends_with: caller_hangup, max_turns: 1}\n  mode: voice\n"
    )
    assert scenarios_import(assistant=assistant, text=yaml_text) == (1, 0)
    settings.OPENAI_API_KEY = TEST_API_KEY
    settings.OPENAI_REALTIME_URL = daphne_server.openai_url
    settings.SCENARIO_VOICE_URL = f"ws://127.0.0.1:{daphne_server.port}"
    settings.ELKS_WS_SECRET = daphne_server.secret
    hook = _play_both_sides(
        "Kim asks",
        caller={"reply_texts": ["When are you open?"], "reply_tool_calls": [None, {"name": "hang_up"}]},
        assistant={"reply_texts": ["Shoe shop!", "Nine to five."], "caller_transcripts": ["When are you open?"]},
    )
    server = ThreadedRealtime(port=daphne_server.openai_port, answer_ms=300, chunk_interval_ms=0, on_send=hook)
    server.__enter__()
    try:
        call_command("test_assistant", "Shop", "--mode", "voice")
    finally:
        server.__exit__()
    attempt = assistant.scenario_runs.get().attempts.get()
    assert attempt.error == "" and attempt.ended_with == "caller_hangup", (attempt.error, attempt.ended_with)
    assert attempt.passed and attempt.call.is_test
    assert [line["text"] for line in attempt.transcript] == ["Shoe shop!", "When are you open?", "Nine to five."]
    assert "1 of 1 attempts passed" in capsys.readouterr().out


def test_live_audio_plays_what_was_pushed_then_silence_at_any_rate():
    import array

    from calls.testing.caller_audio import LiveAudio

    live = LiveAudio(24000)
    live.push(array.array("h", [1000] * 480))  # 20 ms at 24 kHz
    samples, speech = live.take(80, 8000)  # 10 ms at 8 kHz
    assert speech and len(samples) == 80 and live.pending == 240
    samples, speech = live.take(160, 8000)  # the last 10 ms, then silence
    assert speech and len(samples) == 160 and max(samples[100:]) == 0 and live.pending == 0
    assert live.take(160, 8000) == (array.array("h", [0] * 160), False)
