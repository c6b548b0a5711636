"""Knowledge look-ups over 10,000 passages on PostgreSQL: p50/p95/p99/max (the goal: p95 under 50 ms).

    python -m bench.knowledge_search [--passages 10000] [--queries 1000]

Makes a throwaway database beside the one DATABASE_URL names (default: the local test server),
migrates it, runs `manage.py knowledge_benchmark` there (the timing lives with the knowledge app,
which sits above bench), prints its JSON report and drops the database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
GOAL_P95_MS = 50.0


def _admin(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-q", "-c", sql], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    base = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    if not base.scheme.startswith("postgres"):
        sys.exit("bench.knowledge_search needs PostgreSQL (DATABASE_URL=postgres://…)")
    name = f"bench_knowledge_{os.getpid()}"
    url = urlunsplit(base._replace(path=f"/{name}"))
    maintenance = urlunsplit(base._replace(path="/postgres"))
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "voiceagent.test_settings", "REDIS_URL": ""}
    _admin(maintenance, f'CREATE DATABASE "{name}"')
    try:
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [python, "manage.py", "knowledge_benchmark", f"--passages={args.passages}", f"--queries={args.queries}"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        _admin(maintenance, f'DROP DATABASE IF EXISTS "{name}"')
    report = json.loads(out.strip().splitlines()[-1])
    report["goal_p95_ms"] = GOAL_P95_MS
    print(json.dumps(report, indent=2))
    return 0 if report["p95_ms"] < GOAL_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())
