"""The Responses client (insights.llm) against the fake Responses API on a real socket."""

from __future__ import annotations

import pytest

from calls.testing.fake_responses import FakeResponses, request_problems
from insights.llm import StructuredResponseError, structured_response

SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "count": {"type": ["number", "null"]}},
    "required": ["summary", "count"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def fake_responses():
    fake = FakeResponses.start()
    yield fake
    fake.stop()


@pytest.fixture
def responses_api(fake_responses, settings):
    fake_responses.reset()
    settings.OPENAI_BASE_URL = fake_responses.base_url
    settings.OPENAI_API_KEY = "sk-test"
    settings.ANALYSIS_MAX_RETRIES = 2
    settings.ANALYSIS_TIMEOUT_SECONDS = 5.0
    return fake_responses


def test_request_shape_and_structured_answer(responses_api):
    responses_api.script({"summary": "Booked a table.", "count": 4})
    data, usage = structured_response("gpt-5-mini", "Summarise.", "Caller: hi", SCHEMA, name="call_analysis")
    assert data == {"summary": "Booked a table.", "count": 4}
    assert usage == {"input_tokens": 1200, "cached_tokens": 200, "output_tokens": 80}
    (body,) = responses_api.requests
    assert body["model"] == "gpt-5-mini" and body["instructions"] == "Summarise." and body["input"] == "Caller: hi"
    assert body["text"]["format"] == {"type": "json_schema", "name": "call_analysis", "schema": SCHEMA, "strict": True}
    assert responses_api.headers[0]["authorization"] == "Bearer sk-test"
    assert responses_api.problems == []


def test_rate_limit_then_success_is_retried(responses_api):
    responses_api.script("429", "500", {"summary": "ok", "count": None})
    data, _ = structured_response("gpt-5-mini", "x", "y", SCHEMA)
    assert data["summary"] == "ok"
    assert len(responses_api.requests) == 3


def test_timeout_gives_a_reason(responses_api, settings):
    responses_api.timeout_seconds = 1.0
    responses_api.script("timeout")
    with pytest.raises(StructuredResponseError, match="did not answer in time"):
        structured_response("gpt-5-mini", "x", "y", SCHEMA, timeout=0.3, max_retries=1)
    assert len(responses_api.requests) == 2


def test_malformed_and_refused_answers_give_reasons(responses_api):
    responses_api.script("malformed")
    with pytest.raises(StructuredResponseError, match="not JSON") as exc:
        structured_response("gpt-5-mini", "x", "y", SCHEMA)
    assert exc.value.usage["input_tokens"] == 1200
    responses_api.script("refusal")
    with pytest.raises(StructuredResponseError, match="refused"):
        structured_response("gpt-5-mini", "x", "y", SCHEMA)


def test_fake_rejects_a_request_that_is_not_strict(responses_api):
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    with pytest.raises(StructuredResponseError, match=r"400.*additionalProperties must be false"):
        structured_response("gpt-5-mini", "x", "y", loose)
    assert request_problems({"model": "m", "input": "i", "text": {}}) == [
        "text.format.type is not json_schema",
        "text.format.strict is not true",
        "text.format.name is missing",
        "text.format.schema is not an object schema",
    ]
