"""Delete call recordings older than their assistant's retention period (run it daily)."""

from django.core.management.base import BaseCommand

from insights import services


class Command(BaseCommand):
    help = (
        "Delete recordings older than each assistant's 'keep recordings for (days)' setting "
        f"({services.ORPHAN_RECORDING_RETENTION_DAYS} days for calls whose assistant was deleted). "
        "Run it once a day, e.g. from cron or the platform's scheduler."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be deleted.")

    def handle(self, *args, dry_run=False, **options):
        expired = services.recordings_expired()
        if dry_run:
            for call in expired:
                self.stdout.write(f"would delete {call.recording.name} (call {call.pk}, {call.started_at:%Y-%m-%d})")
            self.stdout.write(f"{len(expired)} recording(s) would be deleted.")
            return
        missing = 0
        for call in expired:
            if not services.recording_delete(call=call):
                missing += 1
        note = f" ({missing} file(s) were already gone from storage)" if missing else ""
        self.stdout.write(f"Deleted {len(expired)} expired recording(s){note}.")
