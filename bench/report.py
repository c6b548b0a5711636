"""Writes the benchmark's results as docs/performance.md, SVG plots and results.json."""

from __future__ import annotations

import datetime
import html
import json
from pathlib import Path
from typing import Any

from bench import tail

TARGETS = {
    "cpu": 1.25,  # ours/baseline CPU per call-minute, at most
    "p99": 1.5,  # ours/baseline p99 added latency, at most
    "capacity": 0.8,  # ours/baseline sustained calls per core, at least
    "rss_per_call_kb": 1024,
    "hello_to_update_ms": 20,  # plus the OpenAI connect time
    "greeting_ms": 2,
}
COLORS = {"ours": "#1f6feb", "baseline": "#d9480f", "ours-nofast": "#2f9e44", "ours-public": "#9c36b5"}
NAMES = {
    "ours": "ours (daphne)",
    "baseline": "baseline (guide's bridge)",
    "ours-nofast": "ours, FAST_LANE=0",
    "ours-public": "ours, public-API lane",
}


def sustained_calls(steps: list[dict[str, Any]]) -> int | None:
    """The largest N sustained below the first N that was not (a later lucky pass does not count)."""
    best = None
    for s in sorted(steps, key=lambda s: s["calls"]):
        if not s["sustained"]:
            break
        best = s["calls"]
    return best


def harness_bound(steps: list[dict[str, Any]]) -> bool:
    """Whether the first unsustained step failed with the harness near its limit (capacity is then a floor)."""
    first_fail = next((s for s in sorted(steps, key=lambda s: s["calls"]) if not s["sustained"]), None)
    return bool(first_fail and first_fail.get("harness_bound"))


def _by_calls(steps: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {s["calls"]: s for s in steps}


def comparison(results: dict[str, Any], fmt: str) -> dict[str, Any] | None:
    """Ours against the baseline for one format: at the largest N both sustained, and capacity."""
    ours = results["series"].get(f"ours/{fmt}")
    base = results["series"].get(f"baseline/{fmt}")
    if not ours or not base:
        return None
    o_cap, b_cap = sustained_calls(ours), sustained_calls(base)
    common = sorted(set(_by_calls(ours)) & set(_by_calls(base)))
    both_ok = [n for n in common if _by_calls(ours)[n]["sustained"] and _by_calls(base)[n]["sustained"]]
    ref = max(both_ok) if both_ok else (max(common) if common else None)
    out: dict[str, Any] = {"format": fmt, "ours_capacity": o_cap, "baseline_capacity": b_cap, "at_calls": ref}
    out["ours_harness_bound"], out["baseline_harness_bound"] = harness_bound(ours), harness_bound(base)
    out["capacity_ratio"] = _ratio(o_cap, b_cap)
    if ref is not None:
        o, b = _by_calls(ours)[ref], _by_calls(base)[ref]
        out["ours"], out["baseline"] = o, b
        out["cpu_ratio"] = _ratio(o["cpu_s_per_call_minute"], b["cpu_s_per_call_minute"])
        out["p99_ratio"] = _ratio(o["latency_ms"]["both"]["p99_ms"], b["latency_ms"]["both"]["p99_ms"])
    o_by, b_by = _by_calls(ours), _by_calls(base)
    out["ratios_by_calls"] = [
        {
            "calls": n,
            "cpu_ratio": _ratio(o_by[n]["cpu_s_per_call_minute"], b_by[n]["cpu_s_per_call_minute"]),
            "p99_ratio": _ratio(o_by[n]["latency_ms"]["both"]["p99_ms"], b_by[n]["latency_ms"]["both"]["p99_ms"]),
        }
        for n in common
    ]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return round(a / b, 2)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v}{unit}"


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


# ------------------------------------------------------------------------------------------------
# Plot
# ------------------------------------------------------------------------------------------------


