"""From what the load generator, the fake OpenAI and /proc saw in one step to the step's figures.

Pure functions: the orchestrator hands in the three JSON-able records of a step.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from bench.stats import Histogram

P99_LIMIT_MS = 50.0
HARNESS_LIMIT_PCT = 85.0
HARNESS_LAG_MS = 20.0
# A frame the baseline drops because a reply is being generated (its `is_speaking` gate) may
# fall this close to a reply's start or end and still be the gate's doing.
GATE_MARGIN_S = 0.25


def _received(bits: bytes, seq: int) -> bool:
    byte, bit = divmod(seq, 8)
    return byte < len(bits) and bool(bits[byte] & (1 << bit))


def inbound_delivery(loadgen: dict[str, Any], fake: dict[str, Any], *, gated: bool) -> dict[str, int]:
    """Caller frames sent within the window: how many arrived at OpenAI, were lost, or were gated.

    `gated`: the bridge drops caller audio while a reply is generated (the baseline, by design);
    such drops are counted apart and are not losses.
    """
    w0, w1 = loadgen["window"]
    frame_s = loadgen["frame_s"]
    expected = lost = gated_n = reordered = dups = 0
    for idx, caller in loadgen["callers"].items():
        t0 = caller["t0"]
        if t0 is None:
            continue
        rec = fake["callers"].get(idx)
        bits = base64.b64decode(rec["received"]) if rec else b""
        windows = rec["windows"] if rec else []
        if rec:
            reordered += rec["reordered"]
            dups += rec["dups"]
        first = max(0, math.ceil((w0 - t0) / frame_s - 1e-9))
        last = min(caller["sent"], math.ceil((w1 - t0) / frame_s - 1e-9))
        for seq in range(first, last):
            expected += 1
            if _received(bits, seq):
                continue
            t = t0 + seq * frame_s
            if gated and any(a - GATE_MARGIN_S <= t <= b + GATE_MARGIN_S for a, b in windows):
                gated_n += 1
            else:
                lost += 1
    return {"expected": expected, "lost": lost, "gated": gated_n, "reordered": reordered, "duplicated": dups}


def outbound_delivery(loadgen: dict[str, Any], fake: dict[str, Any]) -> dict[str, int]:
    """Reply frames the fake sent within the window: how many reached the caller.

    A frame of a reply the caller had already cut into may be dropped by a bridge that stops
    the interrupted reply (ours does); those are counted apart, not as losses.
    """
    expected = lost = excused = 0
    for conn, sent in fake["out_sent"].items():
        got = set(loadgen["out_received"].get(conn, ()))
        for seq, after_speech in sent:
            expected += 1
            if seq in got:
                continue
            if after_speech:
                excused += 1
            else:
                lost += 1
    return {
        "expected": expected,
        "lost": lost,
        "dropped_after_barge_in": excused,
        "reordered": loadgen["out_reordered"],
    }


def step_figures(
    *, system: str, calls: int, loadgen: dict[str, Any], fake: dict[str, Any], measures: dict[str, Any]
) -> dict[str, Any]:
    """The figures of one step, and whether it is sustained (p99 under 50 ms, nothing lost)."""
    inbound = inbound_delivery(loadgen, fake, gated=system == "baseline")
    outbound = outbound_delivery(loadgen, fake)
    lat_in = Histogram.from_json(fake["in_latency"])
    lat_out = Histogram.from_json(loadgen["out_latency"])
    both = lat_in.merge(lat_out)
    w0, w1 = loadgen["window"]
    window_s = w1 - w0
    connected = loadgen["calls_connected"]
    call_minutes = connected * window_s / 60
    cpu = measures["server_cpu_s"]
    rss_per_call = None
    if connected and measures.get("rss_live_kb") and measures.get("rss_idle_kb"):
        rss_per_call = (measures["rss_live_kb"] - measures["rss_idle_kb"]) / connected
    relayed = lat_in.n + lat_out.n
    problems = []
    if connected < calls:
        problems.append(f"{calls - connected} calls did not connect")
    if loadgen["errors"]:
        problems.append("errors: " + ", ".join(f"{k} ×{v}" for k, v in loadgen["errors"].items()))
    lost = inbound["lost"] + outbound["lost"]
    if lost:
        problems.append(f"{lost} frames lost")
    reordered = inbound["reordered"] + outbound["reordered"] + inbound["duplicated"]
    if reordered:
        problems.append(f"{reordered} frames reordered or duplicated")
    p99 = both.percentile(99)
    if p99 is None or p99 >= P99_LIMIT_MS:
        problems.append(f"p99 {p99} ms ≥ {P99_LIMIT_MS:g} ms")
    harness_pct = 100 * measures["harness_cpu_s"] / window_s
    lag_p99 = loadgen["pacing_lag"].get("p99_ms") or 0.0
    # The harness shares core 0: when it is nearly saturated, a failure may be its own, not the server's.
    harness_bound = harness_pct > HARNESS_LIMIT_PCT or lag_p99 > HARNESS_LAG_MS
    if problems and harness_bound:
        problems.append(f"the harness was near its limit ({harness_pct:.0f}% of core 0, pacing lag p99 {lag_p99} ms)")
    return {
        "system": system,
        "calls": calls,
        "connected": connected,
        "window_s": round(window_s, 2),
        "cpu_s": round(cpu, 2),
        "cpu_pct": round(100 * cpu / window_s, 1),
        "cpu_sys_pct": round(100 * measures.get("server_sys_s", 0.0) / window_s, 1),  # of it, in the kernel
        "cpu_s_per_call_minute": round(cpu / call_minutes, 4) if call_minutes else None,
        "cpu_us_per_frame": round(1e6 * cpu / relayed, 1) if relayed else None,
        "rss_idle_mb": _mb(measures.get("rss_idle_kb")),
        "rss_live_mb": _mb(measures.get("rss_live_kb")),
        "peak_rss_mb": _mb(measures.get("peak_rss_kb")),
        "rss_per_call_kb": round(rss_per_call, 1) if rss_per_call is not None else None,
        "latency_ms": {
            "both": both.summary(),
            "caller_to_openai": lat_in.summary(),
            "openai_to_caller": lat_out.summary(),
        },
        "inbound": inbound,
        "outbound": outbound,
        "frames_relayed": relayed,
        "replies": fake["responses"],
        "truncations": fake["truncations"],
        "openai_errors": fake["errors"],
        "events": loadgen["counts"],
        "harness_cpu_pct": round(harness_pct, 1),
        "fake_cpu_pct": round(100 * measures.get("fake_cpu_s", 0.0) / window_s, 1),
        "loadgen_cpu_pct": round(100 * measures.get("loadgen_cpu_s", 0.0) / window_s, 1),
        "core1_other_pct": round(measures.get("core1_other_pct", 0.0), 1),
        "pacing_lag_ms": loadgen["pacing_lag"],
        "loop_lag": loop_lag(measures.get("loop_lag")),
        "loop_lag_error": measures.get("loop_lag_error"),
        "harness_gc": {"loadgen": loadgen.get("gc_pauses"), "fake": fake.get("gc_pauses")},
        "per_second": {
            "caller_to_openai": fake.get("in_per_second", []),
            "openai_to_caller": loadgen.get("out_per_second", []),
            "harness_pacing": loadgen.get("pacing_per_second", []),
        },
        "harness_bound": bool(problems) and harness_bound,
        "sustained": not problems,
        "problems": problems,
    }


def loop_lag(buckets: dict[str, float] | None) -> dict[str, Any] | None:
    """The server's event-loop lag during the window, from the difference of two /metrics scrapes.

    Prometheus buckets give upper bounds: p99 and max are "at most" this many ms (None above 1 s).
    """
    if not buckets or not buckets.get("count"):
        return None
    n = buckets["count"]
    edges = sorted((float(le), c) for le, c in buckets.items() if le not in ("sum", "count"))

    def at_most(rank: float) -> float | None:
        for le, c in edges:
            if c >= rank:
                return None if math.isinf(le) else round(le * 1000, 3)
        return None

    return {
        "n": int(n),
        "mean_ms": round(1000 * buckets["sum"] / n, 3),
        "p99_ms_at_most": at_most(0.99 * n),
        "p999_ms_at_most": at_most(0.999 * n),
        "max_ms_at_most": at_most(n),
        "over_100ms": int(n - dict(edges).get(0.1, n)),
    }


def probe_figures(loadgen: dict[str, Any], fake: dict[str, Any]) -> dict[str, Any]:
    """hello → session.update (as the fake saw it) and first greeting delta → caller, per probe call.

    Probe calls are made one at a time, so the n-th probe is the n-th OpenAI connection.
    """
    from bench.stats import percentile

    probes = loadgen.get("probes") or []
    sessions = fake["sessions"][: len(probes)]
    hello_to_update, hello_to_connect, connect_to_update, greeting = [], [], [], []
    for probe, session in zip(probes, sessions, strict=False):
        if probe["t_hello"] is None:
            continue
        if session["t_session_update"] is not None:
            hello_to_update.append(1000 * (session["t_session_update"] - probe["t_hello"]))
        if session["t_handshake"] is not None:
            hello_to_connect.append(1000 * (session["t_handshake"] - probe["t_hello"]))
            if session["t_session_update"] is not None:
                connect_to_update.append(1000 * (session["t_session_update"] - session["t_handshake"]))
        if probe["first_audio_recv"] is not None:
            greeting.append(1000 * (probe["first_audio_recv"] - probe["first_audio_sent"]))

    def summary(values: list[float]) -> dict[str, Any]:
        return {
            "n": len(values),
            "p50_ms": _r(percentile(values, 50)),
            "max_ms": _r(max(values) if values else None),
        }

    return {
        "hello_to_session_update": summary(hello_to_update),
        "hello_to_openai_handshake": summary(hello_to_connect),
        "openai_handshake_to_session_update": summary(connect_to_update),
        "greeting_delta_to_caller": summary(greeting),
    }


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
