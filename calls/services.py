"""Writes about calls. Each service is one transaction, called once per event, never per audio frame."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from assistants.models import Assistant
from assistants.phone import normalize_e164
from assistants.realtime_config import AssistantConfig
from assistants.revisions import revision_id_for_call
from assistants.selectors import assistant_for_number

from .hooks import CONFIG_OVERRIDES, OVERRIDABLE, CallStartHook, Claim, call_start_hooks
from .models import Call, CallDirection, CallStatus, EndReason, ServerProcess, TranscriptEntry

if TYPE_CHECKING:
    from calls.live.types import TranscriptLine


def _display_number(raw: str) -> str:
    try:
        return normalize_e164(raw)
    except ValueError:
        return (raw or "")[:32]


def _assistant(pk: int) -> Assistant | None:
    return Assistant.objects.filter(pk=pk).first()


def call_start(
    *,
    call_id: str,
    from_number: str,
    to_number: str,
    worker: str = "",
    server_id: int | None = None,
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
    assistant is known, before its revision is looked up and the row is written, so OpenAI's
    session can be set up meanwhile (its config carries no revision yet; the returned one does).
    Extensions take part through `settings.CALL_START_HOOKS` (calls.hooks), e.g. to recognise
    the answered leg of an outbound call, whose own assistant then answers.

    The assistant is looked up before the transaction begins: on SQLite, beginning it takes the
    write lock, which waits for every other writer (another call's start, transcripts).
    """
    pending: list[tuple[CallStartHook, Any]] = []
    if assistant_id is not None:
        assistant = _assistant(assistant_id)
    else:
        for hook in call_start_hooks():
            found = hook.candidates(call_id=call_id, from_number=from_number, to_number=to_number)
            if found:
                pending.append((hook, found))
        assistant = None if pending else assistant_for_number(to_number)
    extras = None
    if assistant is not None and not refuse_reason:
        early = _call_config(assistant, None)
        extras = early.extra
        if on_assistant is not None:
            on_assistant(early)
            on_assistant = None
    return _call_record(
        call_id=call_id,
        from_number=from_number,
        to_number=to_number,
        worker=worker,
        server_id=server_id,
        refuse_reason=refuse_reason,
        refuse_detail=refuse_detail,
        is_test=is_test,
        assistant=assistant,
        pending=pending,
        extras=extras,
        on_assistant=on_assistant,
    )


@transaction.atomic
def _call_record(
    *,
    call_id: str,
    from_number: str,
    to_number: str,
    worker: str,
    server_id: int | None,
    refuse_reason: str,
    refuse_detail: str,
    is_test: bool,
    assistant: Assistant | None,
    pending: list[tuple[CallStartHook, Any]],
    extras: dict | None,
    on_assistant: Callable[[AssistantConfig], None] | None,
) -> tuple[int | None, AssistantConfig | None, str]:
    """call_start's writes: let a hook claim the call (if any may), look up the revision, insert the call."""
    claim = next((c for hook, found in pending if (c := hook.claim(found)) is not None), None)
    if pending:
        # Claimed by another leg meanwhile, this is an ordinary call to the dialled number.
        assistant = claim.assistant if claim is not None else assistant_for_number(to_number)
        if assistant is not None and not refuse_reason and on_assistant is not None:
            on_assistant(_call_config(assistant, claim))
    to_display = _display_number(to_number)
    if server_id is not None and not ServerProcess.objects.filter(pk=server_id).exists():
        server_id = None  # its row was deleted: the process's next heartbeat writes it again and adopts the call
    now = timezone.now()
    ended = dict(status=CallStatus.REJECTED, ended_at=now, duration=timedelta(0))  # a refused call ends at once
    if refuse_reason:
        reason = refuse_detail
        fields = dict(end_reason=refuse_reason, end_detail=reason, assistant=assistant, **ended)
        assistant = None
    elif assistant is None:
        reason = (
            f"No active assistant answers {to_display}. Add this number under Phone numbers "
            f"(or activate it and its assistant) to take these calls."
        )
        fields = dict(end_reason=EndReason.UNKNOWN_NUMBER, end_detail=reason, **ended)
    else:
        reason = ""
        # The exact settings this call runs with, so its transcript can be read next to them.
        assistant.current_revision_id = revision_id_for_call(assistant)
        fields = dict(
            status=CallStatus.ACTIVE, assistant=assistant, last_seen_at=now, revision_id=assistant.current_revision_id
        )
    try:
        with transaction.atomic():
            call = Call.objects.create(
                call_id=call_id,
                from_number=_display_number(from_number),
                to_number=to_display,
                started_at=now,
                worker=worker,
                server_id=server_id,
                is_test=is_test,
                direction=claim.direction if claim is not None else CallDirection.INBOUND,
                **fields,
            )
    except IntegrityError:
        return None, None, f"A call with id {call_id!r} was already recorded; a repeated hello is refused."
    if assistant is None:
        return call.pk, None, reason
    if claim is not None:
        claim.hook.attach(claim, call)
    return call.pk, _call_config(assistant, claim, extras=None if claim is not None else extras), ""


