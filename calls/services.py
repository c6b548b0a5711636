"""Writes about calls. Each service is one transaction, called once per event, never per audio frame."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from assistants.models import Assistant
from assistants.phone import normalize_e164
from assistants.realtime_config import AssistantConfig
from assistants.selectors import assistant_for_number
from insights.revisions import revision_for_call
from tools.pairing import outbound_call_attach, outbound_call_claim
from tools.selectors import call_extras

from .models import Call, CallDirection, CallStatus, EndReason, TranscriptEntry


def _display_number(raw: str) -> str:
    try:
        return normalize_e164(raw)
    except ValueError:
        return (raw or "")[:32]


def _assistant(pk: int) -> Assistant | None:
    return Assistant.objects.filter(pk=pk).first()


@transaction.atomic
def call_start(
    *,
    call_id: str,
    from_number: str,
    to_number: str,
    worker: str = "",
    refuse_reason: str = "",
    refuse_detail: str = "",
    assistant_id: int | None = None,
    is_test: bool = False,
    on_assistant: Callable[[AssistantConfig], None] | None = None,
) -> tuple[int | None, AssistantConfig | None, str]:
    """Record a new call from 46elks' hello and pick its assistant.

    Returns the call's pk, the assistant's settings (None when the call is refused) and, when
    refused, a sentence saying why and what to do about it. A browser test call (`is_test`) names
    its assistant by `assistant_id` instead of a dialled number, active or not: people try an
    assistant before they put it live. `on_assistant` is called (in this thread) as soon as the
    assistant is known, before the row is written, so connecting to OpenAI need not wait for it.
    """
    # A call we placed (tools.OutboundCall) comes back as a WebSocket leg: the assistant that placed it answers.
    outbound = None
    if assistant_id is None:
        outbound = outbound_call_claim(call_id=call_id, from_number=from_number, to_number=to_number)
    if outbound is not None:
        assistant = outbound.assistant
    else:
        assistant = assistant_for_number(to_number) if assistant_id is None else _assistant(assistant_id)
    to_display = _display_number(to_number)
    now = timezone.now()
    if refuse_reason:
        reason = refuse_detail
        fields = dict(
            status=CallStatus.REJECTED, end_reason=refuse_reason, end_detail=reason, ended_at=now, assistant=assistant
        )
        assistant = None
    elif assistant is None:
        reason = (
            f"No active assistant answers {to_display}. Add this number under Phone numbers "
            f"(or activate it and its assistant) to take these calls."
        )
        fields = dict(status=CallStatus.REJECTED, end_reason=EndReason.UNKNOWN_NUMBER, end_detail=reason, ended_at=now)
    else:
        reason = ""
        fields = dict(status=CallStatus.ACTIVE, assistant=assistant, last_seen_at=now)
        # The exact settings this call runs with, so its transcript can be read next to them.
        fields["revision"] = revision_for_call(assistant)
        assistant.current_revision_id = fields["revision"].pk
        if on_assistant is not None:
            # The caller can start connecting to OpenAI while the call row is written.
            on_assistant(AssistantConfig.from_assistant(assistant))
    try:
        with transaction.atomic():
            call = Call.objects.create(
                call_id=call_id,
                from_number=_display_number(from_number),
                to_number=to_display,
                started_at=now,
                worker=worker,
                is_test=is_test,
                direction=CallDirection.OUTBOUND if outbound is not None else CallDirection.INBOUND,
                **fields,
            )
    except IntegrityError:
        return None, None, f"A call with id {call_id!r} was already recorded; a repeated hello is refused."
    if assistant is None:
        call.duration = call.ended_at - call.started_at
        call.save(update_fields=["duration"])
        return call.pk, None, reason
    if outbound is not None:
        outbound_call_attach(outbound, call)
    config = AssistantConfig.from_assistant(assistant)
    config.extra.update(call_extras(assistant, outbound))  # the tools app's webhook tools, direction
    return call.pk, config, ""


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


def calls_heartbeat(*, call_pks: list[int]) -> None:
    """The process handling these calls is alive; stale calls are those whose process is not."""
    Call.objects.filter(pk__in=call_pks, status=CallStatus.ACTIVE).update(last_seen_at=timezone.now())


def calls_close_stale(*, stale_after_s: float | None = None) -> int:
    """Close calls whose process stopped sending heartbeats (it died); returns how many.

    Safe during a rolling deploy: calls on processes that still run keep their heartbeat fresh.
    """
    from django.conf import settings

    stale_after_s = stale_after_s if stale_after_s is not None else 3 * settings.CALL_HEARTBEAT_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    stale = Call.objects.filter(status=CallStatus.ACTIVE).filter(
        Q(last_seen_at__lt=cutoff) | Q(last_seen_at__isnull=True, started_at__lt=cutoff)
    )
    return calls_close_orphans(pks=list(stale.values_list("pk", flat=True)))


@transaction.atomic
def calls_close_orphans(*, pks: list[int] | None = None) -> int:
    """Close calls left `active` by a process that died (all, or these); returns how many."""
    qs = Call.objects.select_for_update().filter(status=CallStatus.ACTIVE)
    if pks is not None:
        qs = qs.filter(pk__in=pks)
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
