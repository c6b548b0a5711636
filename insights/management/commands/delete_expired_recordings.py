"""Delete call recordings older than their assistant's retention period (the worker does it hourly)."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from insights import jobs, services


class Command(BaseCommand):
    help = (
        "Delete recordings older than each assistant's 'keep recordings for (days)' setting "
        f"({services.ORPHAN_RECORDING_RETENTION_DAYS} days for calls whose assistant was deleted). "
        "The worker process (Procfile) runs this every hour; run it by hand to see what it would do."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be deleted.")

    def handle(self, *args, dry_run=False, **options):
        expired = services.recordings_expired()
        if dry_run:
            for call in expired:
                day = timezone.localtime(call.started_at).date()
                self.stdout.write(f"would delete {call.recording.name} (call {call.pk}, {day})")
            self.stdout.write(f"{len(expired)} recording(s) would be deleted.")
            return
        self.stdout.write(jobs.delete_expired_recordings() or "No recording has expired.")
