"""HTML for the live parts of the dashboard, rendered by the same templates as the page.

Sync functions (they read the database): the consumer runs them through `run_db`.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from calls import selectors as call_selectors
from calls.models import Call, CallStatus


def call_row(call: Call, *, can_hang_up: bool) -> str:
    return render_to_string("dashboard/_call_row.html", {"call": call, "can_hang_up": can_hang_up})


def _rows(calls: list[Call], *, can_hang_up: bool) -> str:
    return "".join(call_row(call, can_hang_up=can_hang_up) for call in calls)


def snapshot(*, can_hang_up: bool) -> dict[str, Any]:
    """Every row, as on a fresh page: sent when a dashboard (re)connects."""
    active = list(call_selectors.call_list_active())
    return {
        "type": "snapshot",
        "now": timezone.now().isoformat(),
        "active": _rows(active, can_hang_up=can_hang_up),
        "active_count": len(active),
        "recent": _rows(call_selectors.call_list_recent(), can_hang_up=can_hang_up),
    }


def call_update(pk: int, *, can_hang_up: bool) -> dict[str, Any] | None:
    """One call's row as it is now in the database (None if it is gone)."""
    call = Call.objects.select_related("assistant").filter(pk=pk).first()
    if call is None:
        return None
    return {
        "type": "call",
        "call": pk,
        "active": call.status == CallStatus.ACTIVE,
        "status": call.status,
        "html": call_row(call, can_hang_up=can_hang_up),
    }
