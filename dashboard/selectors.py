"""Reads for the dashboard: calls now and lately, one call's conversation, setup progress, usage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from assistants.models import Assistant, PhoneNumber
from calls.models import Call, CallStatus

RECENT_CALLS = 30


def active_calls() -> QuerySet[Call]:
    return Call.objects.filter(status=CallStatus.ACTIVE).select_related("assistant").order_by("-started_at")


def recent_calls(limit: int = RECENT_CALLS) -> list[Call]:
    return list(
        Call.objects.exclude(status=CallStatus.ACTIVE).select_related("assistant").order_by("-started_at")[:limit]
    )


def call_with_transcript(pk: int) -> Call | None:
    return Call.objects.select_related("assistant").prefetch_related("transcript").filter(pk=pk).first()


def call_is_active(pk: int) -> bool:
    return Call.objects.filter(pk=pk, status=CallStatus.ACTIVE).exists()


@dataclass(frozen=True)
class SetupStatus:
    """What the system can tell about the four setup steps."""

    number_mapped: bool
    key_set: bool
    call_received: bool

    @property
    def complete(self) -> bool:
        return self.number_mapped and self.key_set and self.call_received


def setup_status() -> SetupStatus:
    return SetupStatus(
        number_mapped=PhoneNumber.objects.filter(is_active=True, assistant__is_active=True).exists(),
        key_set=bool(settings.OPENAI_API_KEY),
        call_received=Call.objects.filter(is_test=False).exists(),
    )


def assistants_to_try() -> list[Assistant]:
    return list(Assistant.objects.order_by("-is_active", "name"))


@dataclass(frozen=True)
class DailyUsage:
    day: dt.date
    assistant: str
    calls: int
    seconds: float


NO_ASSISTANT = "Not answered"


def daily_usage(days: int = 30, *, today: dt.date | None = None) -> tuple[list[dt.date], list[DailyUsage]]:
    """Phone calls (test calls left out) per local day and assistant over the last `days` days."""
    today = today or timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    rows = (
        Call.objects.filter(is_test=False, started_at__gte=start)
        .annotate(day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "assistant__name")
        .annotate(calls=Count("id"), total=Sum("duration"))
        .order_by("day", "assistant__name")
    )
    usage = [
        DailyUsage(
            day=row["day"],
            assistant=row["assistant__name"] or NO_ASSISTANT,
            calls=row["calls"],
            seconds=row["total"].total_seconds() if row["total"] else 0.0,
        )
        for row in rows
    ]
    return [first + dt.timedelta(days=i) for i in range(days)], usage
