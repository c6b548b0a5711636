"""Admin for the assistant's actions: webhook tools (inline on the assistant), what they did,
after-call webhook deliveries, outbound calls, API tokens and the pizza demo's orders."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.validators import URLValidator
from django.db import models
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from assistants.admin_helpers import ReadOnlyMixin
from assistants.models import Assistant
from assistants.phone import normalize_e164

from . import post_call, services
from .models import (
    ApiToken,
    DeliveryStatus,
    OutboundCall,
    PizzaOrder,
    ToolCall,
    Transfer,
    WebhookDelivery,
    WebhookTool,
)
from .outbound import OutboundCallError, configuration_problems, place_outbound_call

URL_FIELDS = {models.URLField: {"assume_scheme": "https"}}
# "Deliver again now" sends this many while the page waits; the rest are left due for deliver_webhooks.
SEND_FROM_ADMIN = 10


class PrettyJSONField(forms.JSONField):
    """A JSON textarea that shows the schema indented, as people write it."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class WebhookToolForm(forms.ModelForm):
    parameters = PrettyJSONField(
        label="Arguments (JSON Schema)",
        widget=forms.Textarea(attrs={"rows": 10, "cols": 80, "style": "font-family: monospace"}),
        help_text=WebhookTool._meta.get_field("parameters").help_text,
    )
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text=WebhookTool._meta.get_field("url").help_text,
    )

    class Meta:
        model = WebhookTool
        fields = "__all__"
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "secret_header_value": forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"}),
        }


class WebhookToolInline(admin.StackedInline):
    """On the assistant's page: the functions the model may call during its calls."""

    model = WebhookTool
    form = WebhookToolForm
    extra = 0
    formfield_overrides = URL_FIELDS
    verbose_name = "webhook tool"
    verbose_name_plural = "Tools: things the assistant can do by calling your systems (webhooks)"
    fields = (
        ("name", "is_active"),
        "description",
        "parameters",
        ("method", "url"),
        ("secret_header_name", "secret_header_value"),
        "timeout_seconds",
    )


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ToolCallInline(ReadOnlyMixin, admin.TabularInline):
    """On the call's page: every function the assistant called, with what came back."""

    model = ToolCall
    fields = ("created_at", "name", "status", "http_status", "duration_ms", "arguments", "result", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Tool calls"


class CallToolsAdminMixin:
    """For CallAdmin (settings.CALL_ADMIN_EXTENSIONS): the call's tool calls below its conversation."""

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), ToolCallInline]


class AssistantToolsAdminMixin:
    """For AssistantAdmin (settings.ASSISTANT_ADMIN_EXTENSIONS): webhook tools inline, "Call a number…"."""

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), WebhookToolInline]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions["call_number"] = (call_number, "call_number", call_number.short_description)
        return actions


