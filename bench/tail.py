"""The tail of a run: p99.9 and max both ways, the server's loop lag, the harness's own stalls, and
latency second by second (one SVG per format and N, a panel per system).

A stall (the server's, or the load generator's: a garbage collection, a late timer) shows as a
spike in its second instead of hiding in a percentile; the harness's pacing lag and its gc pauses
are drawn beside the latencies so a spike can be told apart.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from pathlib import Path
from typing import Any

SYSTEM_ORDER = ("baseline", "ours", "ours-nofast", "ours-public")
LINES = (  # (per-second key, figure, colour, width)
    ("caller_to_openai", "max_ms", "#1f3b8f", 2.0),
    ("caller_to_openai", "p99_ms", "#74a7f5", 1.5),
    ("openai_to_caller", "max_ms", "#b33c00", 2.0),
    ("openai_to_caller", "p99_ms", "#f5a474", 1.5),
    ("harness_pacing", "max_ms", "#777777", 1.0),
)
LABELS = {
    ("caller_to_openai", "max_ms"): "caller→OpenAI max",
    ("caller_to_openai", "p99_ms"): "caller→OpenAI p99",
    ("openai_to_caller", "max_ms"): "OpenAI→caller max",
    ("openai_to_caller", "p99_ms"): "OpenAI→caller p99",
    ("harness_pacing", "max_ms"): "load generator's own pacing lag, max",
}
Y_MIN, Y_MAX = 0.1, 1000.0  # ms, log scale
NOISY_PCT = 10.0  # other work on the server's core above this disturbs a step (as bench.run says)


def _f(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def systems(results: dict[str, Any], fmt: str) -> list[str]:
    present = [k.split("/", 1)[0] for k in results["series"] if k.endswith("/" + fmt)]
    return [s for s in SYSTEM_ORDER if s in present] + [s for s in present if s not in SYSTEM_ORDER]


def plot_name(fmt: str, calls: int) -> str:
    return f"performance-seconds-{fmt}-N{calls}.svg"


def tail_table(results: dict[str, Any], fmt: str) -> list[str]:
    rows = [
        "| system | N | CPU s / call-min | × baseline | caller→OpenAI p99 / p99.9 / max ms | "
        "OpenAI→caller p99 / p99.9 / max ms | server loop lag mean / p99 ≤ / max ≤ ms (wake-ups > 100 ms) | "
        "load generator pacing lag p99 / max ms | gc pauses in the window: load generator / fake (max ms) |",
        "|" + "---|" * 9,
    ]
    base = {s["calls"]: s for s in results["series"].get(f"baseline/{fmt}", [])}
    for system in systems(results, fmt):
        for s in sorted(results["series"][f"{system}/{fmt}"], key=lambda s: s["calls"]):
            lat = s["latency_ms"]
            b = base.get(s["calls"])
            ratio = (
                s["cpu_s_per_call_minute"] / b["cpu_s_per_call_minute"]
                if b and b["cpu_s_per_call_minute"] and s["cpu_s_per_call_minute"]
                else None
            )
            lag = s.get("loop_lag")
            lag_cell = "– (not measured)" if not s.get("loop_lag_error") else f"– ({s['loop_lag_error']})"
            if lag:
                lag_cell = f"{_f(lag['mean_ms'])} / {_f(lag['p99_ms_at_most'])} / {_f(lag['max_ms_at_most'])}"
                lag_cell += f" ({lag['over_100ms']})"
            gcs = s.get("harness_gc") or {}
            gc_cell = " / ".join(
                f"{g['n']} ({_f(g['max_ms'])})" if g else "–" for g in (gcs.get("loadgen"), gcs.get("fake"))
            )
            pacing = s["pacing_lag_ms"]
            rows.append(
                f"| {system} | {s['calls']} | {_f(s['cpu_s_per_call_minute'])} | {_f(ratio)} | "
                + " | ".join(
                    f"{_f(lat[d]['p99_ms'])} / {_f(lat[d].get('p999_ms'))} / {_f(lat[d]['max_ms'])}"
                    for d in ("caller_to_openai", "openai_to_caller")
                )
                + f" | {lag_cell} | {_f(pacing.get('p99_ms'))} / {_f(pacing.get('max_ms'))} | {gc_cell} |"
            )
    return rows


def _y(v: float, y0: float, h: float) -> float:
    v = min(max(v, Y_MIN), Y_MAX)
    return y0 + h - h * (math.log10(v) - math.log10(Y_MIN)) / (math.log10(Y_MAX) - math.log10(Y_MIN))


def seconds_plot(results: dict[str, Any], fmt: str, calls: int) -> str | None:
    """Latency per second of the window, a panel per system that ran this N."""
    steps = []
    for system in systems(results, fmt):
        step = next((s for s in results["series"][f"{system}/{fmt}"] if s["calls"] == calls), None)
        if step is not None and step.get("per_second"):
            steps.append((system, step))
    if not steps:
        return None
    w, h, left, top, gap = 820, 150, 70, 40, 70
    width, height = left + w + 30, top + len(steps) * (h + gap) + 90
    xmax = max(max(1.0, s["window_s"]) for _, s in steps)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-weight="bold">'
        f"Latency per second of the window, {html.escape(fmt)}, N={calls} (log scale)</text>",
    ]
    for i, (system, step) in enumerate(steps):
        y0 = top + 20 + i * (h + gap)
        out.append(f'<text x="{left}" y="{y0 - 8}" font-weight="bold">{html.escape(system)}</text>')
        out.append(f'<rect x="{left}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#333"/>')
        for v in (0.1, 1, 10, 100, 1000):
            y = _y(v, y0, h)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g} ms</text>')
        for t in range(0, int(xmax) + 1, 10):
            x = left + w * t / xmax
            out.append(f'<text x="{x:.1f}" y="{y0 + h + 14}" text-anchor="middle">{t} s</text>')
        for key, figure, color, stroke in LINES:
            pts = [(r["s"] + 0.5, r[figure]) for r in step["per_second"].get(key, []) if r.get(figure) is not None]
            if pts:
                coords = " ".join(f"{left + w * x / xmax:.1f},{_y(y, y0, h):.1f}" for x, y in pts)
                out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="{stroke}"/>')
        for who, g in (step.get("harness_gc") or {}).items():
            for t in (g or {}).get("at_s", []):  # a gc pause of ≥ 1 ms in the harness: a red tick
                x = left + w * t / xmax
                out.append(f'<line x1="{x:.1f}" y1="{y0 + h - 10}" x2="{x:.1f}" y2="{y0 + h}" stroke="red"/>')
                out.append(f"<title>gc pause in the {who}</title>")
    y = height - 50
    for j, (key, figure, color, _) in enumerate(LINES):
        x = left + (j % 3) * 280
        yy = y + (j // 3) * 18
        out.append(f'<line x1="{x}" y1="{yy}" x2="{x + 22}" y2="{yy}" stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{x + 28}" y="{yy + 4}">{html.escape(LABELS[(key, figure)])}</text>')
    out.append(f'<line x1="{left + 560}" y1="{y + 12}" x2="{left + 560}" y2="{y + 24}" stroke="red"/>')
    out.append(f'<text x="{left + 568}" y="{y + 22}">a gc pause ≥ 1 ms in the harness</text>')
    out.append("</svg>")
    return "\n".join(out)


def variant_ratios(results: dict[str, Any], fmt: str, system: str) -> list[dict[str, Any]]:
    """A variant of ours against `ours` at each N both ran: CPU and latency ratios."""
    ours = {s["calls"]: s for s in results["series"].get(f"ours/{fmt}", [])}
    out = []
    for s in sorted(results["series"].get(f"{system}/{fmt}", []), key=lambda s: s["calls"]):
        o = ours.get(s["calls"])
        if o is None:
            continue

        def r(a: float | None, b: float | None) -> float | None:
            return round(a / b, 2) if a is not None and b else None

        row: dict[str, Any] = {"calls": s["calls"], "cpu": r(s["cpu_s_per_call_minute"], o["cpu_s_per_call_minute"])}
        for d in ("caller_to_openai", "openai_to_caller"):
            for q in ("p99_ms", "p999_ms", "max_ms"):
                row[f"{d}_{q}"] = r(s["latency_ms"][d].get(q), o["latency_ms"][d].get(q))
        out.append(row)
    return out


def _variant_lines(results: dict[str, Any], fmt: str) -> list[str]:
    lines = []
    for system, what in (("ours-nofast", "`FAST_LANE=0`"), ("ours-public", "The public-API lane")):
        for row in variant_ratios(results, fmt, system):
            worst_p99 = max(row["caller_to_openai_p99_ms"] or 0, row["openai_to_caller_p99_ms"] or 0)
            verdict = ""
            if system == "ours-public":
                within = (row["cpu"] or 9) <= 1.1 and worst_p99 <= 1.1
                verdict = (
                    " Within ~10 % of the fast lane: the public-API lane should be the default."
                    if within
                    else " Not within ~10 % of the fast lane: the fast lane stays the default (see below)."
                )
            lines.append(
                f"- {what} against `ours` (fast lane), N={row['calls']}: CPU per call-minute ×{_f(row['cpu'])}; "
                f"caller→OpenAI p99 ×{_f(row['caller_to_openai_p99_ms'])}, "
                f"p99.9 ×{_f(row['caller_to_openai_p999_ms'])}, "
                f"max ×{_f(row['caller_to_openai_max_ms'])}; OpenAI→caller p99 ×{_f(row['openai_to_caller_p99_ms'])}, "
                f"p99.9 ×{_f(row['openai_to_caller_p999_ms'])}, max ×{_f(row['openai_to_caller_max_ms'])}.{verdict}"
            )
    if any("stays the default" in line for line in lines):
        lines += ["", WHY_FAST_LANE]
    return lines + ([""] if lines else [])


def section(results: dict[str, Any], formats: list[str]) -> tuple[list[str], dict[str, str]]:
    """The Markdown of the tail section and the SVG files it links (name → content); none for older results."""
    if not any(s.get("per_second") for steps in results["series"].values() for s in steps):
        return [], {}
    lines = ["## The tail, second by second", "", TAIL_METHOD, ""]
    files: dict[str, str] = {}
    for fmt in formats:
        lines += [f"### {fmt}", "", *tail_table(results, fmt), "", *_variant_lines(results, fmt)]
        ns = sorted({s["calls"] for k, v in results["series"].items() if k.endswith("/" + fmt) for s in v})
        for n in ns:
            svg = seconds_plot(results, fmt, n)
            if svg is not None:
                files[plot_name(fmt, n)] = svg
                lines += [f"![latency per second, {fmt}, N={n}]({plot_name(fmt, n)})", ""]
    return lines, files


TAIL_METHOD = """\
- Systems: `ours` (the Procfile's server, fast lane on), `ours-nofast` (the same with `FAST_LANE=0`:
  plain daphne/Channels), `ours-public` (the experimental lane on autobahn's public API only,
  `voiceagent/publiclane.py`, `python -m voiceagent.server --lane public`), `baseline`.
