"""The benchmark: our server against the copy-paste baseline bridge, under the same simulated calls.

    make bench                         # the full run; writes docs/performance.md (+ SVG plots)
    .venv/bin/python -m bench.run --quick --out /tmp/bench   # a few seconds, to check the harness

For each audio format and each system (our daphne server, the baseline bridge) it starts, per
step: the fake OpenAI (core 0), the server (core 1, alone) and the load generator (core 0) with
N concurrent calls; it measures the server's CPU and memory from /proc during a fixed window,
collects the frame-level records of both ends, and raises N until p99 added latency reaches
50 ms or a frame is lost. The first step of each series first makes probe calls one at a time
on the idle server (hello → session.update, greeting delta → caller).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.analysis import probe_figures, step_figures
from bench.setup_data import NUMBERS

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("baseline", "ours")  # the baseline first: our database is migrated meanwhile
# Our server, switched: FAST_LANE=0 (plain daphne/Channels), and the experimental public-API lane.
VARIANTS = {"ours": ([], {}), "ours-nofast": ([], {"FAST_LANE": "0"}), "ours-public": (["--lane", "public"], {})}
METRICS_TOKEN = "bench-" + secrets.token_urlsafe(24)
FORMATS = ("pcm_24000", "ulaw")
LADDER = (10, 25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 650, 800)
SERVER_CORE, HARNESS_CORE = 1, 0
NOISY_PCT = 10.0  # other work on the server's core above this makes a failed step worth repeating
ELKS_SECRET = "bench-" + secrets.token_urlsafe(24)
# Environment of the parent that must not reach the servers (the test suite's database, Redis…).
DROPPED_ENV = ("DATABASE_URL", "REDIS_URL", "VOICEAGENT_DB_NAME", "DEBUG", "DJANGO_SETTINGS_MODULE")


class Bench:
    def __init__(self, options: argparse.Namespace) -> None:
        self.o = options
        self.work = Path(tempfile.mkdtemp(prefix="voiceagent-bench-"))
        self.db_url = options.database_url or f"sqlite:///{self.work / 'bench.sqlite3'}"
        self.step_no = 0

    # -- environment ---------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env["PYTHONPATH"] = str(ROOT)
        return env

    def django_env(self, openai_url: str = "ws://127.0.0.1:9/v1/realtime") -> dict[str, str]:
        env = self.base_env()
        env.update(
            DJANGO_SETTINGS_MODULE="voiceagent.settings",
            DATABASE_URL=self.db_url,
            SECRET_KEY="bench-" + secrets.token_urlsafe(32),
            ELKS_WS_SECRET=ELKS_SECRET,
            OPENAI_API_KEY="sk-bench",
            OPENAI_REALTIME_URL=openai_url,
            LOG_LEVEL="WARNING",
            # The product's safety limits would refuse calls long before one core is full.
            MAX_CALLS_PER_PROCESS="100000",
            MAX_CALLS_PER_NUMBER="100000",
            SECURE_SSL_REDIRECT="0",
            ALLOWED_HOSTS="127.0.0.1",  # /metrics, for the loop lag
        )
        return env

    async def prepare_database(self) -> None:
        """A throwaway SQLite database with the benchmark's assistants."""
        env = self.django_env()
        for cmd in (["manage.py", "migrate", "--noinput", "-v", "0"], ["-m", "bench.setup_data"]):
            proc = await asyncio.create_subprocess_exec(
                procs.python(),
                *cmd,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await proc.communicate()
            if proc.returncode:
                raise SystemExit(f"preparing the database failed ({' '.join(cmd)}):\n{output.decode()[-3000:]}")

    # -- one step ------------------------------------------------------------------------------

    async def start_fake(self, port: int) -> procs.Child:
        cmd = [procs.python(), "-m", "bench.fake_openai", "--port", str(port), "--answer-ms", str(self.o.answer_ms)]
        if self.o.uvloop:
            cmd.append("--uvloop")
        fake = procs.Child("fake OpenAI", cmd, core=HARNESS_CORE, env=self.base_env(), log=self.log("fake"))
        await fake.start(stdin=True, stdout=True)
        try:
            line = await fake.readline(30)
            if not line.startswith("READY "):
                raise RuntimeError(f"fake OpenAI said {line!r}:\n{fake.log_tail()}")
        except BaseException:
            await fake.stop()
            raise
        return fake

    async def start_server(self, system: str, fmt: str, openai_port: int) -> tuple[procs.Child, str]:
        port = procs.free_port()
        openai_url = f"ws://127.0.0.1:{openai_port}/v1/realtime"
        if system in VARIANTS:
            await self.database
            args, extra = VARIANTS[system]
            env = self.django_env(openai_url)
            env.update(extra, METRICS_TOKEN=METRICS_TOKEN)
            # As the Procfile runs it: daphne with the call sockets' fast lane, on uvloop.
            cmd = [procs.python(), "-m", "voiceagent.server", "--host", "127.0.0.1", "--port", str(port), *args]
            url = f"ws://127.0.0.1:{port}/ws/elks/{ELKS_SECRET}/"
        else:
            env = self.base_env()
            env.update(
                OPENAI_API_KEY="sk-bench", OPENAI_REALTIME_URL=openai_url, BASELINE_CODEC=fmt, BASELINE_HOST="127.0.0.1"
            )
            cmd = [procs.python(), str(ROOT / "bench" / "baseline_bridge.py"), str(port)]
            url = f"ws://127.0.0.1:{port}/"
        server = procs.Child(system, cmd, core=SERVER_CORE, env=env, log=self.log(system))
        server.metrics_url = f"http://127.0.0.1:{port}/metrics" if system in VARIANTS else None  # type: ignore[attr-defined]
        await server.start()
        try:
            await server.wait_port(port)
        except BaseException:
            await server.stop()
            raise
        return server, url

    def log(self, name: str) -> Path:
        return self.work / f"step{self.step_no:02d}-{name}.log"

    async def step(
        self, system: str, fmt: str, calls: int, *, probes: int = 0, profile: bool = False
    ) -> dict[str, Any]:
        self.step_no += 1
        started = time.monotonic()
        fake, (server, url) = await self._start_pair(system, fmt)
        measures: dict[str, Any] = {}
        try:
            loadgen = await self.run_loadgen(server, fake, url, fmt, calls, probes, measures, profile)
            stats = json.loads(await self._fake_stats(fake, loadgen))
        finally:
            await server.stop()
            await fake.send("quit")
            await fake.stop()
        figures = step_figures(system=system, calls=calls, loadgen=loadgen, fake=stats, measures=measures)
        figures["format"] = fmt
        if probes:
            figures["probe"] = probe_figures(loadgen, stats)
        if profile:
            figures["profile_file"] = str(measures.get("profile_file"))
        figures["step_s"] = round(time.monotonic() - started, 1)
        self.say(_step_line(figures))
        return figures

    async def _start_pair(self, system: str, fmt: str) -> tuple[procs.Child, tuple[procs.Child, str]]:
        """The fake OpenAI and the server, started side by side (the server connects only per call)."""
        fake_port = procs.free_port()
        started = await asyncio.gather(
            self.start_fake(fake_port), self.start_server(system, fmt, fake_port), return_exceptions=True
        )
        failures = [r for r in started if isinstance(r, BaseException)]
        if failures:
            for r in started:
                if isinstance(r, procs.Child):
                    await r.stop()
                elif isinstance(r, tuple):
                    await r[0].stop()
            raise failures[0]
        return started[0], started[1]  # type: ignore[return-value]

    async def _fake_stats(self, fake: procs.Child, loadgen: dict[str, Any]) -> str:
        w0, w1 = loadgen["window"] or (0.0, 0.0)
        await fake.send(f"stats {w0!r} {w1!r}")
        return await fake.readline(60)

    async def run_loadgen(
        self,
        server: procs.Child,
        fake: procs.Child,
        url: str,
        fmt: str,
        calls: int,
        probes: int,
        measures: dict[str, Any],
        profile: bool,
    ) -> dict[str, Any]:
        out = self.work / f"step{self.step_no:02d}-loadgen.json"
        o = self.o
        cmd = [
            procs.python(), "-m", "bench.loadgen", "--url", url, "--to", NUMBERS[fmt], "--format", fmt,
            "--calls", str(calls), "--ramp-s", str(max(0.5, calls / o.ramp_rate)), "--warmup-s", str(o.warmup_s),
            "--duration-s", str(o.duration_s), "--cooldown-s", str(o.cooldown_s), "--frame-ms", str(o.frame_ms),
            "--probe", str(probes), "--warm-call", "--out", str(out),
        ]  # fmt: skip
        if o.uvloop:
            cmd.append("--uvloop")
        gen = procs.Child("load generator", cmd, core=HARNESS_CORE, env=self.base_env(), log=self.log("loadgen"))
        await gen.start(stdout=True)
        sampler: asyncio.Task | None = None
        try:
            while True:
                line = await gen.readline(timeout=120 + calls)
                word, *rest = line.split()
                if word == "IDLE":
                    measures["rss_idle_kb"] = procs.memory_kb(server.pid)["VmRSS"]
                elif word == "WINDOW":
                    w0, w1 = float(rest[0]), float(rest[1])
                    await fake.send("gc off")
                    sampler = asyncio.ensure_future(self.sample(server, fake, gen, w0, w1, measures, profile))
                elif word == "DONE":
                    break
            if sampler is not None:
                await sampler
            if await gen.process.wait():
                raise RuntimeError(f"the load generator failed:\n{gen.log_tail()}")
        finally:
            await gen.stop()
        return json.loads(out.read_text())

    async def sample(
        self,
        server: procs.Child,
        fake: procs.Child,
        gen: procs.Child,
        w0: float,
        w1: float,
        measures: dict[str, Any],
        profile: bool,
    ) -> None:
        """CPU at the window's edges, RSS through it; optionally py-spy on the server meanwhile."""
        await asyncio.sleep(max(0.0, w0 - time.monotonic()))
        # The scrape runs beside the window's start, not before it: CPU is read at the edge itself.
        lag0_task = asyncio.ensure_future(procs.loop_lag_buckets(server, METRICS_TOKEN))
        u0, s0 = procs.cpu_split(server.pid)
        c0 = u0 + s0
        f0, g0 = procs.cpu_s(fake.pid), procs.cpu_s(gen.pid)
        k0 = procs.core_ticks()
        spy = None
        if profile:
            spy = await self.start_profiler(server.pid, w1 - w0)
        rss = procs.memory_kb(server.pid)["VmRSS"]
        while time.monotonic() < w1:
            await asyncio.sleep(min(0.25, max(0.0, w1 - time.monotonic())))
            rss = procs.memory_kb(server.pid)["VmRSS"]
        u1, s1 = procs.cpu_split(server.pid)
        c1 = u1 + s1
        f1, g1 = procs.cpu_s(fake.pid), procs.cpu_s(gen.pid)
        k1 = procs.core_ticks()
        memory = procs.memory_kb(server.pid)
        lag0, lag1 = await lag0_task, await procs.loop_lag_buckets(server, METRICS_TOKEN)
        if isinstance(lag0, str) or isinstance(lag1, str):
            measures["loop_lag_error"] = lag0 if isinstance(lag0, str) else lag1
        elif lag0 and lag1:
            measures["loop_lag"] = {k: lag1[k] - lag0.get(k, 0.0) for k in lag1}
        measures.update(
            server_cpu_s=c1 - c0,
            server_sys_s=s1 - s0,
            harness_cpu_s=(f1 - f0) + (g1 - g0),
            fake_cpu_s=f1 - f0,
            loadgen_cpu_s=g1 - g0,
            rss_live_kb=rss,
            peak_rss_kb=memory["VmHWM"],
        )
        if SERVER_CORE in k0 and SERVER_CORE in k1:
            busy = (k1[SERVER_CORE][0] - k0[SERVER_CORE][0]) / procs.CLOCK_TICKS
            measures["core1_other_pct"] = max(0.0, 100 * (busy - (c1 - c0)) / (w1 - w0))
        if spy is not None:
            await spy.process.wait()
            await spy.stop()
            measures["profile_file"] = spy.out

    async def start_profiler(self, pid: int, seconds: float) -> procs.Child:
        out = self.work / f"step{self.step_no:02d}-profile.txt"
        spy_bin = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy_bin) if spy_bin.exists() else "py-spy", "record", "--pid", str(pid), "--rate", "200"]
        # --gil: only the thread running Python (idle waits and GIL-free C calls are not samples)
        cmd += ["--duration", str(max(1, int(seconds))), "--format", "raw", "--nonblocking", "--gil"]
        cmd += ["--output", str(out)]
        spy = procs.Child("py-spy", cmd, core=HARNESS_CORE, env=self.base_env(), log=self.log("py-spy"))
        spy.out = out  # type: ignore[attr-defined]
        return await spy.start()

    # -- series --------------------------------------------------------------------------------

    async def attempt(self, system: str, fmt: str, calls: int, *, probes: int = 0) -> dict[str, Any]:
        """One step; repeated (up to --retries) when it failed while other work shared the server's core,
        or while the harness could not keep time (both say more about the machine than the server)."""
        r = await self.step(system, fmt, calls, probes=probes)
        for _ in range(self.o.retries):
            if r["sustained"] or (r["core1_other_pct"] < NOISY_PCT and not r["harness_bound"]):
                break
            why = "the harness was late" if r["harness_bound"] else f"core 1 was {r['core1_other_pct']}% busy elsewhere"
            self.say(f"  ({why}: trying N={calls} again)")
            first = r
            r = await self.step(system, fmt, calls, probes=probes)
            r["retried_after"] = first["problems"]
        return r

    async def compare(self, fmt: str) -> dict[str, list[dict[str, Any]]]:
        """Both systems, N rising along the ladder, each N run for both in turn (same conditions);
        a system drops out at its first unsustained step, then its gap is halved --refine times."""
        steps: dict[str, list[dict[str, Any]]] = {s: [] for s in self.o.systems}
        passed: dict[str, int | None] = dict.fromkeys(self.o.systems)
        failed: dict[str, int | None] = dict.fromkeys(self.o.systems)
        for n in self.o.calls or LADDER:
            active = [s for s in self.o.systems if failed[s] is None]
            if not active:
                break
            for system in active:
                r = await self.attempt(system, fmt, n, probes=self.o.probes if not steps[system] else 0)
                steps[system].append(r)
                if r["sustained"]:
                    passed[system] = n
                else:
                    failed[system] = n
        for system in self.o.systems:
            lo, hi = passed[system], failed[system]
            for _ in range(self.o.refine if (lo and hi) else 0):
                mid = (lo + hi) // 2
                if mid in (lo, hi) or (hi - lo) / hi < 0.08:
                    break
                r = await self.attempt(system, fmt, mid)
                steps[system].append(r)
                lo, hi = (mid, hi) if r["sustained"] else (lo, mid)
        return {s: sorted(v, key=lambda r: r["calls"]) for s, v in steps.items()}

    async def run(self) -> dict[str, Any]:
        o = self.o
        self.say(f"work directory: {self.work}")
        self.database = asyncio.ensure_future(self.prepare_database())
        results: dict[str, Any] = {"machine": machine(), "options": _options(o), "series": {}, "started": time.time()}
        results["command"] = "python -m bench.run " + " ".join(sys.argv[1:])
        for fmt in o.formats:
            for system, steps in (await self.compare(fmt)).items():
                results["series"][f"{system}/{fmt}"] = steps
        if o.profile:
            sustained = [s["calls"] for s in results["series"].get(f"ours/{o.formats[0]}", []) if s["sustained"]]
            n = o.profile_calls or max(10, int(0.7 * max(sustained, default=50)))
            step = await self.step("ours", o.formats[0], n, profile=True)
            results["profile"] = {"calls": n, "format": o.formats[0], "step": step}
            from bench.profile import summarise

            results["profile"]["summary"] = summarise(Path(step["profile_file"]))
        await self.database
        results["finished"] = time.time()
        return results

    def say(self, text: str) -> None:
        print(text, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    import daphne
    import django
    import websockets

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "django": django.get_version(),
        "daphne": daphne.__version__,
        "websockets": websockets.__version__,
    }


