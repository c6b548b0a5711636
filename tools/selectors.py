"""Reads for the tools app: what a call may do, where a tool points, what a call produced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from calls.hooks import call_document_parts
from calls.models import Call

from .models import DeliveryStatus, OutboundCall, ToolCall, WebhookDelivery, WebhookTool


def call_extras(assistant, outbound: OutboundCall | None = None) -> dict[str, Any]:
    """What a call needs to know at its start, beyond the assistant's settings (no secrets).

    The tool runner is built on the event loop and must not query the database, so the webhook
    tools the model is offered are read here, when the call is recorded.
    """
    tools = [
        {
            "id": t.pk,
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            "timeout": float(t.timeout_seconds),
        }
        for t in WebhookTool.objects.filter(assistant=assistant, is_active=True).order_by("name")
    ]
    return {
        "webhook_tools": tools,
        "post_call_webhook": bool(assistant.post_call_webhook_url),
        "direction": "outbound" if outbound is not None else "inbound",
        "outbound_call_id": outbound.pk if outbound is not None else None,
    }


@dataclass(frozen=True)
class Endpoint:
    """Where a webhook tool sends its request, read when it is called (so secrets stay in the database)."""

    url: str
    method: str
    header_name: str
    header_value: str
    timeout: float


def webhook_endpoint(tool_id: int) -> Endpoint | None:
    tool = WebhookTool.objects.filter(pk=tool_id, is_active=True).first()
    if tool is None:
        return None
    return Endpoint(tool.url, tool.method, tool.secret_header_name, tool.secret_header_value, tool.timeout_seconds)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def call_document(call_pk: int) -> dict[str, Any]:
    """The after-call webhook's JSON document: the call, its transcript, tool calls and usage."""
    call = Call.objects.select_related("assistant").get(pk=call_pk)
    transcript = [
        {
            "position": e.position,
            "role": e.role,
            "text": e.text,
            "interrupted": e.interrupted,
            "offset_ms": e.offset_ms,
        }
        for e in call.transcript.order_by("position")
    ]
    tool_calls = [
        {
            "name": t.name,
            "kind": t.kind,
            "arguments": t.arguments,
            "status": t.status,
            "result": t.result,
            "error": t.error,
            "http_status": t.http_status,
            "duration_ms": t.duration_ms,
            "at": _iso(t.created_at),
        }
        for t in ToolCall.objects.filter(call=call).order_by("created_at", "pk")
    ]
    outbound = OutboundCall.objects.filter(call=call).first()
    assistant = call.assistant
    return {
        "event": "call.ended",
        "call": {
            "id": call.pk,
            "callid": call.call_id,
            "direction": call.direction,
            "from": call.from_number,
            "to": call.to_number,
            "assistant": {"id": assistant.pk, "name": assistant.name} if assistant else None,
            "status": call.status,
            "end_reason": call.end_reason,
            "end_detail": call.end_detail,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at),
            "duration_seconds": call.duration.total_seconds() if call.duration is not None else None,
            "transfer_to": call.transfer_to or None,
            "is_test": call.is_test,
            "cost": str(call.cost) if call.cost is not None else None,
            "cost_currency": call.cost_currency or None,
            "outbound_call_id": outbound.pk if outbound else None,
        },
        "transcript": transcript,
        "tool_calls": tool_calls,
        "usage": call.usage or {},
        **call_document_parts(call),  # e.g. "analysis" (insights), named in settings.CALL_DOCUMENT_PARTS
    }


def due_deliveries(limit: int = 100) -> list[int]:
    """Pending deliveries whose next attempt is due and that no process is sending."""
    now = timezone.now()
    qs = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).exclude(
        locked_until__gt=now
    )
    return list(qs.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
