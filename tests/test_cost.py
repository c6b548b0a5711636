"""What a call cost: usage arithmetic against the reference's formula and price examples, the seeded
price table, the service that stores it, and where people see it in admin."""

from __future__ import annotations

import asyncio
import importlib
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from assistants.models import Assistant
from calls.models import Call, CallStatus
from insights.latency import Turn
from insights.models import ModelPrice
from insights.pricing import Price, RealtimeUsage, TranscriptionUsage, call_cost, realtime_cost, transcription_cost
from insights.services import call_insights_record
from tests.bridge_helpers import fake_openai, make_assistant, simulator, wait_call_ended

# shared/reference/openai-realtime-ga.md §6, USD per 1M tokens.
GPT_21 = Price(
    "gpt-realtime-2.1",
    text_input=Decimal("4.00"),
    cached_text_input=Decimal("0.40"),
    text_output=Decimal("24.00"),
    audio_input=Decimal("32.00"),
    cached_audio_input=Decimal("0.40"),
    audio_output=Decimal("64.00"),
)
GPT_21_MINI = Price(
    "gpt-realtime-2.1-mini",
    text_input=Decimal("0.60"),
    cached_text_input=Decimal("0.06"),
    text_output=Decimal("2.40"),
    audio_input=Decimal("10.00"),
    cached_audio_input=Decimal("0.30"),
    audio_output=Decimal("20.00"),
)


