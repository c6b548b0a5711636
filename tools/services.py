"""Writes for the tools app. Each service is one transaction; none is called per audio frame."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from assistants.phone import normalize_e164
from calls.models import Call

from .models import (
    ApiToken,
    DeliveryStatus,
    OutboundCall,
    OutboundStatus,
    PizzaOrder,
    ToolCall,
    Transfer,
    WebhookDelivery,
    hash_token,
)
from .selectors import call_document

# How long 46elks' `next` request may come after the transfer was asked for.
TRANSFER_WINDOW = timedelta(minutes=10)
DELIVERY_LEASE = timedelta(seconds=60)
MAX_RETRY_DELAY_S = 6 * 3600


@transaction.atomic
def tool_call_record(
    *,
    call_pk: int,
    name: str,
    kind: str,
    openai_call_id: str,
    arguments: str,
    status: str,
    result: str,
    error: str = "",
    http_status: int | None = None,
    duration_ms: int | None = None,
) -> int:
    row = ToolCall.objects.create(
        call_id=call_pk,
        name=name[:64],
        kind=kind,
        openai_call_id=openai_call_id[:100],
        arguments=arguments[:20000],
        status=status,
        result=result[:20000],
        error=error[:2000],
        http_status=http_status,
        duration_ms=duration_ms,
    )
    return row.pk


# ------------------------------------------------------------------ transfers


@transaction.atomic
def transfer_request(*, call_pk: int, number: str, reason: str = "", summary: str = "") -> None:
    """The assistant hands the caller to `number`; 46elks' `next` request will be answered with it.

    `summary` is the assistant's hand-off note (a warm transfer): shown in admin and on the
    dashboard, and sent by SMS to `number` just before the caller is connected (TRANSFER_SMS).
    """
    Call.objects.filter(pk=call_pk).update(transfer_to=number)
    Transfer.objects.update_or_create(
        call_id=call_pk,
        defaults={"to_number": number, "reason": reason[:300], "summary": summary[:1000], "connected_at": None},
    )


def _e164(raw: str) -> str:
    try:
        return normalize_e164(raw)
    except ValueError:
        return (raw or "")[:32]


def transfer_answer(*, callid: str, from_number: str, to_number: str) -> str | None:
    """The number to connect a caller to when 46elks asks what comes after the AI leg; None: hang up."""
    transfer = transfer_claim(callid=callid, from_number=from_number, to_number=to_number)
    return transfer.to_number if transfer is not None else None


@transaction.atomic
def transfer_sms_recorded(*, pk: int, status: str) -> None:
    Transfer.objects.filter(pk=pk).update(sms_status=status[:200])


@transaction.atomic
def transfer_claim(*, callid: str, from_number: str, to_number: str) -> Transfer | None:
    """The number to connect a caller to when 46elks asks what comes after the AI leg; None: hang up.

    Matched by 46elks' call id first, then by the caller's number (and the dialled number, when
    46elks sends the same one the WebSocket did), newest first. Each transfer is used once.
    """
    since = timezone.now() - TRANSFER_WINDOW
    waiting = (
        Transfer.objects.select_for_update()
        .select_related("call")
        .filter(connected_at__isnull=True, requested_at__gte=since)
    )
    transfer = waiting.filter(call__call_id=callid).first() if callid else None
    matched_by = "callid"
    if transfer is None and from_number:
        by_caller = waiting.filter(call__from_number=_e164(from_number)).order_by("-requested_at")
        transfer = by_caller.filter(call__to_number=_e164(to_number)).first() or by_caller.first()
        matched_by = "numbers"
    if transfer is None:
        return None
    transfer.connected_at = timezone.now()
    transfer.matched_by = matched_by
    transfer.save(update_fields=["connected_at", "matched_by"])
    return transfer


# ------------------------------------------------------------------ after-call webhooks


@transaction.atomic
def webhook_delivery_create(*, call_pk: int, event: str = "call.ended") -> int | None:
    """Queue the after-call webhook of a finished call, if its assistant has one; returns its pk.

    `event` is "call.ended" when the call ends, or the news an extension announced later
    (calls.hooks.call_event, e.g. "call.analyzed"); each is its own signed delivery."""
    call = Call.objects.select_related("assistant").filter(pk=call_pk).first()
    if call is None or call.assistant is None or not call.assistant.post_call_webhook_url:
        return None
    delivery = WebhookDelivery.objects.create(
        call=call,
        event=event,
        url=call.assistant.post_call_webhook_url,
        next_attempt_at=timezone.now(),
        max_attempts=settings.POST_CALL_WEBHOOK_MAX_ATTEMPTS,
    )
    return delivery.pk


@dataclass(frozen=True)
class Claimed:
    """A delivery this process may send now: where, what, and with which secret."""

    pk: int
    delivery_id: str
    url: str
    secret: str
    attempt: int
    document: dict


@transaction.atomic
def webhook_delivery_claim(*, pk: int, now: datetime | None = None) -> Claimed | None:
    """Take a due delivery for sending (a short lease, so two processes never send it together)."""
    now = now or timezone.now()
    taken = (
        WebhookDelivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .update(locked_until=now + DELIVERY_LEASE, attempts=F("attempts") + 1, last_attempt_at=now)
    )
    if not taken:
        return None
    delivery = WebhookDelivery.objects.select_related("call__assistant").get(pk=pk)
    document = {**call_document(delivery.call_id), "event": delivery.event, "delivery_id": str(delivery.delivery_id)}
    delivery.payload = document
    delivery.save(update_fields=["payload"])
    assistant = delivery.call.assistant
    return Claimed(
        pk=pk,
        delivery_id=str(delivery.delivery_id),
        url=delivery.url,
        secret=assistant.post_call_webhook_secret if assistant else "",
        attempt=delivery.attempts,
        document=document,
    )


def retry_delay_s(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: the base, then four times longer each time, at most 6 h."""
    base = settings.POST_CALL_WEBHOOK_RETRY_BASE_SECONDS
    return min(base * 4 ** max(attempts - 1, 0), MAX_RETRY_DELAY_S)