def _call_config(assistant: Assistant, claim: Claim | None, *, extras: dict | None = None) -> AssistantConfig:
    """The settings a call runs with: the assistant's, plus what the extensions add (calls.hooks)."""
    config = AssistantConfig.from_assistant(assistant)
    if extras is None:
        extras = {}
        for hook in call_start_hooks():
            extras.update(hook.extras(assistant, claim))
    config.extra.update(extras)
    # A hook may change the call's own settings (calls.hooks.CONFIG_OVERRIDES), e.g. a campaign's
    # per-contact welcome message; only AssistantConfig's text and number fields, never its identity.
    overrides = config.extra.pop(CONFIG_OVERRIDES, None) or {}
    allowed = {k: v for k, v in overrides.items() if k in OVERRIDABLE and isinstance(v, type(getattr(config, k)))}
    return dataclasses.replace(config, **allowed) if allowed else config


@transaction.atomic
def call_finish(*, call_pk: int, status: str, end_reason: str, detail: str = "") -> bool:
    """Close an active call; a call already closed keeps its first ending."""
    call = Call.objects.select_for_update().filter(pk=call_pk, status=CallStatus.ACTIVE).first()
    if call is None:
        return False
    call.finish_fields(status=status, end_reason=end_reason, detail=detail, ended_at=timezone.now())
    call.save(update_fields=["status", "end_reason", "end_detail", "ended_at", "duration"])
    return True


TRANSCRIPT_FIELDS = ["role", "text", "item_id", "interrupted", "offset_ms"]


@transaction.atomic
def transcript_write(*, lines: Iterable[tuple[int, TranscriptLine]]) -> int:
    """Insert or replace transcript lines, of any number of calls, by their position in the conversation.

    `lines` are (call pk, line) pairs, each pair at most once; one upsert statement writes them (in a
    few batches where the database limits a statement's parameters). Returns how many were written.
    """
    entries = [
        TranscriptEntry(call_id=call_pk, position=line.position, **{f: getattr(line, f) for f in TRANSCRIPT_FIELDS})
        for call_pk, line in lines
    ]
    TranscriptEntry.objects.bulk_create(
        entries, update_conflicts=True, unique_fields=["call", "position"], update_fields=TRANSCRIPT_FIELDS
    )
    return len(entries)


def calls_heartbeat(*, call_pks: list[int]) -> None:
    """The process handling these calls is alive (only for calls recorded outside a server process)."""
    Call.objects.filter(pk__in=call_pks, status=CallStatus.ACTIVE).update(last_seen_at=timezone.now())


