"""Which outbound call a new WebSocket leg belongs to.

46elks documents no field in `hello` that ties the WebSocket leg to the call we placed with
`POST /a1/calls`. We try, in order:

1. the 46elks call id: the `id` the REST API returned equals the hello's `callid`
   (third-party code assumes so; unverified on a live call);
2. the numbers: the callee's number is the hello's `from` or `to`, and the other one is the
   number we called from or the websocket number, within OUTBOUND_PAIRING_WINDOW_SECONDS of
   placing the call; the newest such call wins.

Called from `calls.services.call_start`, inside its transaction.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from assistants.phone import normalize_e164

from .models import OutboundCall, OutboundStatus

PENDING = (OutboundStatus.REQUESTING, OutboundStatus.CALLING)


def _e164(raw: str) -> str:
    try:
        return normalize_e164(raw)
    except ValueError:
        return raw or ""


def outbound_call_claim(*, call_id: str, from_number: str, to_number: str) -> OutboundCall | None:
    """The pending outbound call this hello is the answered leg of, locked for update; or None."""
    since = timezone.now() - timedelta(seconds=settings.OUTBOUND_PAIRING_WINDOW_SECONDS)
    pending = (
        OutboundCall.objects.select_for_update(of=("self",))
        .select_related("assistant")
        .filter(status__in=PENDING, call__isnull=True, created_at__gte=since, assistant__is_active=True)
    )
    by_id = pending.filter(elks_call_id=call_id).exclude(elks_call_id="").first()
    if by_id is not None:
        by_id.paired_by = "callid"
        return by_id
    hello_from, hello_to = _e164(from_number), _e164(to_number)
    ours = {_e164(settings.ELKS_WEBSOCKET_NUMBER)} if settings.ELKS_WEBSOCKET_NUMBER else set()
    for candidate in pending.filter(to_number__in=[hello_from, hello_to]).order_by("-created_at"):
        other = hello_to if candidate.to_number == hello_from else hello_from
        if other in ours | {candidate.from_number}:
            candidate.paired_by = "numbers"
            return candidate
    return None


def outbound_call_attach(outbound: OutboundCall, call) -> None:
    """Record that `call` is the answered leg of `outbound` (same transaction as the claim)."""
    outbound.call = call
    outbound.status = OutboundStatus.ANSWERED
    outbound.save(update_fields=["call", "status", "paired_by"])
