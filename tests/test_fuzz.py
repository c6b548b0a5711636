"""Random and mutated 46elks messages over the real socket: the server answers every healthy call."""

from __future__ import annotations

import asyncio
import base64
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.bridge_helpers import NUMBER_A, fake_openai, make_assistant, simulator, wait_call_ended

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
valid_audio = st.binary(min_size=0, max_size=400).map(lambda b: base64.b64encode(b).decode())
messages = st.one_of(
    st.builds(lambda d: {"t": "audio", "data": d}, valid_audio | st.text(max_size=40) | json_values),
    st.builds(
        lambda extra: {"t": "hello", **extra}, st.dictionaries(st.sampled_from(["callid", "from", "to"]), json_values)
    ),
    st.builds(
        lambda t, extra: {"t": t, **extra},
        st.sampled_from(["sync", "bye", "listening", "sending", "interrupt", "??"]),
        st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    ),
    st.builds(lambda v: {"type": v}, json_values),
    json_values,
).map(lambda m: orjson.dumps(m).decode())
mutated = st.one_of(
    messages,
    messages.map(lambda s: s[: len(s) // 2]),  # truncated
    st.binary(max_size=64),  # binary frames
    st.text(max_size=64),  # any text
)


@pytest.fixture
def assistant(transactional_db):
    return make_assistant("Fuzzed", NUMBER_A, welcome_message="Hi.")


_log_start: list[int] = []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.booleans(), batch=st.lists(mutated, min_size=1, max_size=30))
def test_fuzzed_messages_never_break_the_server(daphne_server, assistant, first, batch):
    if not _log_start:
        _log_start.append(len(daphne_server.log))

    async def run() -> None:
        async with connect(daphne_server.elks_url) as ws:
            if first:
                await ws.send(f'{{"t":"hello","callid":"fuzz-{uuid.uuid4().hex}","from":"+4670","to":"{NUMBER_A}"}}')
            for message in batch:
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    break

    asyncio.run(run())


async def test_server_serves_healthy_calls_after_fuzzing(daphne_server, assistant):
    async with fake_openai(daphne_server, answer_ms=400) as fake:
        sim = simulator(daphne_server, to=NUMBER_A)
        task = asyncio.ensure_future(sim.run())
        await fake.next_session()
        await sim.wait_played_ms(400)
        await sim.hang_up()
        result = await task
    assert result.violations == []
    call = await wait_call_ended(daphne_server, result.callid)
    assert call.status == "completed"
    assert "Traceback" not in "\n".join(daphne_server.log[_log_start[0] if _log_start else 0 :])