def calls_close_stale(*, dead_after_s: float | None = None, stale_after_s: float | None = None) -> int:
    """Close the calls of processes that stopped beating (they died); returns how many.

    A call of a server process is closed once that process's heartbeat is older than `dead_after_s`
    (SERVER_DEAD_AFTER_SECONDS); a call recorded without one (before processes beat, or outside a
    server) once its own heartbeat is older than `stale_after_s` (3x CALL_HEARTBEAT_SECONDS).
    Safe during a rolling deploy and at release: processes that still run keep beating.
    """
    from django.conf import settings

    dead_after_s = dead_after_s if dead_after_s is not None else settings.SERVER_DEAD_AFTER_SECONDS
    stale_after_s = stale_after_s if stale_after_s is not None else 3 * settings.CALL_HEARTBEAT_SECONDS
    now = timezone.now()
    dead_cutoff = now - timedelta(seconds=dead_after_s)
    cutoff = now - timedelta(seconds=stale_after_s)
    dead = list(
        ServerProcess.objects.filter(stopped_at__isnull=True, last_seen_at__lt=dead_cutoff).values_list("pk", flat=True)
    )
    stale = Call.objects.filter(status=CallStatus.ACTIVE).filter(
        Q(server__last_seen_at__lt=dead_cutoff)
        | Q(server__isnull=True, last_seen_at__lt=cutoff)
        | Q(server__isnull=True, last_seen_at__isnull=True, started_at__lt=cutoff)
    )
    closed = calls_close_orphans(pks=list(stale.values_list("pk", flat=True)))
    if dead:
        ServerProcess.objects.filter(pk__in=dead, stopped_at__isnull=True).update(stopped_at=now)
    return closed


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


@transaction.atomic
def server_process_start(
    *, slot: str, host: str, pid: int, boot_id: str, pids_alive: Callable[[int], bool]
) -> tuple[int, int]:
    """Record this start of a server process; returns its pk and how many calls of earlier starts it closed.

    An earlier start in the same slot on the same machine whose process is gone (`pids_alive` says
    so, or it had our own pid) is dead for certain: its calls are closed at once. One elsewhere
    (a preboot's old dyno, say) may still be serving calls: its calls wait for its heartbeat to stop.
    """
    now = timezone.now()
    earlier = ServerProcess.objects.select_for_update().filter(slot=slot, host=host, stopped_at__isnull=True)
    dead = [p.pk for p in earlier if p.pid == pid or not pids_alive(p.pid)]
    closed = 0
    if dead:
        closed = calls_close_orphans(
            pks=list(Call.objects.filter(server_id__in=dead, status=CallStatus.ACTIVE).values_list("pk", flat=True))
        )
        ServerProcess.objects.filter(pk__in=dead).update(stopped_at=now)
    process = ServerProcess.objects.create(
        slot=slot, host=host, pid=pid, boot_id=boot_id, started_at=now, last_seen_at=now
    )
    return process.pk, closed


def server_process_beat(*, pk: int, slot: str, host: str, pid: int, boot_id: str, call_pks: list[int]) -> int:
    """This process is alive; then close the calls of processes that are not. Returns how many were closed.

    A row found dead meanwhile (the database was out of reach for long) is alive again; one deleted
    (by hand) is written again, and the process's calls recorded meanwhile without it are attached.
    """
    now = timezone.now()
    if not ServerProcess.objects.filter(pk=pk).update(last_seen_at=now, stopped_at=None):
        ServerProcess.objects.get_or_create(
            pk=pk, defaults=dict(slot=slot, host=host, pid=pid, boot_id=boot_id, started_at=now, last_seen_at=now)
        )
    if call_pks:
        Call.objects.filter(pk__in=call_pks, server__isnull=True).update(server_id=pk)
    return calls_close_stale()


def server_process_stop(*, pk: int) -> None:
    """This process stopped cleanly (its calls were ended first)."""
    ServerProcess.objects.filter(pk=pk, stopped_at__isnull=True).update(stopped_at=timezone.now())


def server_processes_prune(*, older_than_days: int = 30) -> int:
    """Forget processes stopped long ago (their calls keep their records); returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    return ServerProcess.objects.filter(stopped_at__lt=cutoff).delete()[0]