@dataclass(frozen=True)
class DeliveryState:
    status: str
    attempts: int
    retry_in_s: float | None  # None: no further attempt


@transaction.atomic
def webhook_delivery_result(
    *, pk: int, ok: bool, status_code: int | None, error: str, now: datetime | None = None
) -> DeliveryState:
    """Record how an attempt went, and when the next one is due (or that we gave up)."""
    now = now or timezone.now()
    delivery = WebhookDelivery.objects.select_for_update().get(pk=pk)
    delivery.last_status_code = status_code
    delivery.last_error = error[:2000]
    delivery.locked_until = None
    retry_in = None
    if ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts >= delivery.max_attempts:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
    else:
        retry_in = retry_delay_s(delivery.attempts)
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    delivery.save()
    return DeliveryState(delivery.status, delivery.attempts, retry_in)


@transaction.atomic
def webhook_delivery_reset(*, pks: list[int]) -> int:
    """Make deliveries due again now (from admin), allowing at least one more attempt each."""
    count = 0
    for delivery in WebhookDelivery.objects.select_for_update().filter(pk__in=pks):
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.locked_until = None
        delivery.max_attempts = max(delivery.max_attempts, delivery.attempts + 1)
        delivery.save(update_fields=["status", "next_attempt_at", "locked_until", "max_attempts"])
        count += 1
    return count


# ------------------------------------------------------------------ outbound calls


@transaction.atomic
def outbound_call_create(*, assistant, to_number: str, from_number: str, source: str, user=None) -> OutboundCall:
    return OutboundCall.objects.create(
        assistant=assistant,
        to_number=to_number,
        from_number=from_number,
        source=source,
        created_by=user if getattr(user, "pk", None) else None,
    )


@transaction.atomic
def outbound_call_placed(*, pk: int, elks_call_id: str, elks_state: str) -> None:
    """46elks accepted the call: it rings now. (The WebSocket leg may already have been paired.)"""
    OutboundCall.objects.filter(pk=pk).update(elks_call_id=elks_call_id[:100], elks_state=elks_state[:30])
    OutboundCall.objects.filter(pk=pk, status=OutboundStatus.REQUESTING).update(status=OutboundStatus.CALLING)


@transaction.atomic
def outbound_call_failed(*, pk: int, error: str) -> None:
    OutboundCall.objects.filter(pk=pk).update(status=OutboundStatus.FAILED, error=error[:2000], ended_at=timezone.now())


@transaction.atomic
def outbound_call_hung_up(*, elks_call_id: str, state: str) -> bool:
    """46elks' `whenhangup` for a call we placed: a call never answered is no longer pending."""
    outbound = OutboundCall.objects.select_for_update().filter(elks_call_id=elks_call_id).first()
    if outbound is None:
        return False
    outbound.elks_state = state[:30]
    outbound.ended_at = timezone.now()
    if outbound.status in (OutboundStatus.REQUESTING, OutboundStatus.CALLING):
        outbound.status = OutboundStatus.ENDED
        outbound.error = (
            outbound.error or f"46elks reported the call as {state or 'ended'} before the assistant joined."
        )
    outbound.save(update_fields=["elks_state", "ended_at", "status", "error"])
    return True


# ------------------------------------------------------------------ API tokens


TOKEN_PREFIX = "va_"


@transaction.atomic
def api_token_create(*, name: str, user=None) -> tuple[ApiToken, str]:
    """A new token; the plain text is returned once and never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name, prefix=raw[:10], key_hash=hash_token(raw), created_by=user if getattr(user, "pk", None) else None
    )
    return token, raw


@transaction.atomic
def api_token_authenticate(*, raw: str) -> ApiToken | None:
    if not raw:
        return None
    token = ApiToken.objects.filter(key_hash=hash_token(raw), is_active=True).first()
    if token is not None:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


# ------------------------------------------------------------------ the pizza demo


@transaction.atomic
def pizza_order_create(
    *,
    callid: str,
    phone: str,
    customer_name: str,
    items: list,
    pickup_or_delivery: str,
    address: str = "",
    notes: str = "",
) -> PizzaOrder:
    call = Call.objects.filter(call_id=callid).first() if callid else None
    return PizzaOrder.objects.create(
        call=call,
        phone=phone[:32],
        customer_name=customer_name[:100],
        items=items,
        pickup_or_delivery=pickup_or_delivery[:10],
        address=address[:300],
        notes=notes,
    )