def _nice_max(v: float) -> float:
    for m in (1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if v <= m:
            return float(m)
    return v


def _panel(
    x0: float, y0: float, w: float, h: float, title: str, ylabel: str, series: dict[str, list[tuple[float, float]]],
    xmax: float, limit: float, limit_label: str, cap: float,
) -> list[str]:  # fmt: skip
    """One line chart; values above `cap` are drawn at the top edge."""
    ys = [y for pts in series.values() for _, y in pts] + [limit]
    ymax = min(_nice_max(max(ys, default=1.0) or 1.0), cap)
    out = [
        f'<text x="{x0 + w / 2}" y="{y0 - 12}" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + h}" stroke="#333"/>',
        f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle">concurrent calls</text>',
        f'<text x="{x0 - 44}" y="{y0 + h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 - 44} {y0 + h / 2})">{html.escape(ylabel)}</text>',
    ]
    for i in range(5):
        yv = ymax * i / 4
        y = y0 + h - h * i / 4
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + w}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end">{_fmt(yv)}</text>')
        xv = xmax * i / 4
        x = x0 + w * i / 4
        out.append(f'<text x="{x}" y="{y0 + h + 16}" text-anchor="middle">{round(xv)}</text>')
    if limit <= ymax:
        y = y0 + h - h * limit / ymax
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + w}" y2="{y}" stroke="#888" stroke-dasharray="6 4"/>')
        out.append(
            f'<text x="{x0 + w - 4}" y="{y - 4}" text-anchor="end" fill="#666">{html.escape(limit_label)}</text>'
        )
    for name, pts in series.items():
        if not pts:
            continue
        coords = " ".join(f"{x0 + w * x / xmax:.1f},{y0 + h - h * min(y, ymax) / ymax:.1f}" for x, y in pts)
        color = COLORS.get(name, "#000")
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            cx, cy = x0 + w * x / xmax, y0 + h - h * min(y, ymax) / ymax
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{color}"/>')
    return out


