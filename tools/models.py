"""What the assistant can do and what came of it: webhook tools, tool calls, transfers,
after-call webhook deliveries, outbound calls, API tokens, and the pizza demo's orders."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from assistants.phone import validate_e164

from .schema import EMPTY_SCHEMA, SchemaProblem, check_header_name, check_name, check_parameters_schema


def _empty_schema() -> dict:
    return dict(EMPTY_SCHEMA)


class HttpMethod(models.TextChoices):
    POST = "POST", "POST (arguments as a JSON body)"
    PUT = "PUT", "PUT (arguments as a JSON body)"
    PATCH = "PATCH", "PATCH (arguments as a JSON body)"
    GET = "GET", "GET (arguments as query parameters)"


class WebhookTool(models.Model):
    """A function the model may call during a call; calling it sends a request to a URL."""

    assistant = models.ForeignKey("assistants.Assistant", on_delete=models.CASCADE, related_name="webhook_tools")
    name = models.CharField(
        max_length=64,
        help_text="The function's name as the model sees it: letters, digits, _ and -, e.g. submit_order.",
    )
    description = models.TextField(
        help_text="Tell the model what this does and when to use it, e.g. “Place the caller's order once they "
        "have confirmed it.” The model decides from this text whether to call it.",
    )
    parameters = models.JSONField(
        "arguments (JSON Schema)",
        default=_empty_schema,
        help_text='What the model must send, as a JSON Schema object: {"type": "object", "properties": '
        '{"size": {"type": "string", "enum": ["small", "large"]}}, "required": ["size"]}. '
        "Calls whose arguments do not fit are refused before your URL is called.",
    )
    url = models.URLField(
        "URL",
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where the request goes (https:// recommended).",
    )
    method = models.CharField(max_length=6, choices=HttpMethod.choices, default=HttpMethod.POST)
    secret_header_name = models.CharField(
        "secret header name",
        max_length=100,
        blank=True,
        help_text="Optional header your server checks, e.g. Authorization or X-Api-Key.",
    )
    secret_header_value = models.CharField(
        "secret header value",
        max_length=500,
        blank=True,
        help_text="Its value, e.g. “Bearer abc123”. Never written to logs.",
    )
    timeout_seconds = models.FloatField(
        "timeout (seconds)",
        default=5.0,
        validators=[MinValueValidator(0.2), MaxValueValidator(20.0)],
        help_text="How long to wait for an answer. The caller waits in silence meanwhile: keep it short. "
        "On a timeout the assistant is told the service did not answer.",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assistant", "name"]
        verbose_name = "webhook tool"
        constraints = [models.UniqueConstraint(fields=["assistant", "name"], name="webhook_tool_name_unique")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for field, check in (
            ("name", check_name),
            ("parameters", check_parameters_schema),
            ("secret_header_name", check_header_name),
        ):
            try:
                check(getattr(self, field))
            except SchemaProblem as exc:
                errors[field] = str(exc)
        if self.secret_header_value and not self.secret_header_name:
            errors["secret_header_name"] = "Give the header a name, or clear the value."
        if errors:
            raise ValidationError(errors)


class ToolCallStatus(models.TextChoices):
    OK = "ok", "Done"
    ERROR = "error", "Failed"
    TIMEOUT = "timeout", "Timed out"
    INVALID = "invalid_arguments", "Refused: bad arguments"
    UNKNOWN = "unknown_tool", "Refused: unknown tool"


class ToolCall(models.Model):
    """One function call the model made during a call, and what came back."""

    call = models.ForeignKey("calls.Call", on_delete=models.CASCADE, related_name="tool_calls")
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=[("builtin", "Built-in"), ("webhook", "Webhook")], blank=True)
    openai_call_id = models.CharField("OpenAI call id", max_length=100, blank=True)
    arguments = models.TextField(blank=True, help_text="As the model sent them (JSON).")
    status = models.CharField(max_length=20, choices=ToolCallStatus.choices)
    result = models.TextField(blank=True, help_text="What the assistant was told.")
    error = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    duration_ms = models.PositiveIntegerField("duration (ms)", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["call", "created_at", "pk"]
        verbose_name = "tool call"

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"


class Transfer(models.Model):
    """A caller the assistant handed over to a person; 46elks' `next` request picks it up."""

    call = models.OneToOneField("calls.Call", on_delete=models.CASCADE, related_name="transfer")
    to_number = models.CharField(max_length=20)
    reason = models.CharField(max_length=300, blank=True)
    summary = models.TextField(
        "hand-off note",
        blank=True,
        help_text="What the assistant told the colleague: who, what they want, what was said.",
    )
    sms_status = models.CharField(
        "note by SMS", max_length=200, blank=True, help_text="Whether the note was sent by SMS (TRANSFER_SMS)."
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    connected_at = models.DateTimeField(
        null=True, blank=True, help_text="When 46elks asked what to do next and was told to connect the caller."
    )
    matched_by = models.CharField(max_length=20, blank=True, help_text="How 46elks' request was matched to the call.")

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"{self.call} → {self.to_number}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"


class WebhookDelivery(models.Model):
    """One after-call webhook: the call's document sent to the assistant's URL, with retries."""

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    call = models.ForeignKey("calls.Call", on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.URLField(max_length=500)
    event = models.CharField(max_length=40, default="call.ended")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8)
    last_status_code = models.PositiveSmallIntegerField("last HTTP status", null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True, help_text="A process is sending it until then.")
    payload = models.JSONField(default=dict, blank=True, help_text="The document as last sent.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "after-call webhook delivery"
        verbose_name_plural = "after-call webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} for call {self.call_id} → {self.url}"


class OutboundStatus(models.TextChoices):
    REQUESTING = "requesting", "Asking 46elks"
    CALLING = "calling", "Ringing"
    ANSWERED = "answered", "Answered (assistant connected)"
    FAILED = "failed", "Failed"
    ENDED = "ended", "Ended without the assistant"


class OutboundCall(models.Model):
    """A call we asked 46elks to place; paired with the WebSocket leg when 46elks connects it."""

    assistant = models.ForeignKey("assistants.Assistant", on_delete=models.PROTECT, related_name="outbound_calls")
    to_number = models.CharField("to", max_length=20, validators=[validate_e164])
    from_number = models.CharField("from", max_length=20, blank=True, help_text="The number the callee sees.")
    status = models.CharField(max_length=12, choices=OutboundStatus.choices, default=OutboundStatus.REQUESTING)
    error = models.TextField(blank=True)
    elks_call_id = models.CharField("46elks call id", max_length=100, blank=True, db_index=True)
    elks_state = models.CharField("46elks state", max_length=30, blank=True)
    call = models.OneToOneField(
        "calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="outbound_request"
    )
    paired_by = models.CharField(max_length=20, blank=True, help_text="How the WebSocket leg was matched.")
    source = models.CharField(max_length=10, blank=True, help_text="admin, api or command")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "outbound call"

    def __str__(self) -> str:
        return f"{self.assistant} → {self.to_number} ({self.get_status_display()})"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A key for the JSON API; only its hash is stored, so it is shown once when created."""

    name = models.CharField(max_length=100, help_text="Who or what uses it, e.g. “CRM integration”.")
    prefix = models.CharField(max_length=12, editable=False, help_text="The token's first characters.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField("active", default=True, help_text="Untick to revoke the token at once.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class PizzaOrder(models.Model):
    """An order taken by the pizza demo's assistant through its submit_order tool."""

    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    phone = models.CharField(max_length=32, blank=True, help_text="The caller's number.")
    customer_name = models.CharField(max_length=100, blank=True)
    items = models.JSONField(default=list)
    pickup_or_delivery = models.CharField(max_length=10, blank=True)
    address = models.CharField(max_length=300, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "pizza order (demo)"
        verbose_name_plural = "pizza orders (demo)"

    def __str__(self) -> str:
        return f"Order {self.pk} for {self.customer_name or self.phone}"

    @property
    def summary(self) -> str:
        parts = []
        for item in self.items or ():
            size = f" {item.get('size')}" if item.get("size") else ""
            parts.append(f"{item.get('quantity', 1)} ×{size} {item.get('pizza', '?')}")
        return ", ".join(parts)
