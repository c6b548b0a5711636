"""Price past calls again from their stored usage, after the price table was corrected."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from insights import services


class Command(BaseCommand):
    help = "Recompute the cost of past calls from their recorded usage with the current model prices."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Only calls started on or after this date (YYYY-MM-DD).")
        parser.add_argument("--assistant", type=int, help="Only calls of the assistant with this id.")

    def handle(self, *args, since=None, assistant=None, **options):
        start = None
        if since:
            try:
                day = dt.date.fromisoformat(since)
            except ValueError:
                raise CommandError(f"--since must be a date like 2026-11-01, not {since!r}.") from None
            start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
        updated, skipped = services.call_costs_recompute(since=start, assistant_id=assistant)
        extra = f"; {skipped} call(s) had no usage to price" if skipped else ""
        self.stdout.write(f"Recomputed the cost of {updated} call(s){extra}.")