@admin.register(ToolCall)
class ToolCallAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "name", "status", "http_status", "duration_ms", "call")
    list_filter = ("status", "kind", "name")
    search_fields = ("name", "arguments", "result", "call__call_id", "call__from_number")
    list_select_related = ("call",)
    raw_id_fields = ("call",)


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "call", "to_number", "connected_at", "matched_by", "summary", "sms_status")
    raw_id_fields = ("call",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "call", "url", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status",)
    search_fields = ("url", "call__call_id", "delivery_id")
    list_select_related = ("call",)
    raw_id_fields = ("call",)
    actions = ["deliver_again"]
    fields = (
        "call",
        "url",
        "event",
        "delivery_id",
        "status",
        "attempts",
        "max_attempts",
        "last_status_code",
        "last_error",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
        "payload",
        "created_at",
    )
    readonly_fields = fields

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("tools.change_webhookdelivery") and obj is None  # for the action only

    @admin.action(description="Deliver again now", permissions=["change"])
    def deliver_again(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        services.webhook_delivery_reset(pks=pks)
        now, later = pks[:SEND_FROM_ADMIN], pks[SEND_FROM_ADMIN:]
        if later:
            self.message_user(
                request,
                f"{len(later)} more deliveries are due now; `manage.py deliver_webhooks` sends them.",
                messages.INFO,
            )
        for pk in now:
            result = post_call.attempt(pk)
            if result is None:
                self.message_user(request, f"Delivery {pk} is being sent by another process.", messages.WARNING)
            elif result.status == DeliveryStatus.DELIVERED:
                self.message_user(request, f"Delivery {pk} delivered (HTTP {result.http_status}).", messages.SUCCESS)
            else:
                then = (
                    f"it will be retried in {result.retry_in_s:g} s"
                    if result.retry_in_s is not None
                    else "no more attempts"
                )
                self.message_user(request, f"Delivery {pk} failed: {result.error} ({then}).", messages.ERROR)


class OutboundCallForm(forms.ModelForm):
    """The "Call a number" form: pick an assistant, type a number, and 46elks rings it."""

    class Meta:
        model = OutboundCall
        fields = ("assistant", "to_number")
        help_texts = {"to_number": "The number to call, in international form: +46 70 123 45 67."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "assistant" in self.fields:  # the add form; a placed call is shown read-only
            self.fields["assistant"].queryset = Assistant.objects.filter(is_active=True)
            self.fields["assistant"].help_text = "The assistant that talks when the call is answered."

    def clean_to_number(self) -> str:
        try:
            return normalize_e164(self.cleaned_data["to_number"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        assistant = cleaned.get("assistant")
        if assistant is not None:
            try:
                problems = configuration_problems(assistant)
            except OutboundCallError as exc:
                problems = [exc.message]
            if problems:
                raise forms.ValidationError(["Outbound calls are not set up yet.", *problems])
        return cleaned


@admin.register(OutboundCall)
class OutboundCallAdmin(admin.ModelAdmin):
    form = OutboundCallForm
    list_display = ("created_at", "assistant", "to_number", "status", "call_link", "source", "error_short")
    list_filter = ("status", "assistant", "source")
    search_fields = ("to_number", "elks_call_id", "assistant__name")
    list_select_related = ("assistant", "call")
    readonly_fields = (
        "assistant",
        "to_number",
        "from_number",
        "status",
        "error",
        "elks_call_id",
        "elks_state",
        "call_link",
        "paired_by",
        "source",
        "created_by",
        "created_at",
        "ended_at",
    )

    def get_fields(self, request, obj=None):
        return ("assistant", "to_number") if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def get_changeform_initial_data(self, request):
        return {"assistant": request.GET.get("assistant")}

    def save_model(self, request, obj, form, change) -> None:
        """Adding one places the call through 46elks; a refusal is recorded and shown."""
        try:
            placed = place_outbound_call(assistant=obj.assistant, to=obj.to_number, source="admin", user=request.user)
            self.message_user(
                request,
                f"46elks is calling {placed.to_number} from {placed.from_number}; {placed.assistant} talks when "
                "they answer. The call appears under Calls once it is answered.",
                messages.SUCCESS,
            )
        except OutboundCallError as exc:
            if exc.outbound is None:
                raise
            placed = exc.outbound
            self.message_user(request, f"The call was not placed. {exc.message}", messages.ERROR)
        obj.pk = placed.pk
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:tools_outboundcall_change", args=[obj.pk]))

    @admin.display(description="call")
    def call_link(self, obj: OutboundCall) -> str:
        if obj.call_id is None:
            return "–"
        url = reverse("admin:calls_call_change", args=[obj.call_id])
        return format_html('<a href="{}">{}</a>', url, obj.call)

    @admin.display(description="error")
    def error_short(self, obj: OutboundCall) -> str:
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error


@admin.action(description="Call a number with this assistant…")
def call_number(modeladmin, request, queryset):
    """On the assistant list: opens the "Call a number" form for the one selected assistant."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one assistant to call a number with.", messages.WARNING)
        return None
    url = reverse("admin:tools_outboundcall_add") + f"?assistant={queryset.get().pk}"
    return HttpResponseRedirect(url)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at")

    def get_fields(self, request, obj=None):
        return ("name",) if obj is None else ("name", "is_active", *self.readonly_fields)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = services.api_token_create(name=obj.name, user=request.user)
        obj.pk = token.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"Copy this token now; it is stored hashed and cannot be shown again: {raw}",
            messages.WARNING,
        )


@admin.register(PizzaOrder)
class PizzaOrderAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "customer_name", "phone", "summary", "pickup_or_delivery", "address")
    search_fields = ("customer_name", "phone", "address")
    raw_id_fields = ("call",)
