"""Print what to configure at 46elks, and what is still missing, when the server starts."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from assistants.models import PhoneNumber


class Command(BaseCommand):
    help = "Print the WebSocket URL to give 46elks and the setup steps still to do."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8095)
        parser.add_argument("--host", default="YOUR-SERVER")

    def handle(self, *args, port: int, host: str, **options):
        url = f"ws://{host}:{port}/ws/elks/{settings.ELKS_WS_SECRET}/"
        out = self.stdout
        out.write(self.style.SUCCESS("voiceagent"))
        out.write(f"  Admin:               http://127.0.0.1:{port}/admin/")
        out.write(f"  46elks websocket URL: {url}")
        out.write("    (behind TLS use wss:// and your domain; set it as the websocket number's voice_start)")
        if not get_user_model().objects.filter(is_superuser=True).exists():
            out.write(self.style.WARNING("  No admin user yet: make superuser"))
        if not settings.OPENAI_API_KEY:
            out.write(
                self.style.WARNING(
                    "  OPENAI_API_KEY is not set: calls will end at once. Set it, or try everything without a key:\n"
                    "    make fake-openai   and   "
                    "OPENAI_REALTIME_URL=ws://127.0.0.1:8765/v1/realtime OPENAI_API_KEY=any make run"
                )
            )
        if not PhoneNumber.objects.filter(is_active=True).exists():
            out.write(self.style.WARNING("  No phone number is mapped to an assistant yet: add one in admin."))
