"""Close calls a dead server process left `active`; safe to run while other processes serve calls (release)."""

from django.core.management.base import BaseCommand

from calls.services import calls_close_stale


class Command(BaseCommand):
    help = (
        "Mark calls whose server process stopped beating (SERVER_DEAD_AFTER_SECONDS) as failed (server restarted). "
        "Calls of processes that still beat are never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-after",
            type=float,
            default=None,
            help="Only for calls recorded without a server process: seconds without their own heartbeat "
            "(default 3x CALL_HEARTBEAT_SECONDS).",
        )

    def handle(self, *args, stale_after=None, **options):
        count = calls_close_stale(stale_after_s=stale_after)
        self.stdout.write(f"Closed {count} call(s) left active by stopped processes.")
