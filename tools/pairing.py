"""Which outbound call a new WebSocket leg belongs to.

46elks documents no field in `hello` that ties the WebSocket leg to the call we placed with
`POST /a1/calls`. We try, in order:

1. the 46elks call id: the `id` the REST API returned equals the hello's `callid`
   (third-party code assumes so; unverified on a live call);
2. the numbers: the callee's number is the hello's `from` or `to`, and the other one is the
   number we called from or the websocket number, within OUTBOUND_PAIRING_WINDOW_SECONDS of
   placing the call; the newest such call wins.

Called from `calls.services.call_start`: the look-up before its transaction, the claim inside it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from assistants.phone import normalize_e164

from .models import OutboundCall, OutboundStatus

PENDING = (OutboundStatus.REQUESTING, OutboundStatus.CALLING)


def _e164(raw: str) -> str:
    try:
        return normalize_e164(raw)
    except ValueError:
        return raw or ""


def outbound_call_candidates(*, call_id: str, from_number: str, to_number: str) -> list[tuple[int, str]]:
    """The pending outbound calls this hello may be the answered leg of, best first, with how each matched.

    Every hello asks, and nearly all are inbound calls: one light query, without a lock or the
    assistant's columns, before the call's transaction begins; `outbound_call_claim` then locks.
    """
    hello_from, hello_to = _e164(from_number), _e164(to_number)
    since = timezone.now() - timedelta(seconds=settings.OUTBOUND_PAIRING_WINDOW_SECONDS)
    rows = list(
        OutboundCall.objects.filter(status__in=PENDING, call__isnull=True, created_at__gte=since)
        .filter(Q(elks_call_id=call_id) | Q(to_number__in=[hello_from, hello_to]))
        .order_by("-created_at")
        .values_list("pk", "elks_call_id", "to_number", "from_number")
    )
    if not rows:
        return []
    ours = {_e164(settings.ELKS_WEBSOCKET_NUMBER)} if settings.ELKS_WEBSOCKET_NUMBER else set()
    # By id first, then by numbers; the newest first within each.
    found: dict[int, str] = {pk: "callid" for pk, elks_id, _, _ in rows if elks_id and elks_id == call_id}
    for pk, _, callee, caller_id in rows:
        if callee in (hello_from, hello_to):
            other = hello_to if callee == hello_from else hello_from
            if other in ours | {caller_id}:
                found.setdefault(pk, "numbers")
    return list(found.items())


def outbound_call_claim(*, candidates: list[tuple[int, str]]) -> OutboundCall | None:
    """The first of `candidates` still pending, locked for update in the caller's transaction; or None."""
    since = timezone.now() - timedelta(seconds=settings.OUTBOUND_PAIRING_WINDOW_SECONDS)
    pending = OutboundCall.objects.filter(
        status__in=PENDING, call__isnull=True, created_at__gte=since, assistant__is_active=True
    )
    for pk, paired_by in candidates:
        # Checked again under the lock: another leg may have claimed it since the look-up.
        claimed = pending.select_for_update(of=("self",)).select_related("assistant").filter(pk=pk).first()
        if claimed is not None:
            claimed.paired_by = paired_by
            return claimed
    return None


def outbound_call_attach(outbound: OutboundCall, call) -> None:
    """Record that `call` is the answered leg of `outbound` (same transaction as the claim)."""
    outbound.call = call
    outbound.status = OutboundStatus.ANSWERED
    outbound.save(update_fields=["call", "status", "paired_by"])
