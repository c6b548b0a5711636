"""How long callers wait: turns paired from the session's events, and percentiles. Pure, no Django.

A turn starts when OpenAI says the caller stopped speaking (`speech_stopped`) and ends when the
first audio of the next reply is handed to 46elks. A reply with no speech before it (the greeting,
a reminder after silence) is not a turn. If the caller starts and stops again before the reply, the
latest stop counts: that is the moment the caller started waiting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

MAX_TURNS = 5000  # bounds the memory of a runaway call; far beyond any real conversation


@dataclass(frozen=True)
class Turn:
    turn: int
    at_ms: int
    reply_ms: int
    bridge_ms: float | None
    response_id: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class TurnClock:
    """Pairs `speech_stopped` with the next `first_audio`; times are one monotonic clock, in seconds."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.turns: list[Turn] = []
        self._stopped_at: float | None = None

    def speech_stopped(self, at: float) -> None:
        self._stopped_at = at

    def first_audio(self, at: float, response_id: str | None, bridge_s: float | None) -> Turn | None:
        """The first audio of a reply went out at `at`; the finished turn, or None if it was no turn."""
        stopped, self._stopped_at = self._stopped_at, None
        if stopped is None or len(self.turns) >= MAX_TURNS:
            return None
        turn = Turn(
            turn=len(self.turns) + 1,
            at_ms=max(0, round((stopped - self.started_at) * 1000)),
            reply_ms=max(0, round((at - stopped) * 1000)),
            bridge_ms=None if bridge_s is None else round(max(0.0, bridge_s) * 1000, 3),
            response_id=response_id or "",
        )
        self.turns.append(turn)
        return turn


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100) with linear interpolation between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def p50_p95(values: Sequence[float]) -> tuple[int | None, int | None]:
    """Median and 95th percentile in whole milliseconds (None when nothing was measured)."""
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return (None if p50 is None else round(p50), None if p95 is None else round(p95))
