"""How long the analysis export takes and how much memory it holds, for many calls.

    python -m bench.export --calls 100000 [--kind csv|jsonl]

Against the (throwaway!) database named by DATABASE_URL (default: a fresh SQLite file in a temp
directory, migrated here). It fills that many analysed calls, then streams the export in a
fresh child process, as a download does, and reports the wall time, rows, bytes and the child's
memory above what it held before the first row: the peak (ru_maxrss) and the most RSS sampled
while streaming.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = [
    {"name": "customer_name", "type": "text", "required": True},
    {"name": "party_size", "type": "number", "required": False},
    {"name": "booking_date", "type": "date", "required": False},
    {"name": "table", "type": "choice", "choices": "inside, terrace", "required": False},
]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()


def fill(n: int) -> None:
    import datetime as dt

    from django.core.management import call_command
    from django.utils import timezone

    from assistants.analysis_schema import fields_to_schema
    from assistants.models import Assistant
    from calls.models import Call
    from insights.models import CallAnalysis

    call_command("migrate", verbosity=0)
    assistant, _ = Assistant.objects.update_or_create(
        name="Export bench",
        defaults=dict(instructions="x", analysis_summary_enabled=True, analysis_schema=fields_to_schema(FIELDS)),
    )
    Call.objects.filter(call_id__startswith="bench-export-").delete()
    start = timezone.now() - dt.timedelta(days=30)
    batch = 5000
    for first in range(0, n, batch):
        calls = Call.objects.bulk_create(
            Call(
                call_id=f"bench-export-{i}",
                from_number="+46701234567",
                to_number="+46766861234",
                assistant=assistant,
                status="completed",
                end_reason="caller_hangup",
                started_at=start + dt.timedelta(seconds=i * 20),
                duration=dt.timedelta(seconds=95),
            )
            for i in range(first, min(n, first + batch))
        )
        CallAnalysis.objects.bulk_create(
            CallAnalysis(
                call=c,
                status="done",
                summary="The caller booked a table for four on Friday at seven, inside, and asked about parking.",
                outcome="success",
                reason="A table was booked.",
                data={"customer_name": "Anna Svensson", "party_size": 4, "booking_date": "2026-12-24", "table": None},
                model="gpt-5-mini",
            )
            for c in calls
        )


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def export(kind: str) -> dict:
    """Make the export's rows as the view streams them, counting what they come to."""
    from assistants.models import Assistant
    from insights.export import csv_rows, filtered_calls, jsonl_rows

    assistant = Assistant.objects.get(name="Export bench")
    before = _rss_kib()
    started = time.perf_counter()
    rows = size = 0
    held = 0  # the most RSS seen above the start, sampled every 5,000 rows (what stays in use)
    calls = filtered_calls(assistant=str(assistant.pk))
    for chunk in (csv_rows if kind == "csv" else jsonl_rows)(calls):
        rows += chunk.count("\n")
        size += len(chunk.encode())
        if rows % 5000 == 0:
            held = max(held, _rss_kib() - before)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "kind": kind,
        "rows": rows,
        "bytes": size,
        "seconds": round(seconds, 2),
        "peak_above_start_mib": round((peak - before) / 1024, 1),  # includes the allocator's transient peaks
        "held_above_start_mib": round(held / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--kind", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _setup()
        print(json.dumps(export(args.kind)))
        return
    env = dict(os.environ)
    tmp = None
    if "DATABASE_URL" not in env:
        tmp = tempfile.TemporaryDirectory()
        env["DATABASE_URL"] = f"sqlite:///{tmp.name}/export-bench.sqlite3"
    env.setdefault("VOICEAGENT_ENV_FILE", "")
    env.setdefault("DEBUG", "1")
    os.environ.update(env)
    _setup()
    t = time.perf_counter()
    fill(args.calls)
    print(f"filled {args.calls} analysed calls in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    out = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", "--kind", args.kind],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    print(out.stdout.strip())
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
