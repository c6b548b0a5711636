"""A call's start: the assistant is handed over before anything is written, in as few queries as possible."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from assistants.models import Assistant, AssistantRevision, PhoneNumber
from calls import services
from calls.live import elks
from calls.models import Call
from calls.services import call_start
from calls.store import DbCallStore

NUMBER = "+46700000001"
CALLER = "+46709999999"


@pytest.fixture
def assistant(db):
    assistant = Assistant.objects.create(name="Reception", instructions="Answer for Pizza Bella.")
    PhoneNumber.objects.create(number=NUMBER, assistant=assistant)
    return assistant


def test_the_assistant_is_handed_over_before_its_revision_and_the_call_are_looked_up_or_written(assistant):
    seen = []

    def on_assistant(config):
        selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
        seen.append((config, Call.objects.count(), selects))

    with CaptureQueriesContext(connection) as queries:
        pk, config, refusal = call_start(call_id="s-1", from_number=CALLER, to_number=NUMBER, on_assistant=on_assistant)
    [(early, calls_then, selects)] = seen
    assert (early.id, early.instructions, early.revision_id) == (assistant.pk, "Answer for Pizza Bella.", None)
    assert calls_then == 0 and refusal == ""
    # Outbound pairing, the assistant, its webhook tools and whether it has knowledge documents
    # (OpenAI's session is set up with its tools): nothing else stands between the hello and OpenAI.
    assert len(selects) == 4, selects
    assert "knowledge_document" in selects[-1]
    assert early.extra == config.extra
    revision = AssistantRevision.objects.get(assistant=assistant)
    assert config.revision_id == revision.pk == Call.objects.get(pk=pk).revision_id
    assert config.extra["direction"] == "inbound"


def test_refused_and_unknown_calls_are_recorded_without_an_assistant(assistant):
    told = []
    pk, config, refusal = call_start(
        call_id="s-2", from_number=CALLER, to_number="+46700000099", on_assistant=told.append
    )
    call = Call.objects.get(pk=pk)
    assert config is None and "No active assistant answers +46700000099" in refusal
    assert (call.status, call.end_reason, call.duration.total_seconds()) == ("rejected", "unknown_number", 0)
    pk, config, refusal = call_start(
        call_id="s-3",
        from_number=CALLER,
        to_number=NUMBER,
        refuse_reason="limit",
        refuse_detail="Too many calls.",
        on_assistant=told.append,
    )
    call = Call.objects.get(pk=pk)
    assert (config, refusal, told) == (None, "Too many calls.", [])
    assert (call.status, call.end_reason, call.assistant_id, call.duration.total_seconds()) == (
        "rejected",
        "limit",
        assistant.pk,
        0,
    )
    # A repeated hello is refused, and the first call keeps its record.
    assert call_start(call_id="s-3", from_number=CALLER, to_number=NUMBER)[:2] == (None, None)


def test_a_test_call_names_its_assistant_even_an_inactive_one(assistant):
    Assistant.objects.filter(pk=assistant.pk).update(is_active=False)
    told = []
    pk, config, _ = call_start(
        call_id="s-4",
        from_number="browser:ann",
        to_number=NUMBER,
        assistant_id=assistant.pk,
        is_test=True,
        on_assistant=told.append,
    )
    assert [c.id for c in told] == [assistant.pk] and config.id == assistant.pk
    assert Call.objects.get(pk=pk).is_test
    # Through its number, an inactive assistant answers no call.
    assert call_start(call_id="s-5", from_number=CALLER, to_number=NUMBER)[1] is None


@pytest.mark.django_db(transaction=True)
async def test_a_retried_start_hands_the_assistant_over_once(assistant, monkeypatch):
    """The database failed after the assistant was handed over: the retry must not connect twice."""
    real = services.call_start
    attempts = []

    def flaky(**kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            kwargs["on_assistant"](object())  # handed over, then the insert fails
            raise OperationalError("database is locked (injected)")
        return real(**kwargs)

    monkeypatch.setattr(services, "call_start", flaky)
    told = []
    hello = elks.parse_hello({"t": "hello", "callid": "s-6", "from": CALLER, "to": NUMBER})
    opened = await DbCallStore().open(hello, on_assistant=told.append)
    assert len(attempts) == 2 and len(told) == 1 and opened.assistant is not None
    assert await database_sync_to_async(Call.objects.filter(call_id="s-6").count)() == 1


@pytest.mark.django_db(transaction=True)
async def test_database_threads_keep_their_sqlite_connection():
    """Opening a SQLite connection (schema, statements) would cost each call's start again."""
    from django.db.backends.signals import connection_created

    from calls.db import _db_threads, run_db

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's connections come from its pool")
    opened = []

    def count(sender, connection, **kwargs):
        opened.append(connection)

    connection_created.connect(count)
    try:
        for _ in range(20):
            await run_db(lambda: Call.objects.exists())()
    finally:
        connection_created.disconnect(count)
    assert len(opened) <= _db_threads._max_workers


def test_the_answered_leg_of_an_outbound_call_is_answered_by_the_assistant_that_placed_it(assistant):
    from tools.models import OutboundCall

    sales = Assistant.objects.create(name="Sales", instructions="You call customers.")
    placed = OutboundCall.objects.create(
        assistant=sales, to_number=CALLER, from_number=NUMBER, status="calling", elks_call_id="c-1"
    )
    told = []
    pk, config, _ = call_start(call_id="c-1", from_number=NUMBER, to_number=CALLER, on_assistant=told.append)
    assert [c.id for c in told] == [sales.pk] and config.id == sales.pk
    assert config.extra["direction"] == "outbound" and config.extra["outbound_call_id"] == placed.pk
    placed.refresh_from_db()
    assert (placed.status, placed.call_id, placed.paired_by) == ("answered", pk, "callid")
    # Another leg with the same id finds it claimed: an ordinary call to the dialled number.
    told.clear()
    _, config, _ = call_start(call_id="c-2", from_number=CALLER, to_number=NUMBER, on_assistant=told.append)
    assert [c.id for c in told] == [assistant.pk] and config.extra["direction"] == "inbound"


def test_a_leg_whose_outbound_call_was_claimed_meanwhile_is_an_ordinary_call(assistant, monkeypatch):
    from tools import call_start as tools_call_start
    from tools import models as tools_models

    sales = Assistant.objects.create(name="Sales", instructions="You call customers.")
    tools_models.OutboundCall.objects.create(
        assistant=sales, to_number=NUMBER, from_number=CALLER, status="calling", elks_call_id="c-3"
    )
    monkeypatch.setattr(tools_call_start, "outbound_call_claim", lambda **kwargs: None)  # another process was first
    told = []
    pk, config, _ = call_start(call_id="c-3", from_number=CALLER, to_number=NUMBER, on_assistant=told.append)
    assert [c.id for c in told] == [assistant.pk] and config.extra["direction"] == "inbound"
    assert Call.objects.get(pk=pk).direction == "inbound"
