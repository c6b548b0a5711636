"""Latency histograms that travel between processes as small JSON objects."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Iterable, Sequence

RESOLUTION_MS = 0.01  # bucket width: 10 µs


class Histogram:
    """Counts of latencies (ms) in 10 µs buckets; exact maximum kept aside."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.max_ms = 0.0
        self.n = 0

    def add(self, ms: float) -> None:
        self.counts[int(ms / RESOLUTION_MS)] += 1
        self.n += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: Histogram) -> Histogram:
        out = Histogram()
        out.counts = self.counts + other.counts
        out.n = self.n + other.n
        out.max_ms = max(self.max_ms, other.max_ms)
        return out

    def percentile(self, p: float) -> float | None:
        """The p-th percentile (0–100) in ms, to the bucket's upper edge; None when empty."""
        if not self.n:
            return None
        rank = max(1, round(p / 100 * self.n))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min((bucket + 1) * RESOLUTION_MS, self.max_ms)
        return self.max_ms

    def summary(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "p50_ms": _round(self.percentile(50)),
            "p99_ms": _round(self.percentile(99)),
            "p999_ms": _round(self.percentile(99.9)),
            "max_ms": _round(self.max_ms if self.n else None),
        }

    def to_json(self) -> dict:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "max_ms": self.max_ms, "n": self.n}

    @classmethod
    def from_json(cls, data: dict) -> Histogram:
        h = cls()
        h.counts = Counter({int(k): v for k, v in data["counts"].items()})
        h.max_ms = data["max_ms"]
        h.n = data["n"]
        return h

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        h = cls()
        for v in values:
            h.add(v)
        return h


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of a small list (ms figures of probes)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


def per_second(pairs: Sequence[float], start: float) -> list[dict[str, float | int | None]]:
    """Flat (time, ms) pairs to one row per second since `start`: n, p99 and max of that second."""
    seconds: dict[int, Histogram] = {}
    for i in range(0, len(pairs) - 1, 2):
        k = int(pairs[i] - start)
        h = seconds.get(k)
        if h is None:
            h = seconds[k] = Histogram()
        h.add(pairs[i + 1])
    return [
        {"s": k, "n": h.n, "p99_ms": _round(h.percentile(99)), "max_ms": _round(h.max_ms)}
        for k, h in sorted(seconds.items())
        if k >= 0
    ]


class GcPauses:
    """The garbage collector's pauses in this process (gc.callbacks): when and how long."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []  # (start, ms, generation)
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.monotonic()
        else:
            self.pauses.append((self._t0, (time.monotonic() - self._t0) * 1000, info.get("generation", -1)))

    def within(self, start: float, end: float) -> dict[str, object]:
        inside = [(t, ms, g) for t, ms, g in self.pauses if start <= t < end]
        return {
            "n": len(inside),
            "max_ms": round(max((ms for _, ms, _ in inside), default=0.0), 2),
            "total_ms": round(sum(ms for _, ms, _ in inside), 2),
            "at_s": [round(t - start, 2) for t, ms, _ in inside if ms >= 1.0][:50],
        }
