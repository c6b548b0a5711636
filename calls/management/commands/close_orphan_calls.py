"""Close calls a stopped process left `active` (run in the release phase, before new processes start)."""

from django.core.management.base import BaseCommand

from calls.services import calls_close_orphans


class Command(BaseCommand):
    help = "Mark calls still 'active' from processes that are gone as failed (server shutdown)."

    def add_arguments(self, parser):
        parser.add_argument("--worker", help="Only calls handled by this worker id (host:pid).")

    def handle(self, *args, worker=None, **options):
        count = calls_close_orphans(worker=worker)
        self.stdout.write(f"Closed {count} call(s) left active by stopped processes.")
