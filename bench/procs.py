"""Child processes pinned to one core, and what /proc says about them."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc/<pid>/stat)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def core_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy ticks, all ticks) since boot."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *values = line.split()
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]
            out[int(name[3:])] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return out


# Set by bench.run. NICE < 0 lets the benchmark's processes win CPU share over other work;
# REALTIME > 0 runs them SCHED_FIFO at that priority, so other work cannot delay them at all
# (the kernel still leaves others 5% of each core).
NICE = 0
REALTIME = 0


def pinned(cmd: list[str], core: int | None) -> list[str]:
    """The command run on one core only (taskset) at the benchmark's priority (nice or chrt)."""
    if core is not None and core < (os.cpu_count() or 1) and shutil.which("taskset") is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    if REALTIME and os.geteuid() == 0 and shutil.which("chrt") is not None:
        cmd = ["chrt", "-f", str(REALTIME), *cmd]
    elif NICE and can_renice(NICE):
        cmd = ["nice", "-n", str(NICE), *cmd]
    return cmd


def can_renice(value: int) -> bool:
    """Whether this process may start children at `value` (below 0 needs root or CAP_SYS_NICE)."""
    return value >= 0 or os.geteuid() == 0


class Child:
    """A child process with a log file; stdout may be kept as a pipe for marker lines."""

    def __init__(self, name: str, cmd: list[str], *, core: int | None, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.cmd = pinned(cmd, core)
        self.env = env
        self.log_path = log
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self, *, stdin: bool = False, stdout: bool = False) -> Child:
        self._log = open(self.log_path, "ab")  # noqa: ASYNC230 (a local log file, closed in stop)
        self.process = await asyncio.create_subprocess_exec(
            *self.cmd,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout else self._log,
            stderr=self._log,
            limit=2**30,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def readline(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} ended unexpectedly:\n{self.log_tail()}")
        return line.decode().strip()

    async def send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def wait_port(self, port: int, timeout: float = 30.0) -> None:
        """Return once the process accepts TCP connections on `port`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on port {port} within {timeout:g} s:\n{self.log_tail()}")

    async def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def python() -> str:
    return sys.executable


async def loop_lag_buckets(server: Child, token: str) -> dict[str, float] | str | None:
    """The server's voiceagent_event_loop_lag_seconds (cumulative buckets by `le`, `sum`, `count`) from /metrics.

    None for a server without /metrics (the baseline); a string saying why when the scrape failed.
    """
    url = getattr(server, "metrics_url", None)
    if not url:
        return None
    import urllib.request

    def scrape() -> str:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.read().decode()

    try:
        text = await asyncio.to_thread(scrape)
    except OSError as exc:
        return f"scraping /metrics failed: {exc}"
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("voiceagent_event_loop_lag_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        if "_bucket{" in name:
            out[name.split('le="', 1)[1].split('"', 1)[0]] = float(value)
        elif name.endswith("_sum") or name.endswith("_count"):
            out[name.rsplit("_", 1)[1]] = float(value)
    return out or None
