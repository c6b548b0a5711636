"""Writes about calls. Each service is one transaction, called once per event, never per audio frame."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from assistants.phone import normalize_e164
from assistants.realtime_config import AssistantConfig
from assistants.selectors import assistant_for_number

from .models import Call, CallStatus, EndReason, TranscriptEntry


def _display_number(raw: str) -> str:
    try:
        return normalize_e164(raw)
    except ValueError:
        return (raw or "")[:32]


@transaction.atomic
def call_start(
    *, call_id: str, from_number: str, to_number: str, worker: str = ""
) -> tuple[int | None, AssistantConfig | None, str]:
    """Record a new call from 46elks' hello and pick its assistant.

    Returns the call's pk, the assistant's settings (None when the call is refused) and, when
    refused, a sentence saying why and what to do about it.
    """
    assistant = assistant_for_number(to_number)
    to_display = _display_number(to_number)
    now = timezone.now()
    if assistant is None:
        reason = (
            f"No active assistant answers {to_display}. Add this number under Phone numbers "
            f"(or activate it and its assistant) to take these calls."
        )
        fields = dict(status=CallStatus.REJECTED, end_reason=EndReason.UNKNOWN_NUMBER, end_detail=reason, ended_at=now)
    else:
        reason = ""
        fields = dict(status=CallStatus.ACTIVE, assistant=assistant)
    try:
        with transaction.atomic():
            call = Call.objects.create(
                call_id=call_id,
                from_number=_display_number(from_number),
                to_number=to_display,
                started_at=now,
                worker=worker,
                **fields,
            )
    except IntegrityError:
        return None, None, f"A call with id {call_id!r} was already recorded; a repeated hello is refused."
    if assistant is None:
        call.duration = call.ended_at - call.started_at
        call.save(update_fields=["duration"])
        return call.pk, None, reason
    return call.pk, AssistantConfig.from_assistant(assistant), ""


@transaction.atomic
def call_finish(*, call_pk: int, status: str, end_reason: str, detail: str = "") -> bool:
    """Close an active call; a call already closed keeps its first ending."""
    call = Call.objects.select_for_update().filter(pk=call_pk, status=CallStatus.ACTIVE).first()
    if call is None:
        return False
    call.finish_fields(status=status, end_reason=end_reason, detail=detail, ended_at=timezone.now())
    call.save(update_fields=["status", "end_reason", "end_detail", "ended_at", "duration"])
    return True


@transaction.atomic
def transcript_write(*, call_pk: int, lines: Iterable) -> None:
    """Insert or replace transcript lines by their position in the conversation."""
    for line in lines:
        TranscriptEntry.objects.update_or_create(
            call_id=call_pk,
            position=line.position,
            defaults=dict(
                role=line.role,
                text=line.text,
                item_id=line.item_id,
                interrupted=line.interrupted,
                offset_ms=line.offset_ms,
            ),
        )


@transaction.atomic
def calls_close_orphans(*, worker: str | None = None) -> int:
    """Close calls left `active` by a process that died; returns how many."""
    qs = Call.objects.select_for_update().filter(status=CallStatus.ACTIVE)
    if worker is not None:
        qs = qs.filter(worker=worker)
    now = timezone.now()
    count = 0
    for call in qs:
        call.finish_fields(
            status=CallStatus.FAILED,
            end_reason=EndReason.SERVER_SHUTDOWN,
            detail="The server process handling this call stopped before the call ended.",
            ended_at=now,
        )
        call.save(update_fields=["status", "end_reason", "end_detail", "ended_at", "duration"])
        count += 1
    return count
