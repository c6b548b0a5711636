"""Close calls a stopped process left `active`; safe to run while other processes serve calls."""

from django.core.management.base import BaseCommand

from calls.services import calls_close_stale


class Command(BaseCommand):
    help = "Mark calls whose server process stopped sending heartbeats as failed (server shutdown)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-after",
            type=float,
            default=None,
            help="Seconds without a heartbeat (default 3x CALL_HEARTBEAT_SECONDS).",
        )

    def handle(self, *args, stale_after=None, **options):
        count = calls_close_stale(stale_after_s=stale_after)
        self.stdout.write(f"Closed {count} call(s) left active by stopped processes.")
