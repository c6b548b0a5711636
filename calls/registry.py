"""The calls this process is handling right now (for limits, shutdown and staff control)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import CallSession

live: set[CallSession] = set()
# Calls that are over but still writing their records (they no longer count against limits).
ending: set[CallSession] = set()
# False once the process is shutting down: new calls are refused politely.
accepting = True


def count_for_number(number: str) -> int:
    return sum(1 for s in live if s.hello is not None and s.hello.to_number == number)
