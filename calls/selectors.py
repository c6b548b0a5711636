"""Reads of calls: those in progress, the latest, one call with its conversation."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Call, CallStatus

RECENT_CALLS = 30


def call_list_active() -> QuerySet[Call]:
    return Call.objects.filter(status=CallStatus.ACTIVE).select_related("assistant").order_by("-started_at")


def call_list_recent(limit: int = RECENT_CALLS) -> list[Call]:
    return list(
        Call.objects.exclude(status=CallStatus.ACTIVE).select_related("assistant").order_by("-started_at")[:limit]
    )


def call_get_with_transcript(pk: int) -> Call | None:
    return Call.objects.select_related("assistant").prefetch_related("transcript").filter(pk=pk).first()


def call_is_active(pk: int) -> bool:
    return Call.objects.filter(pk=pk, status=CallStatus.ACTIVE).exists()
