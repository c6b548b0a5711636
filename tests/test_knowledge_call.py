"""`search_knowledge` in a whole call through real daphne: the fake OpenAI calls it and gets passages."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from knowledge import services
from tests.bridge_helpers import NUMBER_A, make_assistant, transcript
from tests.test_tools import call_with_tool, tool_calls

pytestmark = pytest.mark.django_db(transaction=True)

FAQ = """# Opening hours
We are open Monday to Friday 9 to 18, and Saturdays 10 to 14. Closed on Sundays.

# Delivery
We deliver to Södermalm and Kungsholmen. Delivery costs 49 kronor.
"""


def make_knowing_assistant(**fields):
    assistant = make_assistant("Knowing", NUMBER_A, welcome_message="", end_call_enabled=False, **fields)
    document = services.document_create(
        title="Shop FAQ", kind="markdown", text=FAQ, language="en", assistants=[assistant]
    )
    services.document_process(document_pk=document.pk)
    return assistant


async def test_the_model_looks_up_passages_during_a_call(daphne_server):
    await sync_to_async(make_knowing_assistant)(datetime_tool_enabled=False)
    session, output, result, _call = await call_with_tool(
        daphne_server,
        {"name": "search_knowledge", "arguments": {"query": "open on saturday"}, "call_id": "call_k1"},
    )
    [definition] = (await session.wait_for("session.update"))["session"]["tools"]
    assert definition["name"] == "search_knowledge" and "documents" in definition["description"]
    assert output["type"] == "function_call_output" and output["call_id"] == "call_k1"
    answer = json.loads(output["output"])
    assert answer["passages"][0]["document"] == "Shop FAQ – Opening hours"
    assert "Saturdays 10 to 14" in answer["passages"][0]["text"]
    assert len(output["output"]) <= 2400 + 200

    [row] = await tool_calls(result.callid)
    assert (row.name, row.kind, row.status) == ("search_knowledge", "builtin", "ok")
    lines = await transcript(result.callid)
    [shown] = [text for role, text, _ in lines if role == "tool"]
    assert "search_knowledge “open on saturday” →" in shown and "[Shop FAQ – Opening hours]" in shown


async def test_a_swedish_assistant_without_documents_is_not_offered_the_tool(daphne_server):
    await sync_to_async(make_assistant)("Plain", NUMBER_A, welcome_message="", end_call_enabled=False, language="sv")
    session, output, _, _ = await call_with_tool(
        daphne_server, {"name": "search_knowledge", "arguments": {"query": "x"}}
    )
    names = [t["name"] for t in (await session.wait_for("session.update"))["session"]["tools"]]
    assert "search_knowledge" not in names
    assert "no tool called" in json.loads(output["output"])["error"]
