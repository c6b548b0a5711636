"""Send the after-call webhooks that are due (after a restart, or from a scheduler)."""

import time

from django.core.management.base import BaseCommand

from tools import post_call
from tools.selectors import due_deliveries


class Command(BaseCommand):
    help = "Send due after-call webhook deliveries (retries included). Run it from cron, or with --loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running, checking every --interval seconds")
        parser.add_argument("--interval", type=float, default=30.0)

    def handle(self, *args, loop: bool, interval: float, **options):
        while True:
            sent = failed = 0
            for pk in due_deliveries():
                try:
                    result = post_call.attempt(pk)
                except Exception as exc:  # e.g. the database went away: try again next round
                    if not loop:
                        raise
                    self.stderr.write(f"delivery {pk}: could not be attempted: {type(exc).__name__}: {exc}")
                    continue
                if result is None:
                    continue
                if result.error:
                    failed += 1
                    self.stdout.write(f"delivery {pk}: attempt {result.attempts} failed: {result.error}")
                else:
                    sent += 1
            if sent or failed or not loop:
                self.stdout.write(f"Delivered {sent}, failed {failed}.")
            if not loop:
                return
            time.sleep(interval)
