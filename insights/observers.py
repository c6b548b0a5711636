"""The call observer that measures a call: OpenAI usage, reply time per turn, metrics.

Everything is added up in memory as events arrive (no database, no log line); the call's cost,
usage and reply times are written once, in `ended`, before the after-call webhook reads them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from calls.db import run_db
from calls.live.observers import CallObserver

from . import metrics, services
from .latency import TurnClock
from .pricing import RealtimeUsage, TranscriptionUsage

if TYPE_CHECKING:
    from calls.live.types import CallHandle, Outcome

log = logging.getLogger(__name__)


class CallInsights(CallObserver):
    def __init__(self, session: CallHandle) -> None:
        cfg = session.config
        self.realtime = RealtimeUsage(model=cfg.model if cfg else "")
        transcription_model = cfg.transcription_model if cfg else "off"
        self.transcription = TranscriptionUsage(model=transcription_model if transcription_model != "off" else "")
        self.turns = TurnClock(session.started_at)
        self.openai_errors = 0

    def speech_stopped(self, session: CallHandle, at: float) -> None:
        self.turns.speech_stopped(at)

    def first_audio(self, session: CallHandle, at: float, response_id: str | None) -> None:
        # Called right after the first delta was handed to 46elks: now minus its arrival is our share.
        received = getattr(session, "openai_received_at", None)
        bridge_s = time.monotonic() - received if received else None
        if bridge_s is not None:
            metrics.observe_bridge(bridge_s)
        turn = self.turns.first_audio(at, response_id, bridge_s)
        if turn is not None:
            metrics.observe_turn(turn.reply_ms / 1000)

    def response_done(self, session: CallHandle, response: dict[str, Any]) -> None:
        self.realtime.add(response.get("usage"))

    def transcription_done(self, session: CallHandle, event: dict[str, Any]) -> None:
        self.transcription.add(event.get("usage"))

    def openai_error(self, session: CallHandle, error: dict[str, Any]) -> None:
        self.openai_errors += 1
        metrics.count_openai_error(metrics.error_code(error))

    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        """Write the call's usage, cost and reply times (the record is finished; audio is over)."""
        callid = session.hello.callid if session.hello else "-"
        metrics.observe_call(max(0.0, time.monotonic() - session.started_at))
        if outcome is not None and outcome.end_reason == "openai_error" and not self.openai_errors:
            metrics.count_openai_error(metrics.failure_code(outcome.detail))
        if session.call_pk is None:
            return
        turns = list(self.turns.turns)
        try:
            result = await run_db(services.call_insights_record)(
                call_pk=session.call_pk, realtime=self.realtime, transcription=self.transcription, turns=turns
            )
        except Exception:
            # Keep the numbers in the log so nothing is lost; `recompute_call_costs` cannot help here.
            log.exception(
                "call %s: could not record usage %s %s and reply times %s",
                callid,
                self.realtime.as_dict(),
                self.transcription.as_dict(),
                [t.reply_ms for t in turns],
            )
            return
        log.info(
            "call %s usage: cost=%s %s reply_p50_ms=%s reply_p95_ms=%s turns=%d responses=%d%s",
            callid,
            result.cost if result.cost is not None else "-",
            result.currency,
            result.p50_ms if result.p50_ms is not None else "-",
            result.p95_ms if result.p95_ms is not None else "-",
            len(turns),
            self.realtime.responses,
            f" missing_prices={result.missing}" if result.missing else "",
            extra={
                "call_id": callid,
                "call_pk": session.call_pk,
                "event": "call.usage",
                "cost": None if result.cost is None else str(result.cost),
                "currency": result.currency,
                "reply_p50_ms": result.p50_ms,
                "reply_p95_ms": result.p95_ms,
                "turns": len(turns),
            },
        )


def call_insights(session: CallHandle) -> CallInsights | None:
    """`settings.CALL_OBSERVERS` factory: every answered call is measured."""
    if session.config is None:
        return None
    return CallInsights(session)
