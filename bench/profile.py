"""Summaries of a py-spy `--format raw` profile: where the server's CPU goes, by function and package.

Each raw line is one distinct stack (`outer (file:line);…;inner (file:line) count`); the innermost
frame is where the CPU was when sampled (self time), every frame on the stack shares it
(inclusive time).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
_PACKAGES = (
    ("twisted/", "twisted"),
    ("autobahn/", "autobahn"),
    ("daphne/", "daphne"),
    ("channels/", "channels"),
    ("asgiref/", "asgiref"),
    ("django/", "django"),
    ("websockets/", "websockets"),
    ("asyncio/", "asyncio"),
    ("calls/", "calls (ours)"),
    ("assistants/", "assistants (ours)"),
    ("voiceagent/", "voiceagent (ours)"),
    ("concurrent/", "threads"),
    ("threading.py", "threads"),
)


# Frames on (nearly) every stack of an event-loop server: they say nothing about where time goes.
OUTER_FRAMES = frozenset(
    {
        "_run_module_as_main",
        "_run_code",
        "<module>",
        "CommandLineInterface.entrypoint",
        "CommandLineInterface.run",
        "Server.run",
        "AsyncioSelectorReactor.run",
        "BaseEventLoop.run_forever",
        "BaseEventLoop._run_once",
        "Handle._run",
        "Thread._bootstrap",
        "Thread._bootstrap_inner",
        "Thread.run",
        "_worker",
        "_WorkItem.run",
    }
)


def _split(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m["func"], m["file"]


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker.startswith("/lib/python3"):
                file = file.split("/", 1)[1] if "/" in file else file
    return file.replace(str(Path(__file__).resolve().parent.parent) + "/", "")


def package(file: str) -> str:
    short = _short(file)
    for marker, name in _PACKAGES:
        if marker in short or short.startswith(marker.rstrip("/")):
            return name
    return short.split("/", 1)[0] or "other"


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    """Top functions by self and inclusive samples, and samples per package (self)."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_split(f) for f in stack.split(";")]
        func, file = frames[-1]
        self_counts[f"{func} ({_short(file)})"] += n
        packages[package(file)] += n
        for name in {f"{fn} ({_short(fl)})" for fn, fl in frames if fn not in OUTER_FRAMES}:
            incl_counts[name] += n

    def table(counts: Counter[str]) -> list[list[Any]]:
        return [[name, n, round(100 * n / total, 1)] for name, n in counts.most_common(top)] if total else []

    return {
        "samples": total,
        "self": table(self_counts),
        "inclusive": table(incl_counts),
        "packages": table(packages),
    }
