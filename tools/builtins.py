"""The actions every assistant can switch on: hang up, hand the caller to a person, know the time.

Hanging up and transferring both end the AI leg after the assistant's next reply has been heard
to the end (`end_after_reply`: 46elks confirms playback with `sync` before we say `bye`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils.module_loading import import_string

from calls.db import run_db
from calls.live.types import Outcome

from . import services

if TYPE_CHECKING:
    from calls.live.types import CallHandle

log = logging.getLogger(__name__)

# If the goodbye never comes (the model stalls), the call still ends this long after the tool ran.
GOODBYE_DEADLINE_S = 20.0

_REASON = {"reason": {"type": "string", "description": "Why, in a few words (for the call's record)."}}

END_CALL = {
    "type": "function",
    "name": "end_call",
    "description": (
        "Hang up the phone call. Use it when the conversation is over: the caller said goodbye, or has "
        "what they needed and nothing more. After calling it, say a short goodbye; the call ends when "
        "you have finished speaking."
    ),
    "parameters": {"type": "object", "properties": dict(_REASON), "required": []},
}
TRANSFER_CALL = {
    "type": "function",
    "name": "transfer_call",
    "description": (
        "Transfer the caller to a person (a human colleague). Use it when the caller asks for a human, "
        "or when you cannot help them. After calling it, tell the caller in one short sentence that "
        "you are connecting them now."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            **_REASON,
            "summary": {
                "type": "string",
                "description": (
                    "A hand-off note for the colleague, two or three short sentences: who is calling, what "
                    "they want, and what was already said or agreed."
                ),
            },
        },
        "required": [],
    },
}


def datetime_tool(time_zone: str) -> dict[str, Any]:
    return {
        "type": "function",
        "name": "current_datetime",
        "description": (
            f"Get today's date, the weekday and the current time where the business is ({time_zone}). "
            "Use it before talking about today, tomorrow, opening hours or times."
        ),
        "parameters": {"type": "object", "properties": {}, "required": []},
    }


@dataclass(frozen=True)
class Result:
    """What a built-in did: the model's output, and how it is recorded."""

    output: str
    status: str = "ok"
    error: str = ""
    shown: str = ""  # what the transcript shows instead of the output (e.g. a look-up's passages in short)


def _ok(**fields: Any) -> Result:
    return Result(json.dumps({"ok": True, **fields}, ensure_ascii=False))


def _fail(message: str, error: str) -> Result:
    return Result(json.dumps({"error": message}, ensure_ascii=False), "error", error)


def _end_later(session: CallHandle, outcome: Outcome) -> None:
    """The safety net: the call ends even if the goodbye never comes."""

    def fire() -> None:
        if not session.finished.is_set() and session.outcome is None:
            log.warning("call %s: no goodbye within %gs; hanging up", session.hello.callid, GOODBYE_DEADLINE_S)
            session.request_hang_up(outcome)

    asyncio.get_running_loop().call_later(GOODBYE_DEADLINE_S, fire)


async def end_call(session: CallHandle, arguments: dict[str, Any]) -> Result:
    reason = str(arguments.get("reason") or "").strip()[:200]
    detail = f"The assistant ended the call{f': {reason}' if reason else '.'}"
    outcome = Outcome("completed", "assistant_hangup", detail)
    session.end_after_reply(outcome)
    _end_later(session, outcome)
    return _ok(
        next="Say a short goodbye now, in the language of the conversation. The call ends when you have "
        "finished speaking."
    )


async def transfer_call(session: CallHandle, arguments: dict[str, Any]) -> Result:
    number = session.config.transfer_number if session.config else ""
    if not number:
        return _fail("Transfers are not set up for this line. Offer another way to help.", "No transfer number.")
    reason = str(arguments.get("reason") or "").strip()[:200]
    summary = str(arguments.get("summary") or "").strip()[:1000]
    try:
        await run_db(services.transfer_request)(call_pk=session.call_pk, number=number, reason=reason, summary=summary)
    except Exception as exc:
        log.exception("call %s: could not record the transfer", session.hello.callid)
        return _fail(
            "The transfer could not be arranged right now. Apologise and offer another way to help.",
            f"Could not record the transfer: {type(exc).__name__}",
        )
    outcome = Outcome("completed", "transferred", f"Transferred to {number}{f' ({reason})' if reason else ''}.")
    session.end_after_reply(outcome)
    _end_later(session, outcome)
    return _ok(
        next="Tell the caller in one short sentence that you are connecting them to a colleague now. Do not "
        "ask anything more; the transfer starts when you have finished speaking."
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


async def current_datetime(session: CallHandle, arguments: dict[str, Any]) -> Result:
    zone = _zone(session.config.time_zone if session.config else settings.TIME_ZONE)
    now = datetime.now(zone)
    return _ok(
        date=now.date().isoformat(),
        weekday=now.strftime("%A"),
        time=now.strftime("%H:%M"),
        time_zone=str(zone.key),
        iso=now.isoformat(timespec="seconds"),
    )


@cache
def extension_builtins() -> tuple[Any, ...]:
    """The functions settings.CALL_BUILTIN_TOOLS names: config → {name: (definition, function)}.

    How feature apps above this one (e.g. knowledge's `search_knowledge`) add built-ins: tools
    names none of them.
    """
    return tuple(import_string(path) for path in getattr(settings, "CALL_BUILTIN_TOOLS", []))


def enabled(config) -> dict[str, tuple[dict[str, Any], Any]]:
    """The built-ins this assistant has switched on: name → (definition, function)."""
    out: dict[str, tuple[dict[str, Any], Any]] = {}
    for extension in extension_builtins():
        for name, entry in extension(config).items():
            out.setdefault(name, entry)
    if config.end_call_enabled:
        out["end_call"] = (END_CALL, end_call)
    if config.transfer_number:
        out["transfer_call"] = (TRANSFER_CALL, transfer_call)
    if config.datetime_tool_enabled:
        out["current_datetime"] = (datetime_tool(config.time_zone), current_datetime)
    return out
