"""The Procfile's `worker` process: runs the background jobs of settings.WORKER_JOBS until stopped."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from calls.jobs import registered_jobs, run_due, run_forever


class Command(BaseCommand):
    help = (
        "Run the background jobs (after-call webhook retries, deleting expired recordings, ...) on their "
        "schedule until stopped with SIGTERM or Ctrl-C. --once runs every job one time and exits (for cron)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run every job once, then exit")

    def handle(self, *args, once: bool = False, **options):
        jobs = registered_jobs()
        if once:
            run_due(jobs, float("inf"))
            return
        stop: list[int] = []

        def on_signal(signum, frame) -> None:
            stop.append(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        names = ", ".join(f"{job.name} every {job.interval:g}s" for job in jobs)
        self.stdout.write(f"worker started: {names}")
        run_forever(jobs, stopping=lambda: bool(stop))
        self.stdout.write("worker stopped")
