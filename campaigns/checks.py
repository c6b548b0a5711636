"""The do-not-call list's part in every outbound call (settings.OUTBOUND_CALL_CHECKS, tools.outbound)."""

from __future__ import annotations

from .models import DoNotCall


def do_not_call_refusal(to_number: str) -> str:
    entry = DoNotCall.objects.filter(number=to_number).only("reason", "created_at").first()
    if entry is None:
        return ""
    why = f" ({entry.reason})" if entry.reason else ""
    return (
        f"{to_number} is on the do-not-call list since {entry.created_at:%Y-%m-%d}{why}: it is never called. "
        "Remove it from Campaigns → Do-not-call numbers first if that is a mistake."
    )
