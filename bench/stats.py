"""Latency histograms that travel between processes as small JSON objects."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

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
