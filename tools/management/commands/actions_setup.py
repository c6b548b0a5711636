"""Print the 46elks settings the actions need (transfers, outbound calls), filled in for this server."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from tools.outbound import OutboundCallError, configuration_problems


class Command(BaseCommand):
    help = "Print the voice_start to paste at 46elks for transfers, and what outbound calls still need."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url", default=settings.PUBLIC_BASE_URL, help="this server's public https:// address"
        )
        parser.add_argument("--websocket-number", default=settings.ELKS_WEBSOCKET_NUMBER or "+46766860000")

    def handle(self, *args, base_url: str, websocket_number: str, **options):
        base = (base_url or "https://YOUR-SERVER").rstrip("/")
        voice_start = {"connect": websocket_number, "next": f"{base}/elks/next/{settings.ELKS_WS_SECRET}/"}
        out = self.stdout
        out.write(self.style.SUCCESS("Transfers to a person (transfer_call)"))
        out.write("  Set this as the voice_start of each public 46elks number (not the websocket number):")
        out.write(f"  {json.dumps(voice_start)}")
        out.write("")
        out.write(self.style.SUCCESS("Outbound calls"))
        try:
            problems = configuration_problems()
        except OutboundCallError as exc:
            problems = [exc.message]
        for problem in problems:
            out.write(self.style.WARNING(f"  {problem}"))
        if not problems:
            out.write(
                f"  Ready: 46elks API {settings.ELKS_API_URL}, websocket number {settings.ELKS_WEBSOCKET_NUMBER}."
            )
        if not settings.PUBLIC_BASE_URL:
            out.write(
                self.style.WARNING("  PUBLIC_BASE_URL is not set: outbound calls get no whenhangup and no transfers.")
            )
