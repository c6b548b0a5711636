"""Writes and reads of call analyses (CallAnalysis). One transaction each; the model call is elsewhere."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from calls.models import Call

from .models import AnalysisStatus, CallAnalysis

# A "running" analysis older than this was left by a process that stopped; it is picked up again.
STALE_AFTER = dt.timedelta(minutes=15)


def _wanted(call: Call) -> bool:
    return call.assistant is not None and call.assistant.analysis_enabled


@transaction.atomic
def call_analysis_queue(*, call_pk: int, force: bool = False) -> int | None:
    """Ask for an analysis of a finished call (if its assistant wants one); the analysis' pk or None.

    An existing analysis is kept unless `force` (then it waits to run again, keeping its attempts).
    """
    call = Call.objects.select_related("assistant").filter(pk=call_pk).first()
    if call is None or not (_wanted(call) or force):
        return None
    analysis, created = CallAnalysis.objects.get_or_create(call=call)
    if not created and force:
        CallAnalysis.objects.filter(pk=analysis.pk).update(status=AnalysisStatus.PENDING, error="")
    return analysis.pk


@transaction.atomic
def call_analysis_claim(*, pk: int) -> bool:
    """Take a waiting analysis for running (only one process ever gets it)."""
    now = timezone.now()
    return bool(
        CallAnalysis.objects.filter(pk=pk, status=AnalysisStatus.PENDING).update(
            status=AnalysisStatus.RUNNING, started_at=now, attempts=F("attempts") + 1
        )
    )


@transaction.atomic
def pending_analyses(*, limit: int = 20) -> list[int]:
    """Waiting analyses, oldest first (stale running ones are put back first). SKIP LOCKED on PostgreSQL,
    so several workers share the queue without waiting for each other."""
    stale = timezone.now() - STALE_AFTER
    CallAnalysis.objects.filter(status=AnalysisStatus.RUNNING, started_at__lt=stale).update(
        status=AnalysisStatus.PENDING
    )
    qs = CallAnalysis.objects.filter(status=AnalysisStatus.PENDING).order_by("created_at")
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    return list(qs.values_list("pk", flat=True)[:limit])


@dataclass(frozen=True)
class AnalysisResult:
    summary: str
    outcome: str
    reason: str
    data: dict[str, Any]


@transaction.atomic
def call_analysis_done(
    *, pk: int, model: str, result: AnalysisResult, usage: dict[str, int], cost: Decimal | None
) -> None:
    CallAnalysis.objects.filter(pk=pk).update(
        status=AnalysisStatus.DONE,
        model=model,
        summary=result.summary,
        outcome=result.outcome,
        reason=result.reason,
        data=result.data,
        error="",
        input_tokens=usage.get("input_tokens", 0),
        cached_tokens=usage.get("cached_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        cost=cost,
        finished_at=timezone.now(),
    )


@transaction.atomic
def call_analysis_failed(
    *, pk: int, model: str, error: str, usage: dict[str, int] | None = None, cost: Decimal | None = None
) -> None:
    """Keep why it failed (for the admin page); the call's own record stays as it is."""
    usage = usage or {}
    CallAnalysis.objects.filter(pk=pk).update(
        status=AnalysisStatus.FAILED,
        model=model,
        error=error[:2000],
        input_tokens=usage.get("input_tokens", 0),
        cached_tokens=usage.get("cached_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        cost=cost,
        finished_at=timezone.now(),
    )


def analysis_json(call_pk: int) -> dict[str, Any] | None:
    """The `analysis` object of the API and the webhook (None: the call is not analysed)."""
    analysis = CallAnalysis.objects.filter(call_id=call_pk).first()
    return analysis.as_json() if analysis else None
