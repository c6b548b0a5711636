"""Create (or refresh) the pizza demo: an assistant that takes orders and a tool that stores them."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from assistants.models import Assistant, PhoneNumber
from assistants.phone import normalize_e164
from tools.models import WebhookTool
from tools.views import demo_token

NAME = "Pizza Bella (demo)"
MENU = {
    "Margherita": 95,
    "Vesuvio": 105,
    "Capricciosa": 110,
    "Hawaii": 110,
    "Quattro formaggi": 120,
    "Kebabpizza": 125,
}
INSTRUCTIONS = f"""You answer the phone for Pizza Bella, a small pizzeria. You take orders for pickup or delivery.
Speak Swedish unless the caller speaks English; then speak English. Keep every answer short: this is a phone call.

Menu (normal size; family size costs 100 kr more):
{chr(10).join(f"- {pizza}: {price} kr" for pizza, price in MENU.items())}

How to take an order:
1. Ask what they would like. Only pizzas on the menu; suggest one if they are unsure.
2. Ask pickup or delivery; for delivery ask for the address.
3. Ask for a name for the order.
4. Read the whole order back once and ask the caller to confirm it.
5. Only after they confirm, call submit_order. Then tell them the order number and when it will be ready,
   using what submit_order answers.
6. If submit_order fails, apologise and ask them to call again later; never pretend the order went through.
When the caller is done, say goodbye and use end_call. Opening hours: every day 11–22; use current_datetime
if they ask whether you are open."""

SUBMIT_ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "pizza": {"type": "string", "enum": list(MENU)},
                    "size": {"type": "string", "enum": ["normal", "family"]},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                "required": ["pizza", "quantity"],
            },
        },
        "customer_name": {"type": "string", "description": "The name the order is under."},
        "pickup_or_delivery": {"type": "string", "enum": ["pickup", "delivery"]},
        "address": {"type": "string", "description": "Delivery address (only for delivery)."},
        "notes": {"type": "string", "description": "Allergies or wishes, if any."},
    },
    "required": ["items", "customer_name", "pickup_or_delivery"],
}


class Command(BaseCommand):
    help = "Load the pizza demo: an assistant whose submit_order tool stores orders (admin › Pizza orders)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--site-url",
            default=settings.PUBLIC_BASE_URL or "http://127.0.0.1:8095",
            help="this server's address as the server itself can reach it (default PUBLIC_BASE_URL, else "
            "http://127.0.0.1:8095, the address of `make run`)",
        )
        parser.add_argument("--number", default="", help="a phone number to send to the demo assistant, +46…")

    @transaction.atomic
    def handle(self, *args, site_url: str, number: str, **options):
        parts = urlsplit(site_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CommandError(f"--site-url must look like https://example.com, not {site_url!r}.")
        url = site_url.rstrip("/") + reverse("tools:demo_orders", args=[demo_token()])
        assistant, created = Assistant.objects.update_or_create(
            name=NAME,
            defaults={
                "instructions": INSTRUCTIONS,
                "welcome_message": "Hej och välkommen till Pizza Bella! Vad vill du beställa?",
                "language": "sv",
                "end_call_enabled": True,
                "datetime_tool_enabled": True,
                "is_active": True,
            },
        )
        tool = WebhookTool(assistant=assistant, name="submit_order")
        tool = WebhookTool.objects.filter(assistant=assistant, name="submit_order").first() or tool
        tool.description = (
            "Place the caller's order in the kitchen's system. Call it only after the caller has confirmed the "
            "whole order. It answers with the order number and when the order will be ready."
        )
        tool.parameters = SUBMIT_ORDER_SCHEMA
        tool.url = url
        tool.method = "POST"
        tool.timeout_seconds = 5.0
        tool.is_active = True
        tool.full_clean()
        tool.save()
        if number:
            try:
                e164 = normalize_e164(number)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            existing = PhoneNumber.objects.filter(number=e164).first()
            if existing is not None and existing.assistant_id != assistant.pk:
                raise CommandError(f"{e164} already belongs to {existing.assistant}; change it in admin first.")
            try:
                PhoneNumber.objects.update_or_create(
                    number=e164, defaults={"assistant": assistant, "label": "Pizza demo", "is_active": True}
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} the assistant {NAME!r} with its submit_order tool."))
        self.stdout.write(f"  Orders are posted to {url}")
        self.stdout.write("  and listed in admin under Pizza orders (demo).")
        if not number and not assistant.numbers.exists():
            self.stdout.write("  Give it a number in admin (or --number +46…) to call it, or use a browser test call.")
