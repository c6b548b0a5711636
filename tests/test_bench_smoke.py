"""The benchmark's quick mode runs end to end, so the harness cannot rot unnoticed.

It starts the real processes (fake OpenAI, our daphne, the baseline bridge, the load generator)
for a couple of calls and checks that frames flowed both ways, were matched, and were reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_measures_both_systems(tmp_path):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "performance-results.json").read_text())
    for system in ("ours", "baseline"):
        (step,) = results["series"][f"{system}/pcm_24000"]
        assert step["connected"] == step["calls"] == 2, step
        assert step["inbound"]["expected"] > 0 and step["outbound"]["expected"] > 0, step
        assert step["inbound"]["lost"] == step["outbound"]["lost"] == 0, step
        assert step["latency_ms"]["caller_to_openai"]["n"] > 0, step
        assert step["latency_ms"]["openai_to_caller"]["n"] > 0, step
        assert step["cpu_s_per_call_minute"] and step["peak_rss_mb"], step
        assert step["latency_ms"]["caller_to_openai"]["p999_ms"] is not None, step
        assert step["per_second"]["caller_to_openai"] and step["per_second"]["openai_to_caller"], step
        assert step["harness_gc"]["loadgen"]["n"] == 0, step  # no collection while the load generator measures
        probe = step["probe"]
        assert probe["hello_to_session_update"]["n"] == 2 and probe["greeting_delta_to_caller"]["n"] == 2, probe
    lag = results["series"]["ours/pcm_24000"][0]["loop_lag"]
    assert lag["n"] >= 10 and lag["max_ms_at_most"] is not None, lag  # scraped from our server's /metrics
    report = (tmp_path / "performance.md").read_text()
    assert "## The tail, second by second" in report
    assert (tmp_path / "performance-seconds-pcm_24000-N2.svg").read_text().startswith("<svg")
    assert "| pcm_24000 | sustained calls on one core |" in report
    assert (tmp_path / "performance-pcm_24000.svg").read_text().startswith("<svg")
    assert took < 30, f"quick mode took {took:.0f} s; keep it a smoke test"


def test_gaps_are_losses_except_the_baseline_gate_and_cut_replies():
    """The loss accounting: a missing caller frame is the baseline's gate only inside a reply."""
    import base64

    from bench.analysis import inbound_delivery, outbound_delivery

    received = bytearray(2)  # frames 0..15, all but 5 (inside a reply) and 12 (outside one) arrived
    for seq in range(16):
        if seq not in (5, 12):
            received[seq // 8] |= 1 << (seq % 8)
    loadgen = {
        "window": [100.0, 101.6],
        "frame_s": 0.1,
        "callers": {"0": {"t0": 100.0, "sent": 16, "conns": [1]}},
        "out_received": {"1": [0, 1, 3]},
        "out_reordered": 0,
    }
    fake = {
        "callers": {
            "0": {
                "conn": 1,
                "received": base64.b64encode(bytes(received)).decode(),
                "reordered": 0,
                "dups": 0,
                "windows": [[100.45, 100.55]],  # frame 5 (100.5 s) falls in this reply, 12 (101.2 s) does not
            }
        },
        "out_sent": {"1": [[0, 0], [1, 0], [2, 1], [3, 0], [4, 0]]},
    }
    ours = inbound_delivery(loadgen, fake, gated=False)
    assert (ours["expected"], ours["lost"], ours["gated"]) == (16, 2, 0)
    baseline = inbound_delivery(loadgen, fake, gated=True)
    assert (baseline["lost"], baseline["gated"]) == (1, 1)
    out = outbound_delivery(loadgen, fake)
    assert (out["expected"], out["lost"], out["dropped_after_barge_in"]) == (5, 1, 1)