- p99.9 and max per direction are over every frame sent in the window (10 µs buckets; the max is exact).
- Server loop lag: `voiceagent_event_loop_lag_seconds` scraped from the server's `/metrics` at both
  edges of the window (a wake-up every 200 ms; Prometheus buckets, so p99 and max are upper bounds:
  "≤ 1" means under 1 ms). Not measured for the baseline.
- The load generator's own stalls: its pacing lag (how late its frame timer ran; a late timer delays
  frames before they are sent and is not counted in the latencies, which start at the frame's send
  time, so a stall there shows here, not in the server's figures), and the garbage collector's
  pauses in the load generator and the fake OpenAI (both run with the collector off during the
  window; any pause left is counted via `gc.callbacks`).
- The plots: per second of the window, p99 and max of each direction and the load generator's
  pacing lag, on a log scale; a red tick at the bottom marks a gc pause in the harness."""

WHY_FAST_LANE = """\
Why the fast lane stays the default although it reads library internals: the public-API lane
skips only daphne's share (an ASGI message, a queue and a task wake-up per frame). Per frame it
still pays autobahn's general frame machine (header state machine, a masker object, incremental
UTF-8 validation, four message callbacks) and Twisted's per-read dispatch (a logging context and
two layers of bookkeeping), and every frame it sends waits in Twisted's write buffer for the next
loop iteration; those are the costs the fast lane removes (see the profile above). Its risk is
held instead: the versions are pinned (`requirements.txt`), the server's start-up self-check
(`voiceagent.fastlane.self_check`) switches the lane off with one warning when the installed
daphne/autobahn/Twisted or the internals it reads are not those it was written for, `FAST_LANE=0`
switches it off by hand (its cost is the `ours-nofast` row), and the call tests run both ways."""


def write_tail_report(results: dict[str, Any], out: Path) -> Path:
    """performance-tail.md, its per-second SVGs and performance-tail-results.json into `out` (bench.run --tail)."""
    formats = sorted({key.split("/", 1)[1] for key in results["series"]})
    lines, files = section(results, formats)
    m, o = results["machine"], results["options"]
    when = datetime.datetime.fromtimestamp(results["started"], datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    took = round((results["finished"] - results["started"]) / 60, 1)
    head = [
        "# Performance: the tail, FAST_LANE=0 and the public-API lane",
        "",
        "*Written by `python -m bench.run --tail` (`make bench-tail`); edit `bench/tail.py`, not the file. The",
        "ladder of concurrent calls, the per-frame costs and the method are in [performance.md](performance.md).*",
        "",
        f"Command: `{results.get('command', 'python -m bench.run --tail')}`",
        "",
        f"Run {when}, {took} min: window {o['duration_s']:g} s per step, warm-up {o['warmup_s']:g} s, "
        f"{o['frame_ms']:g} ms caller frames both ways, replies of {o['answer_ms']:g} ms, server pinned to core 1, "
        f"harness on core 0 ({'uvloop' if o.get('uvloop') else 'asyncio'}), "
        f"{'SCHED_FIFO priority ' + str(o['realtime']) if o.get('realtime') else 'nice ' + str(o.get('nice', 0))}.",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu_model']}; Python {m['python']}, daphne {m['daphne']}, "
        f"websockets {m['websockets']}. A shared machine: other work may run on both cores (the",
        "`other load on core 1` column of the steps below says how much ran beside the server).",
        "",
    ]
    steps = ["## The steps", "", "| system | N | CPU % of core | other load on core 1 % | harness % | sustained |"]
    steps.append("|---|---|---|---|---|---|")
    for fmt in formats:
        for system in systems(results, fmt):
            for s in results["series"][f"{system}/{fmt}"]:
                verdict = "yes" if s["sustained"] else "no: " + "; ".join(s["problems"]).replace("|", "\\|")
                steps.append(
                    f"| {system} | {s['calls']} | {s['cpu_pct']} | {s['core1_other_pct']} | "
                    f"{s['harness_cpu_pct']} | {verdict} |"
                )
    other = [s["core1_other_pct"] for steps_ in results["series"].values() for s in steps_]
    if other and max(other) > NOISY_PCT and o.get("realtime"):
        head += [
            f"Other work ran on the server's core during some windows (up to {max(other):g} %); the benchmark's "
            "processes ran SCHED_FIFO, so that work had only the time they left idle.",
            "",
        ]
    elif other and max(other) > NOISY_PCT:
        head += [
            f"**This run was disturbed:** other work used {min(other):g}–{max(other):g} % of the server's core "
            "during the windows, so the server was starved of CPU: its latencies are those of an overloaded "
            "process and its CPU seconds exclude the work it had not yet caught up on. Compare the systems "
            "with each other only, and rerun on a quiet machine (or with `--realtime 10` as root).",
            "",
        ]
    text = "\n".join([*head, *lines, *steps, ""])
    for name, svg in files.items():
        (out / name).write_text(svg)
    (out / "performance-tail-results.json").write_text(json.dumps(results, indent=1))
    path = out / "performance-tail.md"
    path.write_text(text)
    return path
