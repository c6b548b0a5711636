"""Tells the live dashboards about calls: started, each transcript line, ended.

Registered in settings.CALL_OBSERVERS. Each hook queues one small message (never per audio
frame) after the database write it announces where the session allows it: `started` comes after
the call's row is committed and `ended` after its end is recorded; a transcript line travels with
its text, so dashboards need not wait for its row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from calls.live.observers import CallObserver

from .broadcast import publish

if TYPE_CHECKING:
    from calls.live.types import CallHandle, Outcome, TranscriptLine


class DashboardObserver(CallObserver):
    def started(self, session: CallHandle) -> None:
        publish({"type": "dashboard.call", "call": session.call_pk, "event": "started"})

    def transcript(self, session: CallHandle, line: TranscriptLine) -> None:
        publish(
            {
                "type": "dashboard.transcript",
                "call": session.call_pk,
                "position": line.position,
                "role": line.role,
                "text": line.text,
                "interrupted": line.interrupted,
                "offset_ms": line.offset_ms,
            }
        )

    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        publish({"type": "dashboard.call", "call": session.call_pk, "event": "ended"})


def dashboard_observer(session: CallHandle) -> DashboardObserver | None:
    """The CALL_OBSERVERS factory: every recorded call is shown live."""
    return DashboardObserver() if session.call_pk is not None else None
