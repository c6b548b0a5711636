"""Ring a number with an assistant through 46elks."""

from django.core.management.base import BaseCommand, CommandError

from assistants.models import Assistant
from tools.outbound import OutboundCallError, place_outbound_call


class Command(BaseCommand):
    help = "Call a phone number; the chosen assistant talks when it is answered (needs the ELKS_* settings)."

    def add_arguments(self, parser):
        parser.add_argument("--assistant", required=True, help="the assistant's name or id")
        parser.add_argument("--to", required=True, help="the number to call, e.g. +46701234567")

    def handle(self, *args, assistant: str, to: str, **options):
        found = Assistant.objects.filter(pk=int(assistant)).first() if assistant.isdigit() else None
        found = found or Assistant.objects.filter(name=assistant).first()
        if found is None:
            names = ", ".join(Assistant.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No assistant {assistant!r}. Assistants: {names}.")
        try:
            outbound = place_outbound_call(assistant=found, to=to, source="command")
        except OutboundCallError as exc:
            where = f" (recorded as outbound call {exc.outbound.pk})" if exc.outbound else ""
            raise CommandError(f"{exc.message}{where}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"46elks is calling {outbound.to_number} from {outbound.from_number} "
                f"(46elks id {outbound.elks_call_id}); {found} talks when it is answered. "
                f"Outbound call {outbound.pk}."
            )
        )
