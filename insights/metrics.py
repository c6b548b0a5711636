"""Prometheus metrics: this process's histograms and counters, plus call totals from the database.

Each server process keeps its own registry (not prometheus_client's global one). With several
processes, each serves its own latency and duration histograms, its own OpenAI error counts and its
own live-call gauge; Prometheus should scrape every process (or accept that one scrape shows one
process). Numbers that must be global, whichever process answers, come from the database at scrape
time: calls by status and end reason, and calls marked active.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.db.models import Count
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from calls.live.registry import PROCESS_CALLS
from calls.models import Call, CallStatus

REGISTRY = CollectorRegistry(auto_describe=False)

TURN_LATENCY = Histogram(
    "voiceagent_turn_latency_seconds",
    "Reply time per turn: from OpenAI noticing the caller stopped to the first reply audio sent to 46elks.",
    buckets=(0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0),
    registry=REGISTRY,
)
BRIDGE_LATENCY = Histogram(
    "voiceagent_bridge_latency_seconds",
    "This server's share of a reply's start: from OpenAI's first audio arriving to it leaving for 46elks.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=REGISTRY,
)
CALL_DURATION = Histogram(
    "voiceagent_call_duration_seconds",
    "Length of answered calls handled by this process, from connection to end.",
    buckets=(5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600),
    registry=REGISTRY,
)
LOOP_LAG = Histogram(
    "voiceagent_event_loop_lag_seconds",
    "How late this process's event loop woke up for a timer (sampled a few times a second): "
    "every call's audio waits as long; rising values mean the process carries too much.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
OPENAI_ERRORS = Counter(
    "voiceagent_openai_errors",
    "OpenAI errors seen by this process, by error code (harmless barge-in races excluded).",
    ["code"],
    registry=REGISTRY,
)

_HTTP_STATUS = re.compile(r"\(HTTP (\d{3})\)")
_CODE_SAFE = re.compile(r"[^a-z0-9_.:-]+")


def error_code(error: dict) -> str:
    """A short label for an OpenAI error event: its code, else its type."""
    return _label(str(error.get("code") or error.get("type") or "unknown"))


def failure_code(detail: str) -> str:
    """A label for a call that OpenAI failed without an error event (refused, unreachable, closed)."""
    found = _HTTP_STATUS.search(detail or "")
    if found:
        return f"http_{found.group(1)}"
    text = (detail or "").lower()
    for fragment, code in (
        ("did not answer within", "connect_timeout"),
        ("could not connect", "unreachable"),
        ("rejected the session settings", "session_update_rejected"),
        ("did not confirm the session settings", "session_update_timeout"),
        ("configured audio", "session_format_mismatch"),
        ("60-minute limit", "session_expired"),
        ("closed", "connection_closed"),
    ):
        if fragment in text:
            return code
    return "call_failed"


def _label(value: str) -> str:
    return _CODE_SAFE.sub("_", value.lower())[:60] or "unknown"


def observe_turn(reply_s: float) -> None:
    TURN_LATENCY.observe(reply_s)


def observe_bridge(bridge_s: float) -> None:
    BRIDGE_LATENCY.observe(bridge_s)


def observe_call(duration_s: float) -> None:
    CALL_DURATION.observe(duration_s)


def observe_loop_lag(lag_s: float) -> None:
    LOOP_LAG.observe(lag_s)


def count_openai_error(code: str) -> None:
    OPENAI_ERRORS.labels(code=_label(code)).inc()


class ProcessCalls:
    """Calls this process is handling right now (from the live registry, so it is never stale)."""

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("voiceagent_process_active_calls", "Calls in progress in this process.")

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "voiceagent_process_active_calls", "Calls in progress in this process.", value=len(PROCESS_CALLS.live)
        )


class DatabaseCalls:
    """Totals every process agrees on, counted in the database when scraped."""

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("voiceagent_active_calls", "")
        yield CounterMetricFamily("voiceagent_calls", "", labels=["status", "end_reason"])

    def collect(self) -> Iterator[Metric]:
        rows = Call.objects.values("status", "end_reason").annotate(n=Count("id")).order_by()
        active = GaugeMetricFamily(
            "voiceagent_active_calls",
            "Calls marked active in the database, across all processes (includes calls of a crashed process "
            "until they are closed, within 25 s).",
        )
        total = CounterMetricFamily(
            "voiceagent_calls",
            "Calls recorded, by status and end reason (all processes; deleted calls drop out).",
            labels=["status", "end_reason"],
        )
        n_active = 0
        for row in rows:
            if row["status"] == CallStatus.ACTIVE:
                n_active += row["n"]
            else:
                total.add_metric([row["status"], row["end_reason"] or ""], row["n"])
        active.add_metric([], n_active)
        yield active
        yield total


REGISTRY.register(ProcessCalls())
REGISTRY.register(DatabaseCalls())


def render() -> bytes:
    """The text exposition of every metric (queries the database: call from a worker thread)."""
    return generate_latest(REGISTRY)
