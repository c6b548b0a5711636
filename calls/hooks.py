"""Where extension apps take part in the core's work. The core names none of them: settings do.

- `settings.CALL_OBSERVERS`: told about every live call's events (calls.live.observers).
- `settings.CALL_TOOL_RUNNER`: runs the functions an assistant may call (calls.live.types.ToolRunner).
- `settings.CALL_START_HOOKS`: take part in recording a new call (`CallStartHook`, below).
- `settings.CALL_ADMIN_EXTENSIONS`, `settings.ASSISTANT_ADMIN_EXTENSIONS`: mixins that add
  columns, filters, sections and inlines to the core's admin pages (assistants.admin_helpers).
- `settings.SHUTDOWN_WAITERS`: async functions a stopping server process awaits once its calls
  have ended, so work they left behind (a recording being written) is not lost (`wait_for_shutdown`).
- `settings.CALL_DOCUMENT_PARTS`: functions `(call) -> dict` whose keys are added to the JSON
  documents about a call that extensions publish (the after-call webhook, the API).
- `call_event`: a signal an extension sends when it has news about a finished call (e.g.
  `event="call.analyzed"`); whoever tells the outside world (tools' webhooks) listens.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.dispatch import Signal
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)
# send(sender, call_pk=<Call pk>, event=<"call.analyzed", ...>), after the news is committed.
call_event = Signal()
# An `extras` key: {field: value} for the call's own AssistantConfig fields in OVERRIDABLE.
CONFIG_OVERRIDES = "config_overrides"
OVERRIDABLE = frozenset({"instructions", "welcome_message", "transfer_number", "language"})


@dataclass
class Claim:
    """What a hook says a new call is, beyond a call to a number: who answers it, and which way it goes."""

    hook: CallStartHook
    assistant: Any  # assistants.models.Assistant, or None: an ordinary call to the dialled number
    direction: str  # calls.models.CallDirection value
    target: Any = None  # the hook's own object (e.g. the outbound call this leg answers)


class CallStartHook:
    """An extension's part in `calls.services.call_start`, run in a database thread for every hello.

    Keep each method to a light query or two: a caller is waiting.
    """

    def candidates(self, *, call_id: str, from_number: str, to_number: str) -> Any:
        """Before the call's transaction: what this call might be for the hook (falsy: nothing)."""
        return None

    def claim(self, candidates: Any) -> Claim | None:
        """In the call's transaction: lock and claim one of `candidates`, or None if none is still free."""
        return None

    def attach(self, claim: Claim, call: Any) -> None:
        """In the same transaction, once the call's row exists."""

    def extras(self, assistant: Any, claim: Claim | None) -> dict[str, Any]:
        """What the call needs at its start beyond the assistant's settings (`AssistantConfig.extra`).

        The live call never queries the database, so whatever its extensions need is read here.
        Under the key CONFIG_OVERRIDES a hook may replace some of the call's settings (OVERRIDABLE).
        """
        return {}


@cache
def call_start_hooks() -> tuple[CallStartHook, ...]:
    return tuple(import_string(path)() for path in getattr(settings, "CALL_START_HOOKS", []))


async def wait_for_shutdown(timeout: float) -> bool:
    """Await every `settings.SHUTDOWN_WAITERS` function, all together, at most `timeout` s; True if all finished."""
    waiters = [asyncio.ensure_future(import_string(path)()) for path in getattr(settings, "SHUTDOWN_WAITERS", [])]
    if not waiters:
        return True
    done, pending = await asyncio.wait(waiters, timeout=max(timeout, 0.0))
    for task in done:
        if task.exception() is not None:
            log.error("shutdown waiter failed: %r", task.exception())
    if pending:
        log.error("shutting down with %d waiter(s) unfinished after %gs (work may be lost)", len(pending), timeout)
        for task in pending:
            task.cancel()
    return not pending


@cache
def _document_parts() -> tuple[Any, ...]:
    return tuple(import_string(path) for path in getattr(settings, "CALL_DOCUMENT_PARTS", []))


def call_document_parts(call: Any) -> dict[str, Any]:
    """What the extensions named in `settings.CALL_DOCUMENT_PARTS` add to a document about `call`."""
    parts: dict[str, Any] = {}
    for part in _document_parts():
        parts.update(part(call))
    return parts