def _options(o: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(o).items() if k not in ("out",)}


def _step_line(f: dict[str, Any]) -> str:
    lat = f["latency_ms"]["both"]
    verdict = "ok" if f["sustained"] else "NOT sustained: " + "; ".join(f["problems"])
    return (
        f"{f['system']:>8} {f['format']:>9} N={f['calls']:<4} cpu {f['cpu_pct']:5.1f}% "
        f"({f['cpu_s_per_call_minute']} s/call-min)  p50 {lat['p50_ms']} p99 {lat['p99_ms']} max {lat['max_ms']} ms  "
        f"rss/call {f['rss_per_call_kb']} kB  harness {f['harness_cpu_pct']}%  {verdict}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny N, short window (harness check)")
    parser.add_argument("--out", default=None, help="directory for performance.md, plots and results.json")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"of baseline,{','.join(VARIANTS)} (ours-nofast: FAST_LANE=0; ours-public: the public-API lane)",
    )
    parser.add_argument("--formats", default=None, help="pcm_24000,ulaw (quick mode: pcm_24000)")
    parser.add_argument("--calls", default="", help="comma-separated N to run instead of the ladder search")
    parser.add_argument("--duration-s", type=float, default=60.0, help="measurement window per step")
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--cooldown-s", type=float, default=1.5)
    parser.add_argument("--ramp-rate", type=float, default=25.0, help="calls started per second")
    parser.add_argument("--frame-ms", type=float, default=20.0, help="caller audio per 46elks frame")
    parser.add_argument("--answer-ms", type=float, default=2500.0, help="audio length of each fake reply")
    parser.add_argument("--probes", type=int, default=20, help="sequential probe calls per series")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the first failure")
    parser.add_argument("--retries", type=int, default=1, help="repeats of a failed step while core 1 was shared")
    parser.add_argument("--profile", action="store_true", help="also profile our server with py-spy")
    parser.add_argument("--profile-calls", type=int, default=0)
    parser.add_argument(
        "--harness-loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="event loop of the load generator and the fake OpenAI (never of the servers); auto: uvloop if installed",
    )
    parser.add_argument(
        "--database-url", default="", help="run our server on this database (default: throwaway SQLite)"
    )
    parser.add_argument("--nice", type=int, default=-10, help="priority of the benchmark's processes (root only)")
    parser.add_argument(
        "--realtime",
        type=int,
        default=0,
        help="run the benchmark's processes SCHED_FIFO at this priority (root only): for a machine shared with "
        "other work, which then gets only what the benchmark leaves",
    )
    parser.add_argument(
        "--tail",
        action="store_true",
        help="the tail run: N=100 (unless --calls), pcm_24000, baseline and our three variants, no ladder search; "
        "writes performance-tail.md instead of performance.md",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, profile, database)")
    o = parser.parse_args(argv)
    if o.tail:
        o.calls = o.calls or "100"
        o.formats = o.formats or FORMATS[0]
        if o.systems == ",".join(SYSTEMS):
            o.systems = ",".join(("baseline", *VARIANTS))
        o.refine, o.retries = 0, 0
    o.systems = [s for s in o.systems.split(",") if s]
    o.formats = [f for f in (o.formats or (FORMATS[0] if o.quick else ",".join(FORMATS))).split(",") if f]
    o.calls = tuple(int(n) for n in o.calls.split(",") if n)
    o.uvloop = o.harness_loop == "uvloop" or (
        o.harness_loop == "auto" and importlib.util.find_spec("uvloop") is not None
    )
    if o.quick:
        o.calls = o.calls or (2,)
        o.duration_s, o.warmup_s, o.cooldown_s, o.probes, o.refine, o.retries = 4.0, 0.3, 0.3, 2, 0, 0
        o.answer_ms = 600.0  # short replies, so that a turn or two fit into the short window
    return o


def main(argv: list[str] | None = None) -> None:
    o = parse_args(argv)
    if o.out is None:
        o.out = str(ROOT / "docs") if not o.quick else tempfile.mkdtemp(prefix="voiceagent-bench-out-")
    out = Path(o.out)
    out.mkdir(parents=True, exist_ok=True)
    procs.NICE = o.nice if procs.can_renice(o.nice) else 0
    o.nice = procs.NICE
    procs.REALTIME = o.realtime if os.geteuid() == 0 else 0
    o.realtime = procs.REALTIME
    bench = Bench(o)
    results = asyncio.run(bench.run())  # on failure the work directory (logs) stays for a look
    if o.tail:
        from bench.tail import write_tail_report

        path = write_tail_report(results, out)
    else:
        from bench.report import write_report

        path = write_report(results, out)
    print(f"report: {path}")
    if not o.keep:
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
