"""Where 46elks' real-time playback is, so barge-in can tell the model what the caller heard.

46elks plays what we send at real time and buffers the rest; OpenAI produces audio several times
faster than real time. So "sent" is not "heard": we keep, per assistant item, the time spans its
audio occupies in 46elks' play queue, and correct the estimate whenever a `sync` answer proves
that everything sent before it has played.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ItemPlayback:
    item_id: str
    received_bytes: int = 0
    # [start, end] spans on the monotonic clock; contiguous chunks are merged.
    spans: list[list[float]] = field(default_factory=list)

    def heard_s(self, now: float) -> float:
        heard = 0.0
        for start, end in self.spans:
            if now <= start:
                break
            heard += min(now, end) - start
        return heard


@dataclass(frozen=True)
class Cut:
    """An item the caller stopped hearing part-way: truncate it at `heard_ms`."""

    item_id: str
    heard_ms: int
    received_ms: float


class Playback:
    def __init__(self, bytes_per_ms: int) -> None:
        self._bytes_per_s = bytes_per_ms * 1000
        self._bytes_per_ms = bytes_per_ms
        self.end = 0.0  # when everything sent so far will have played
        self._items: dict[str, ItemPlayback] = {}
        self._last: ItemPlayback | None = None

    def add(self, item_id: str, nbytes: int, now: float) -> None:
        """Audio for `item_id` was just sent to 46elks."""
        item = self._last
        if item is None or item.item_id != item_id:
            item = self._items.get(item_id)
            if item is None:
                self._prune(now)
                item = self._items[item_id] = ItemPlayback(item_id)
            self._last = item
        start = self.end if self.end > now else now
        end = start + nbytes / self._bytes_per_s
        item.received_bytes += nbytes
        spans = item.spans
        if spans and spans[-1][1] == start:
            spans[-1][1] = end
        else:
            spans.append([start, end])
        self.end = end

    def audible(self, now: float) -> bool:
        """True while 46elks is (by our estimate) still playing audio we sent."""
        return self.end > now

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.end - now)

    def heard_ms(self, item_id: str, now: float) -> float:
        item = self._items.get(item_id)
        return item.heard_s(now) * 1000 if item else 0.0

    def cut(self, now: float) -> list[Cut]:
        """The caller interrupted at `now`: 46elks dropped the rest. Items cut short, oldest first."""
        cuts = []
        for item in self._items.values():
            received_ms = item.received_bytes / self._bytes_per_ms
            # Never claim more than was received, and never a fraction of a millisecond more than heard.
            heard_ms = int(min(item.heard_s(now) * 1000, received_ms))
            if heard_ms < int(received_ms):
                cuts.append(Cut(item.item_id, heard_ms, received_ms))
        self._items.clear()
        self._last = None
        self.end = now
        return cuts

    def played_out(self, now: float) -> None:
        """A `sync` answer proved everything sent before it has played."""
        self._items.clear()
        self._last = None
        if self.end > now:
            self.end = now

    def _prune(self, now: float) -> None:
        """Forget items that finished playing long ago, so a long call keeps no history here."""
        for item_id in [i for i, it in self._items.items() if it.spans and it.spans[-1][1] < now - 5.0]:
            del self._items[item_id]