def usage(text_in=0, audio_in=0, cached_text=0, cached_audio=0, text_out=0, audio_out=0) -> dict:
    """A `response.done` usage object in the GA shape."""
    return {
        "total_tokens": text_in + audio_in + text_out + audio_out,
        "input_tokens": text_in + audio_in,
        "output_tokens": text_out + audio_out,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens": cached_text + cached_audio,
            "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": cached_audio, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


def test_responses_are_summed_and_priced_by_the_reference_formula():
    total = RealtimeUsage(model="gpt-realtime-2.1")
    total.add(usage(text_in=1000, audio_in=200, text_out=50, audio_out=400))
    total.add(usage(text_in=1100, audio_in=700, cached_text=1000, cached_audio=200, text_out=30, audio_out=600))
    total.add(None)  # a response without usage adds nothing
    assert (total.responses, total.input_text_tokens, total.cached_text_tokens) == (2, 2100, 1000)
    assert (total.input_audio_tokens, total.cached_audio_tokens) == (900, 200)
    assert (total.output_text_tokens, total.output_audio_tokens) == (80, 1000)
    # (2100-1000)·4 + 1000·0.4 + (900-200)·32 + 200·0.4 + 80·24 + 1000·64, per million
    expected = Decimal(1100 * 4 + 400 + 700 * 32 + 80 + 80 * 24 + 64000) / 1_000_000
    assert realtime_cost(total, GPT_21) == expected == Decimal("0.0932")


def test_cached_tokens_without_a_breakdown_count_as_text_first():
    total = RealtimeUsage()
    raw = usage(text_in=300, audio_in=500)
    raw["input_token_details"]["cached_tokens"] = 400
    del raw["input_token_details"]["cached_tokens_details"]
    total.add(raw)
    assert (total.cached_text_tokens, total.cached_audio_tokens) == (300, 100)


def conversation(turns=8, caller_s=60, bot_s=75, instructions=1500, cached=True) -> RealtimeUsage:
    """The reference's rough example: a 3-minute call, 60 s of caller speech, 75 s of bot speech,
    8 turns, 1.5k tokens of instructions and tools. Audio is 10 tokens/s in and 20 tokens/s out; the
    whole conversation is re-read every turn, and with good caching all but the newest caller audio
    (and the first turn's instructions) is a cache hit."""
    caller, bot = caller_s * 10 // turns, bot_s * 20 // turns
    total = RealtimeUsage()
    for k in range(1, turns + 1):
        audio_in = caller * k + bot * (k - 1)
        total.add(
            usage(
                text_in=instructions,
                audio_in=audio_in,
                cached_text=instructions if cached and k > 1 else 0,
                cached_audio=audio_in - caller if cached else 0,
                audio_out=bot,
            )
        )
    return total


def test_reference_example_costs_about_13_cents_on_gpt_realtime_2_1():
    call = conversation()
    cost = realtime_cost(call, GPT_21)
    assert Decimal("0.12") <= cost <= Decimal("0.14")  # reference: ≈ $0.13 per call, ≈ $0.045/min
    assert Decimal("0.040") <= cost / 3 <= Decimal("0.047")
    audio_out = call.output_audio_tokens * GPT_21.audio_output / 1_000_000
    assert Decimal("0.65") <= audio_out / cost <= Decimal("0.80")  # "audio output is ~70% of it"


def test_reference_example_costs_about_4_cents_on_the_mini_model():
    assert Decimal("0.035") <= realtime_cost(conversation(), GPT_21_MINI) <= Decimal("0.045")  # reference: ≈ $0.04


def test_without_cache_hits_the_reference_example_roughly_triples():
    ratio = realtime_cost(conversation(cached=False), GPT_21) / realtime_cost(conversation(), GPT_21)
    assert Decimal("2.6") <= ratio <= Decimal("3.4")


def test_transcription_by_tokens_and_by_duration():
    mini = Price(
        "gpt-4o-mini-transcribe",
        text_input=Decimal("1.25"),
        audio_input=Decimal("3.00"),
        text_output=Decimal("5.00"),
    )
    tokens = TranscriptionUsage(model=mini.model)
    tokens.add(
        {
            "type": "tokens",
            "input_tokens": 120,
            "output_tokens": 40,
            "total_tokens": 160,
            "input_token_details": {"text_tokens": 20, "audio_tokens": 100},
        }
    )
    assert transcription_cost(tokens, mini) == Decimal(20 * 1.25 + 100 * 3 + 40 * 5) / 1_000_000

    by_time = TranscriptionUsage(model="gpt-transcribe")
    by_time.add({"type": "duration", "seconds": 90})
    by_time.add({"type": "duration", "seconds": 30})
    per_minute = Price("gpt-transcribe", per_minute=Decimal("0.0045"))
    assert (by_time.items, by_time.seconds) == (2, 120.0)
    assert transcription_cost(by_time, per_minute) == Decimal("0.0090")


def test_a_call_without_a_price_says_what_is_missing():
    realtime = conversation(turns=2)
    transcription = TranscriptionUsage(model="gpt-new-transcribe")
    transcription.add({"type": "duration", "seconds": 12})
    cost = call_cost(realtime, GPT_21, transcription, None)
    assert cost.total == cost.parts["realtime"] and "transcription" not in cost.parts
    assert cost.missing == ["gpt-new-transcribe: no price in the price table"]
    nothing = call_cost(realtime, None)
    assert nothing.total is None and nothing.missing == ["realtime: no price in the price table"]
    other_currency = call_cost(realtime, GPT_21, transcription, Price("gpt-new-transcribe", "EUR", per_minute=1))
    assert other_currency.missing == ["gpt-new-transcribe: priced in EUR, not USD"]


@pytest.mark.django_db
def test_migration_seeds_the_reference_prices():
    rows = {p.model: p for p in ModelPrice.objects.all()}
    for price in (GPT_21, GPT_21_MINI):
        seeded = rows[price.model].as_price()
        assert seeded.currency == "USD" and rows[price.model].checked
        for name in Price.REALTIME_FIELDS:
            assert getattr(seeded, name) == getattr(price, name), (price.model, name)
    assert rows["gpt-realtime-1.5"].text_output == Decimal("16.00")
    assert rows["gpt-realtime-2"].audio_output == Decimal("64.00")
    for model in ("gpt-4o-mini-transcribe", "gpt-4o-transcribe", "gpt-transcribe"):
        assert rows[model].kind == "transcription" and rows[model].per_minute is not None
    assert not rows["gpt-4o-mini-transcribe"].checked  # an estimate, marked "check and edit"
    for row in rows.values():
        row.full_clean()  # every seeded row is valid as admin would save it


@pytest.fixture
def call(db):
    assistant = Assistant.objects.create(name="Reception", instructions="Hi.")
    return Call.objects.create(
        call_id="cost-1",
        assistant=assistant,
        started_at=timezone.now(),
        status=CallStatus.COMPLETED,
        duration=timezone.timedelta(minutes=3),
    )


def test_service_stores_usage_cost_and_reply_times(call):
    realtime = conversation()
    realtime.model = "gpt-realtime-2.1"
    transcription = TranscriptionUsage(model="gpt-transcribe")
    transcription.add({"type": "duration", "seconds": 60})
    turns = [Turn(i + 1, i * 10_000, ms, 0.2) for i, ms in enumerate([500, 700, 900, 2000])]
    result = call_insights_record(call_pk=call.pk, realtime=realtime, transcription=transcription, turns=turns)
    call.refresh_from_db()
    expected = realtime_cost(realtime, GPT_21) + Decimal("0.0045")
    assert call.cost == result.cost == expected.quantize(Decimal("0.0001"))
    assert call.cost_currency == "USD"
    assert call.usage["realtime"]["output_audio_tokens"] == realtime.output_audio_tokens
    assert call.usage["transcription"]["seconds"] == 60
    assert call.usage["cost"]["prices"]["gpt-realtime-2.1"]["audio_output"] == "64.0000"
    assert (call.latency_p50_ms, call.latency_p95_ms) == (800, 1835)
    assert list(call.turn_latencies.values_list("reply_ms", flat=True)) == [500, 700, 900, 2000]


def test_recompute_uses_corrected_prices(call):
    realtime = RealtimeUsage(model="gpt-realtime-2.1")
    realtime.add(usage(audio_out=1_000_000))
    call_insights_record(call_pk=call.pk, realtime=realtime, transcription=TranscriptionUsage(), turns=[])
    call.refresh_from_db()
    assert call.cost == Decimal("64.0000")
    ModelPrice.objects.filter(model="gpt-realtime-2.1").update(audio_output=Decimal("50.00"))
    call_command("recompute_call_costs", stdout=open("/dev/null", "w"))
    call.refresh_from_db()
    assert call.cost == Decimal("50.0000")


def test_cost_in_the_call_list_on_the_call_page_and_per_assistant_and_day(admin_client, call):
    realtime = RealtimeUsage(model="gpt-realtime-2.1")
    realtime.add(usage(text_in=1000, audio_out=2000))
    call_insights_record(call_pk=call.pk, realtime=realtime, transcription=TranscriptionUsage(), turns=[])
    other = Call.objects.create(
        call_id="cost-2",
        assistant=call.assistant,
        started_at=timezone.now(),
        status=CallStatus.COMPLETED,
        duration=timezone.timedelta(minutes=1),
        cost=Decimal("0.0100"),
    )
    listing = admin_client.get(reverse("admin:calls_call_changelist")).content.decode()
    assert "$0.1320" in listing and "$0.0100" in listing  # 1000·4 + 2000·64 per million
    page = admin_client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "Cost and reply time" in page and "gpt-realtime-2.1" in page and "audio out 2000" in page
    summary = admin_client.get(reverse("admin:insights_callcostsummary_changelist")).content.decode()
    assert "Per assistant" in summary and "Reception" in summary and "Per day" in summary
    assert "$0.1420" in summary  # both calls, per assistant and per day
    assert summary.count("$0.1420") >= 3  # totals, per assistant, per day
    assert "4.0" in summary  # minutes
    assert other.pk


def seed_prices() -> None:
    """The migration's price seed again: transactional tests empty every table between tests."""
    from django.apps import apps

    importlib.import_module("insights.migrations.0002_seed_prices").seed(apps, None)


async def test_a_real_call_is_priced_from_what_openai_reported(daphne_server, transactional_db):
    """The fake OpenAI reports usage like the real one; the stored cost is exactly what it adds up to."""
    await sync_to_async(seed_prices)()
    await sync_to_async(make_assistant)("Priced", "+46700000001", transcription_model="gpt-transcribe")
    async with fake_openai(daphne_server, answer_ms=500) as fake:
        sim = simulator(daphne_server, caller_audio=[("silence", 900), ("speech", 600), ("silence", 700)])
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        await session.wait_for("conversation.item.input_audio_transcription.completed", timeout=8)
        await session.wait_for("response.done", predicate=lambda e: len(session.responses) >= 2, timeout=8)
        await sim.wait_played_ms(1000)
        await sim.hang_up()
        result = await task
    call = await wait_call_ended(daphne_server, result.callid)

    expected = RealtimeUsage()
    for response in session.responses:
        expected.add(response["usage"])
    heard = [e for _, e in session.sent if e.get("type") == "conversation.item.input_audio_transcription.completed"]
    seconds = sum(e["usage"]["seconds"] for e in heard)
    assert expected.responses == 2 and seconds > 0
    assert call.usage["realtime"]["output_audio_tokens"] == expected.output_audio_tokens
    assert call.usage["transcription"]["seconds"] == pytest.approx(seconds)
    total = realtime_cost(expected, GPT_21) + Decimal(str(seconds)) / 60 * Decimal("0.0045")
    assert call.cost == total.quantize(Decimal("0.0001")) and call.cost > 0
    assert f"call {result.callid} usage: cost={call.cost} USD" in daphne_server.logs()


def test_prices_are_edited_in_admin_with_a_clear_rule(admin_client):
    url = reverse("admin:insights_modelprice_changelist")
    html = admin_client.get(url).content.decode()
    assert "gpt-realtime-2.1-mini" in html and "gpt-4o-mini-transcribe" in html
    price = ModelPrice.objects.get(model="gpt-realtime-2.1")
    change = reverse("admin:insights_modelprice_change", args=[price.pk])
    assert "Prices per 1 million tokens" in admin_client.get(change).content.decode()
    response = admin_client.post(
        reverse("admin:insights_modelprice_add"),
        {"model": "gpt-realtime-3", "kind": "realtime", "currency": "USD", "text_input": "5"},
    )
    assert response.status_code == 200 and "A voice model needs every token price" in response.content.decode()