def plot(results: dict[str, Any], fmt: str) -> str:
    """p99 added latency and server CPU against concurrent calls, both systems, one format."""
    lat: dict[str, list[tuple[float, float]]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}
    for system in ("ours", "baseline"):
        steps = sorted(results["series"].get(f"{system}/{fmt}", []), key=lambda s: s["calls"])
        lat[system] = [(s["calls"], s["latency_ms"]["both"]["p99_ms"] or 0.0) for s in steps]
        cpu[system] = [(s["calls"], s["cpu_pct"]) for s in steps]
    xmax = _nice_max(max((x for pts in lat.values() for x, _ in pts), default=10))
    width, height = 900, 380
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    parts += _panel(80, 40, 330, 250, f"p99 added latency ({fmt})", "ms", lat, xmax, 50, "50 ms limit", cap=200)
    parts += _panel(540, 40, 330, 250, f"server CPU ({fmt})", "% of one core", cpu, xmax, 100, "one core", cap=100)
    for i, system in enumerate(("ours", "baseline")):
        x = 200 + i * 300
        parts.append(f'<line x1="{x}" y1="{height - 22}" x2="{x + 24}" y2="{height - 22}" stroke="{COLORS[system]}" ')
        parts[-1] += 'stroke-width="3"/>'
        parts.append(f'<text x="{x + 30}" y="{height - 18}">{html.escape(NAMES[system])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------


def _summary_rows(results: dict[str, Any], fmt: str) -> list[str]:
    c = comparison(results, fmt)
    if c is None:
        return []
    rows = []
    n = c["at_calls"]
    o, b = c.get("ours"), c.get("baseline")
    if o and b:
        rows.append(
            f"| {fmt} | CPU s per call-minute (N={n}) | {_fmt(o['cpu_s_per_call_minute'])} | "
            f"{_fmt(b['cpu_s_per_call_minute'])} | {_fmt(c['cpu_ratio'])} | ≤ {TARGETS['cpu']} | "
            f"{_met(None if c['cpu_ratio'] is None else c['cpu_ratio'] <= TARGETS['cpu'])} |"
        )
        rows.append(
            f"| {fmt} | p99 added latency, ms (N={n}) | {_fmt(o['latency_ms']['both']['p99_ms'])} | "
            f"{_fmt(b['latency_ms']['both']['p99_ms'])} | {_fmt(c['p99_ratio'])} | ≤ {TARGETS['p99']} | "
            f"{_met(None if c['p99_ratio'] is None else c['p99_ratio'] <= TARGETS['p99'])} |"
        )
    cap_ok = None if c["capacity_ratio"] is None else c["capacity_ratio"] >= TARGETS["capacity"]
    floor = {s: "≥ " if c[f"{s}_harness_bound"] else "" for s in ("ours", "baseline")}
    rows.append(
        f"| {fmt} | sustained calls on one core | {floor['ours']}{_fmt(c['ours_capacity'])} | "
        f"{floor['baseline']}{_fmt(c['baseline_capacity'])} | {_fmt(c['capacity_ratio'])} | "
        f"≥ {TARGETS['capacity']} | {_met(cap_ok)} |"
    )
    if o and b:
        per_call = o["rss_per_call_kb"]
        rows.append(
            f"| {fmt} | memory per live call, kB (N={n}) | {_fmt(per_call)} | {_fmt(b['rss_per_call_kb'])} | "
            f"{_fmt(_ratio(per_call, b['rss_per_call_kb']))} | ours < 1024 | "
            f"{_met(None if per_call is None else per_call < TARGETS['rss_per_call_kb'])} |"
        )
    probes = {
        s: next((x["probe"] for x in results["series"].get(f"{s}/{fmt}", []) if "probe" in x), None)
        for s in ("ours", "baseline")
    }
    po, pb = probes["ours"], probes["baseline"]
    if po:
        h = po["hello_to_session_update"]
        up = po["hello_to_openai_handshake"]
        # The baseline opens the OpenAI socket as soon as hello arrives and sends session.update at
        # once: its hello → session.update is the connect time, the allowance of the target.
        connect = pb["hello_to_session_update"]["p50_ms"] if pb else None
        ok = None if h["p50_ms"] is None or connect is None else h["p50_ms"] - connect < TARGETS["hello_to_update_ms"]
        rows.append(
            f"| {fmt} | hello → session.update, ms p50 / max (ours: of which hello → OpenAI upgrade request; "
            f"baseline: ≈ the connect time) | {_fmt(h['p50_ms'])} / {_fmt(h['max_ms'])} ({_fmt(up['p50_ms'])}) | "
            f"{_fmt(connect)} / {_fmt(pb['hello_to_session_update']['max_ms']) if pb else '–'} | – | "
            f"ours − connect < 20 | {_met(ok)} |"
        )
        g = po["greeting_delta_to_caller"]
        rows.append(
            f"| {fmt} | first greeting delta → caller, ms p50 / max | {_fmt(g['p50_ms'])} / {_fmt(g['max_ms'])} | "
            f"{_fmt(pb['greeting_delta_to_caller']['p50_ms']) if pb else '–'} / "
            f"{_fmt(pb['greeting_delta_to_caller']['max_ms']) if pb else '–'} | – | < 2 | "
            f"{_met(None if g['p50_ms'] is None else g['p50_ms'] < TARGETS['greeting_ms'])} |"
        )
    return rows


def _steps_table(results: dict[str, Any], fmt: str) -> list[str]:
    head = (
        "| system | N | CPU % of core (of it kernel) | CPU s / call-min | µs / frame | p50 | p99 | max | "
        "p99 caller→OpenAI | p99 OpenAI→caller | frames lost | gated (baseline) | RSS idle → live MB | peak MB | "
        "kB / call | harness % | other load on core 1 % | sustained |"
    )
    rows = [head, "|" + "---|" * 18]
    present = tail.systems(results, fmt)
    for system in [s for s in present if s != "baseline"] + [s for s in present if s == "baseline"]:
        for s in sorted(results["series"].get(f"{system}/{fmt}", []), key=lambda s: s["calls"]):
            lat = s["latency_ms"]
            lost = s["inbound"]["lost"] + s["outbound"]["lost"]
            rows.append(
                f"| {system} | {s['calls']} | {_fmt(s['cpu_pct'])} ({_fmt(s.get('cpu_sys_pct'))}) | "
                f"{_fmt(s['cpu_s_per_call_minute'])} | "
                f"{_fmt(s['cpu_us_per_frame'])} | {_fmt(lat['both']['p50_ms'])} | {_fmt(lat['both']['p99_ms'])} | "
                f"{_fmt(lat['both']['max_ms'])} | {_fmt(lat['caller_to_openai']['p99_ms'])} | "
                f"{_fmt(lat['openai_to_caller']['p99_ms'])} | {lost} | {s['inbound']['gated']} | "
                f"{_fmt(s['rss_idle_mb'])} → {_fmt(s['rss_live_mb'])} | {_fmt(s['peak_rss_mb'])} | "
                f"{_fmt(s['rss_per_call_kb'])} | {_fmt(s['harness_cpu_pct'])} | {_fmt(s['core1_other_pct'])} | "
                f"{'yes' if s['sustained'] else 'no: ' + '; '.join(s['problems'])} |"
            )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _profile_section(results: dict[str, Any]) -> list[str]:
    prof = results.get("profile")
    if not prof:
        return []
    summary = prof["summary"]
    step = prof["step"]
    lines = [
        "## Where our server spends its CPU",
        "",
        f"py-spy sampled our daphne process at 200 Hz during a {step['window_s']:g} s window of "
        f"N={prof['calls']} {prof['format']} calls ({step['cpu_pct']}% of the core, "
        f"{_fmt(step['cpu_us_per_frame'])} µs of CPU per relayed frame, {summary['samples']} samples; "
        "time in C code such as orjson or the socket calls is charged to the Python function that called it).",
        "",
        "By package (self time):",
        "",
        "| package | samples | % |",
        "|---|---|---|",
        *[f"| {name} | {n} | {pct} |" for name, n, pct in summary["packages"]],
        "",
        "Top functions by self time:",
        "",
        "| function | samples | % |",
        "|---|---|---|",
        *[f"| `{_cell(name)}` | {n} | {pct} |" for name, n, pct in summary["self"][:20]],
        "",
        "Top functions by inclusive time (the function and everything it called; the event loop's and the "
        "server's own outer frames left out):",
        "",
        "| function | samples | % |",
        "|---|---|---|",
        *[f"| `{_cell(name)}` | {n} | {pct} |" for name, n, pct in summary["inclusive"][:20]],
        "",
    ]
    return lines


HOT_PATH = """\
## What our server does per frame

The baseline, per frame, wakes a task to read it, parses it with `json`, and awaits a send that
takes a lock and asks the OS for a masking key. Ours does more (checks, playback tracking,
barge-in, records, limits) with less machinery around it:

- **The 46elks socket.** Daphne stays the server, but a call socket gets a fast lane
  (`voiceagent/fastlane.py`): it is read straight from the event loop, and the one shape audio
  comes in (a complete, masked, unfragmented text frame) is unmasked with websockets' C speedup
  and handed to the session as bytes. Everything else (handshake, pings, fragments, frames split
  across reads, closing) still goes through autobahn, in order. Frames for 46elks are sent at
  once, where Twisted would wait for the next loop iteration.
- **No task switch.** The session's `on_message` and its OpenAI handlers are plain functions: a
  caller frame is parsed (orjson), checked without decoding (length, base64 alphabet) and
  written to OpenAI in the callback that read it, and an OpenAI delta goes to 46elks the same
  way. No ASGI message, queue or task per frame. Under `runserver` the same session runs over
  plain ASGI messages.
- **The OpenAI socket.** websockets does the handshake, pings, closing and parsing; a subclass of
  its connection hands each event over as it is parsed, and `calls/wsframes.py` builds the
  frames, with masking keys taken from a block of `os.urandom`.
- **Off the audio path.** One task writes the transcript lines of all calls, one bulk upsert per
  flush (a quarter of a second apart); dashboard events are queued; the in-memory channel layer
  sweeps once a second; SQLite runs in WAL mode, so a call's setup never waits for another's writes.
- **Pauses.** The startup heap is frozen for the garbage collector and the GIL switch interval is
  1 ms, so a database thread holds the event loop up for about a millisecond at most.
"""


METHOD = """\
## How it is measured

- **Load.** `bench/loadgen.py` runs N concurrent 46elks calls from one process, started at 25 calls
  a second: `hello`, then the caller's audio in 20 ms frames in real time from the moment the server
  asks with `listening` (calls spread evenly over the 20 ms period), playback as 46elks keeps it
  (`interrupt` clears it and ignores audio until `sending`; `sync` is answered when everything before it
  has played), `bye` at the end. The caller talks for about a second, waits for the answer to play
  out, pauses and talks again; every third answer is cut into shortly after it starts (a barge-in).
- **OpenAI.** The tests' fake, `calls/testing/fake_openai/` (`bench/fake_openai.py` runs it and
  measures through its public hooks), greets, answers every turn with 2.5 s of audio in 100 ms deltas
  sent every 20 ms (five times faster than real time, as the service does), cancels a reply when the
  caller speaks over it, truncates, and transcribes the caller 150 ms after each turn. It runs with
  its load knobs (`manage.py fake_openai --load`): lean connections (`calls/testing/wire.py` framing
  on plain asyncio), no schema validation, no copies of audio or records of appends and deltas; and
  for the benchmark its voice detector reads a flag in the frame instead of measuring loudness: it
  must stay cheap beside the server it measures.
- **Processes.** The server runs alone on core 1 (`taskset -c 1`); the fake and the load generator
  run as two processes on core 0 (on uvloop when installed). Every step starts fresh processes. Our
  server runs as the `Procfile` runs it, `python -m voiceagent.server` (daphne with the call
  sockets' fast lane, on uvloop, access log on), with production settings (`DEBUG` off,
  `LOG_LEVEL=WARNING`, in-memory channel layer) on a throwaway SQLite database holding one assistant
  per format, with the per-process and per-number call limits raised out of the way; the baseline is
  `bench/baseline_bridge.py` on plain asyncio, as the guide runs it. With `--realtime P` all of them
  run SCHED_FIFO, so that other work on a shared machine cannot delay them (without it: `nice -10`).
- **Added latency.** Every frame carries a tag in its first 18 audio bytes: a stream id, a sequence
  number and the monotonic time it was sent (`bench/frames.py`). Bridges forward the base64 untouched,
  so the receiving end (fake OpenAI for caller audio, load generator for reply audio) reads the tag
  and subtracts. "Both" merges the two directions. The figure includes the harness's own
  socket and event-loop time, the same for both systems.
- **Loss and order.** Every frame sent within the window must arrive once and in order. Two
  exceptions are counted apart: the baseline drops caller audio while a reply is being generated
  (`is_speaking`, as the guide has it; "gated"), and a reply frame of an answer the caller already
  cut into may be dropped by a bridge that stops the interrupted answer (ours does).
- **CPU and memory.** CPU is the server process's utime + stime (`/proc/<pid>/stat`) over the window
  (after ramp-up and warm-up), divided by N × window minutes; µs per frame divides it by the frames
  relayed both ways. RSS per call is (RSS with N live calls − RSS after one warm-up call) / N; peak RSS
  is VmHWM.
- **Sustained.** A step is sustained when every call connected, nothing was lost, reordered or
  duplicated, and p99 added latency (both directions) is under 50 ms. N rises along a ladder, each N
  run for both systems in turn, until a system's step is not sustained; then the gap is halved twice.
  A failed step is repeated once when other work used core 1 meanwhile or the harness was late. The
  ratios compare the two systems at the largest N both sustained.
- **Startup.** The first step of each series first makes probe calls one at a time on the idle
  server: hello (sent by the caller) → `session.update` (received by the fake), split at the moment the
  fake sees the WebSocket upgrade request, and first greeting delta (sent by the fake) → caller. The
  baseline connects to OpenAI as soon as hello arrives and sends `session.update` at once, so its
  figure is the connect time the target allows for.
- **Caveats.** Both ends of every measurement share core 0, so latency includes their scheduling;
  "harness %" shows how busy they were. A step that failed with the harness above 85% of core 0 (or
  its pacing late by more than 20 ms) is marked, and the capacity above it is shown as "≥ N": the
  harness, not the server, may have been the limit. "Other load on core 1" is CPU used on the server's
  core by anything else during the window; a non-zero value means the machine was shared.
"""


TAIL_LINK = (
    "The tail with `FAST_LANE=0` and the public-API lane beside ours and the baseline, over 60 s windows, "
    "with latency per second: [performance-tail.md](performance-tail.md) (`make bench-tail`)."
)


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    o = results["options"]
    when = datetime.datetime.fromtimestamp(results["started"], datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    took = round((results["finished"] - results["started"]) / 60, 1)
    formats = [f for f in ("pcm_24000", "ulaw") if any(k.endswith("/" + f) for k in results["series"])]
    lines = [
        "# Performance: our bridge against the copy-paste baseline",
        "",
        "A voice bridge must add no audible delay and carry many calls per core. The bar is the bridge a user",
        "would otherwise copy from 46elks' guide (`bench/baseline_bridge.py`, ported to the GA protocol): it",
        "only relays, so matching it while also routing, recording transcripts and enforcing limits is the goal.",
        "",
        "*This file is written by the benchmark; edit `bench/report.py`, not the file.*",
        "",
        "## Reproduce",
        "",
        "```",
        "make bench                                   # full run (~1 h with 60 s windows), rewrites this file",
        'make bench BENCH_ARGS="--realtime 10 --profile"   # as below: SCHED_FIFO on a shared machine (root)',
        ".venv/bin/python -m bench.run --quick --out /tmp/bench   # harness check, a few seconds",
        ".venv/bin/python -m bench.run --help         # formats, systems, N, window, profiling",
        "make bench-tail     # the tail, FAST_LANE=0 and the public-API lane at N=100: performance-tail.md",
        "```",
        "",
        f"Command: `{results.get('command', 'python -m bench.run')}`",
        "",
        f"Run {when}, {took} min, options: window {o['duration_s']:g} s, warm-up {o['warmup_s']:g} s, "
        f"{o['frame_ms']:g} ms caller frames, replies of {o['answer_ms']:g} ms, harness on "
        f"{'uvloop' if o.get('uvloop') else 'asyncio'}, benchmark processes at "
        f"{'SCHED_FIFO priority ' + str(o['realtime']) if o.get('realtime') else 'nice ' + str(o.get('nice', 0))}"
        f"{', quick mode' if o.get('quick') else ''}.",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu_model']}, {m['memory_gb']} GB; Linux {m['kernel']}; Python "
        f"{m['python']}, Django {m['django']}, daphne {m['daphne']}, websockets {m['websockets']}.",
        "",
        "## Summary",
        "",
        "| format | figure | ours | baseline | ours / baseline | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt in formats:
        lines += _summary_rows(results, fmt)
    lines.append("")
    for fmt in formats:
        lines += [f"![p99 latency and CPU against concurrent calls, {fmt}](performance-{fmt}.svg)", ""]
    lines += ["## All steps", ""]
    for fmt in formats:
        lines += [f"### {fmt}", "", *_steps_table(results, fmt), ""]
        c = comparison(results, fmt)
        if c and c["ratios_by_calls"]:
            ratios = ", ".join(
                f"N={r['calls']}: CPU {_fmt(r['cpu_ratio'])}, p99 {_fmt(r['p99_ratio'])}" for r in c["ratios_by_calls"]
            )
            lines += [f"Ours / baseline at each N both ran: {ratios}.", ""]
    tail_lines, _ = tail.section(results, formats)
    lines += tail_lines
    lines += [TAIL_LINK, ""]
    lines.append(HOT_PATH)
    lines += _profile_section(results)
    lines.append(METHOD)
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: Path) -> Path:
    """performance.md, one SVG per format and results.json into `out`; returns the .md path."""
    out.mkdir(parents=True, exist_ok=True)
    for key in results["series"]:
        fmt = key.split("/", 1)[1]
        (out / f"performance-{fmt}.svg").write_text(plot(results, fmt))
    formats = sorted({key.split("/", 1)[1] for key in results["series"]})
    for name, svg in tail.section(results, formats)[1].items():
        (out / name).write_text(svg)
    (out / "performance-results.json").write_text(json.dumps(results, indent=1))
    path = out / "performance.md"
    path.write_text(render(results))
    return path
