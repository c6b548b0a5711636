"""What one call's 46elks side may cost us: a limit on its message rate, and the calls a process takes.

`MessageGuard.admit` is called by the session for every message 46elks sends, on the hot path (a
few arithmetic operations); `refusal` once per `hello`, before the call costs anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import Outcome

if TYPE_CHECKING:
    from .elks import Hello
    from .registry import CallRegistry
    from .types import SessionSettings

# The fastest frame rate we allow for: 10 ms frames, twice the 50 a second that 46elks sends.
FASTEST_FRAMES_PER_SECOND = 100
# A burst of held-up audio this long passes whole (at the fastest frame rate).
BURST_SECONDS = 10
# Messages dropped for this long without a break end the call.
FLOOD_SECONDS = 3.0
FLOOD = Outcome("failed", "protocol_error", "46elks sent messages far too fast.")


class MessageGuard:
    """A token bucket over the messages of one call's 46elks socket.

    When 46elks' side of the network stalls, TCP delivers the held-up audio at once: the bucket is
    deep enough (`burst` messages) for seconds of such audio to pass whole, and refills at `rate`
    a second, a safe multiple of the real rate. Only a sustained flood empties it; then messages
    are dropped, and once they have been dropped for FLOOD_SECONDS running, `flooding` turns true.
    The session lets control messages (hello, bye, sync answers) through even when the bucket is empty.
    """

    __slots__ = ("_first_drop", "_last", "_last_drop", "_tokens", "burst", "dropped", "flooding", "rate")

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now
        self._first_drop = self._last_drop = -1e9
        self.dropped = 0
        self.flooding = False

    def admit(self, now: float) -> bool:
        """True if one more message may be handled now; False (counted) if it is to be dropped."""
        tokens = self._tokens + (now - self._last) * self.rate
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0 if tokens < self.burst else self.burst - 1.0
            return True
        self._tokens = tokens
        self.dropped += 1
        if now - self._last_drop > 1.0:  # a new run of drops
            self._first_drop = now
        self._last_drop = now
        if now - self._first_drop >= FLOOD_SECONDS:
            self.flooding = True
        return False

    def first_drop_of_run(self) -> bool:
        """True for the first drop of a run (to log it once, not per message)."""
        return self._first_drop == self._last_drop


def burst_for(settings: SessionSettings) -> int:
    """The bucket's depth: BURST_SECONDS of audio at the fastest frame rate, and never below the refill rate."""
    return max(FASTEST_FRAMES_PER_SECOND * BURST_SECONDS, settings.max_messages_per_second)


def refusal(hello: Hello, registry: CallRegistry, settings: SessionSettings) -> Outcome | None:
    """Why this call must be refused before it costs anything, if it must."""
    if not registry.accepting:
        return Outcome("rejected", "server_shutdown", "The server was restarting; the call was refused.")
    if len(registry.live) >= settings.max_calls_per_process:
        detail = f"This server process already handles {len(registry.live)} calls (MAX_CALLS_PER_PROCESS)."
        return Outcome("rejected", "limit", detail)
    if registry.count_for_number(hello.to_number) >= settings.max_calls_per_number:
        detail = f"{hello.to_number} already has {settings.max_calls_per_number} calls (MAX_CALLS_PER_NUMBER)."
        return Outcome("rejected", "limit", detail)
    return None
