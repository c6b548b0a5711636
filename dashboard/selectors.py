"""Reads for the dashboard beyond single calls (calls.selectors): setup progress and usage per day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from assistants.models import Assistant, PhoneNumber
from calls.models import Call


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
