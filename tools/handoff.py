"""The warm transfer's note by SMS: the colleague reads who is calling and why as their phone rings.

46elks' WebSocket leg cannot whisper to the colleague (there is no second audio leg we control,
docs/campaigns.md), so the note goes by SMS (`POST /a1/sms`) just before 46elks connects the call.
A failed SMS never stops the transfer: it is recorded on the transfer, and the note is in admin.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.html import format_html

from . import services
from .elks_api import ElksApiError, send_sms
from .models import Transfer

log = logging.getLogger(__name__)

SMS_MAX = 600


def handoff_text(transfer: Transfer) -> str:
    caller = transfer.call.from_number if transfer.call_id else ""
    head = f"Call from {caller}: " if caller else "Incoming call: "
    return (head + transfer.summary)[:SMS_MAX]


def send_handoff_sms(transfer: Transfer) -> bool:
    sender = (
        settings.TRANSFER_SMS_FROM or settings.ELKS_CALLER_ID or (transfer.call.to_number if transfer.call_id else "")
    )
    if not sender:
        services.transfer_sms_recorded(pk=transfer.pk, status="Not sent: set TRANSFER_SMS_FROM or ELKS_CALLER_ID.")
        return False
    try:
        send_sms(from_sender=sender, to_number=transfer.to_number, message=handoff_text(transfer))
    except ElksApiError as exc:
        log.warning("transfer %s: the hand-off SMS failed: %s", transfer.pk, exc.message)
        services.transfer_sms_recorded(pk=transfer.pk, status=f"Failed: {exc.message}")
        return False
    services.transfer_sms_recorded(pk=transfer.pk, status="Sent")
    return True


def transfer_note(call) -> str:
    """The dashboard's call panel (settings.DASHBOARD_CALL_DETAILS): the note for the person taking over."""
    transfer = Transfer.objects.filter(call_id=call.pk).exclude(summary="").first()
    if transfer is None:
        return ""
    sms = f" · SMS: {transfer.sms_status}" if transfer.sms_status else ""
    return format_html(
        '<div class="handoff"><p><strong>Hand-off note for {}</strong>{}</p><p>{}</p></div>',
        transfer.to_number,
        sms,
        transfer.summary,
    )
