"""Writes about a call's cost, reply times and recording. One transaction each, once per call."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from calls.models import Call

from .latency import Turn, p50_p95
from .models import ModelPrice, TurnLatency
from .pricing import RealtimeUsage, TextUsage, TranscriptionUsage, call_cost

log = logging.getLogger(__name__)

# Recordings of calls whose assistant was deleted are kept this long.
ORPHAN_RECORDING_RETENTION_DAYS = 30


@dataclass(frozen=True)
class InsightsResult:
    cost: object  # Decimal | None
    currency: str
    p50_ms: int | None
    p95_ms: int | None
    missing: list[str] = field(default_factory=list)


def _priced_usage(
    realtime: RealtimeUsage, transcription: TranscriptionUsage, analysis: TextUsage | None = None
) -> tuple[dict, object]:
    """Call.usage and the cost, with the price table as it is now."""
    models = [m for m in (realtime.model, transcription.model, analysis.model if analysis else "") if m]
    prices = {p.model: p.as_price() for p in ModelPrice.objects.filter(model__in=models)}
    cost = call_cost(
        realtime,
        prices.get(realtime.model),
        transcription,
        prices.get(transcription.model),
        analysis,
        prices.get(analysis.model) if analysis else None,
    )
    usage = {"realtime": realtime.as_dict(), "cost": cost.as_dict()}
    if transcription.model:
        usage["transcription"] = transcription.as_dict()
    if analysis is not None and analysis.has_tokens:
        usage["analysis"] = analysis.as_dict()
    return usage, cost


def _analysis_usage(usage: dict) -> TextUsage | None:
    return TextUsage.from_dict(usage["analysis"]) if usage.get("analysis") else None


@transaction.atomic
def call_analysis_cost_add(*, call_pk: int, analysis: TextUsage) -> object:
    """Add an analysis' tokens to the call's usage and price them into its cost (replacing an earlier
    analysis' share, so "Analyse again" bills the latest run); returns that share, or None if unpriced."""
    call = Call.objects.select_for_update().filter(pk=call_pk).only("pk", "usage").first()
    if call is None:
        return None
    data = call.usage or {}
    realtime = RealtimeUsage.from_dict(data.get("realtime"))
    transcription = TranscriptionUsage.from_dict(data.get("transcription"))
    usage, cost = _priced_usage(realtime, transcription, analysis)
    Call.objects.filter(pk=call_pk).update(usage={**data, **usage}, cost=cost.total, cost_currency=cost.currency)
    return cost.parts.get("analysis")


@transaction.atomic
def call_insights_record(
    *, call_pk: int, realtime: RealtimeUsage, transcription: TranscriptionUsage, turns: Iterable[Turn]
) -> InsightsResult:
    """Store a finished call's usage, cost (at today's prices) and reply times per turn."""
    turns = list(turns)
    existing = Call.objects.filter(pk=call_pk).values_list("usage", flat=True).first() or {}
    usage, cost = _priced_usage(realtime, transcription, _analysis_usage(existing))
    p50, p95 = p50_p95([t.reply_ms for t in turns])
    Call.objects.filter(pk=call_pk).update(
        usage=usage,
        cost=cost.total,
        cost_currency=cost.currency,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
    )
    TurnLatency.objects.filter(call_id=call_pk).delete()
    TurnLatency.objects.bulk_create(
        TurnLatency(
            call_id=call_pk,
            turn=t.turn,
            at_ms=t.at_ms,
            reply_ms=t.reply_ms,
            bridge_ms=t.bridge_ms,
            response_id=t.response_id[:64],
        )
        for t in turns
    )
    return InsightsResult(cost.total, cost.currency, p50, p95, cost.missing)


@transaction.atomic
def call_costs_recompute(*, since: dt.datetime | None = None, assistant_id: int | None = None) -> tuple[int, int]:
    """Price past calls again from their stored usage (after prices were corrected); (updated, skipped)."""
    qs = Call.objects.exclude(usage={}).select_for_update()
    if since is not None:
        qs = qs.filter(started_at__gte=since)
    if assistant_id is not None:
        qs = qs.filter(assistant_id=assistant_id)
    updated = skipped = 0
    for call in qs.only("pk", "usage"):
        data = call.usage or {}
        if "realtime" not in data:
            skipped += 1
            continue
        realtime = RealtimeUsage.from_dict(data.get("realtime"))
        transcription = TranscriptionUsage.from_dict(data.get("transcription"))
        usage, cost = _priced_usage(realtime, transcription, _analysis_usage(data))
        Call.objects.filter(pk=call.pk).update(usage={**data, **usage}, cost=cost.total, cost_currency=cost.currency)
        updated += 1
    return updated, skipped


def call_recording_attach(*, call_pk: int, path: str) -> str:
    """Store the WAV at `path` as the call's recording; its storage name, or "" if the call is gone.

    The file goes through the call's storage (local media by default, any Django storage backend
    in production). If recording it on the call fails, the stored file is removed again.
    """
    call = Call.objects.filter(pk=call_pk).only("pk", "started_at", "recording").first()
    if call is None:
        return ""
    field = call.recording
    with open(path, "rb") as fh:
        field.save(f"call-{call_pk}.wav", File(fh), save=False)
    name = field.name
    try:
        with transaction.atomic():
            updated = Call.objects.filter(pk=call_pk).update(recording=name)
    except Exception:
        field.storage.delete(name)
        raise
    if not updated:
        field.storage.delete(name)
        return ""
    return name


def recordings_expired(*, now: dt.datetime | None = None) -> list[Call]:
    """Calls whose recording is older than their assistant's retention period."""
    from assistants.models import Assistant

    now = now or timezone.now()
    with_recording = Call.objects.exclude(recording="").only("pk", "started_at", "recording")
    expired: list[Call] = []
    for assistant_id, days in Assistant.objects.values_list("pk", "recording_retention_days"):
        cutoff = now - dt.timedelta(days=days)
        expired += with_recording.filter(assistant_id=assistant_id, started_at__lt=cutoff)
    cutoff = now - dt.timedelta(days=ORPHAN_RECORDING_RETENTION_DAYS)
    expired += with_recording.filter(assistant__isnull=True, started_at__lt=cutoff)
    return expired


def recording_delete(*, call: Call) -> bool:
    """Delete a call's recording file and forget it; True if a file was there."""
    name, storage = call.recording.name, call.recording.storage
    existed = bool(name) and storage.exists(name)
    if existed:
        storage.delete(name)
    with transaction.atomic():
        Call.objects.filter(pk=call.pk).update(recording="")
    return existed


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
