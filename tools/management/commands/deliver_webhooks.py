"""Send the after-call webhooks that are due (the worker process does it every 30 s; this is for cron)."""

from django.core.management.base import BaseCommand

from tools.jobs import deliver_due_webhooks


class Command(BaseCommand):
    help = "Send due after-call webhook deliveries (retries included) once. The worker process does this on its own."

    def handle(self, *args, **options):
        self.stdout.write(deliver_due_webhooks() or "Nothing was due.")
