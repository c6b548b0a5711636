"""The calls one process is handling right now: for its limits, its shutdown and its heartbeat."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import CallHandle


class CallRegistry:
    """Live calls count against the limits; ending calls are only still writing their records."""

    def __init__(self) -> None:
        self.live: set[CallHandle] = set()
        self.ending: set[CallHandle] = set()
        # False once the process is shutting down: new calls are refused politely.
        self.accepting = True

    def count_for_number(self, number: str) -> int:
        return sum(1 for s in self.live if s.hello is not None and s.hello.to_number == number)

    def call_pks(self) -> list[int]:
        """The recorded calls this process still holds, live or ending (for its heartbeat)."""
        return [s.call_pk for s in self.live | self.ending if s.call_pk is not None]

    def started(self, session: CallHandle) -> None:
        self.live.add(session)

    def stopping(self, session: CallHandle) -> None:
        """The call is ending: it no longer counts against the limits, but its records are being written."""
        if session in self.live:
            self.live.discard(session)
            self.ending.add(session)

    def gone(self, session: CallHandle) -> None:
        self.live.discard(session)
        self.ending.discard(session)


PROCESS_CALLS = CallRegistry()
"""The registry of this process, shared by its consumers, its shutdown and its metrics."""
