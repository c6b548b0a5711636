"""The opt-out built-in (settings.CALL_BUILTIN_TOOLS): "don't call me again" → the do-not-call list.

Offered on a campaign's calls (their config carries the contact, calls.hooks extras), so other
assistants' tool lists stay as their admins set them; the number is the contact's.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from calls.db import run_db

from . import services

log = logging.getLogger(__name__)

OPT_OUT = {
    "type": "function",
    "name": "do_not_call_again",
    "description": (
        "Put this person's number on the do-not-call list. Use it when they ask not to be called again "
        "(“don't call me again”, “ring inte mig igen”, “take me off your list”). Then confirm in one "
        "short sentence that they will not be called again, and say goodbye."
    ),
    "parameters": {
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "What they said, in a few words."}},
        "required": [],
    },
}


def _their_number(session) -> str:
    """The campaign contact's number (the hello's numbers are 46elks' legs, not necessarily theirs)."""
    campaign = (session.config.extra or {}).get("campaign") if session.config else None
    if campaign and campaign.get("number"):
        return campaign["number"]
    return session.hello.from_number if session.hello else ""


async def do_not_call_again(session, arguments: dict[str, Any]):
    from tools.builtins import Result

    number = _their_number(session)
    reason = str(arguments.get("reason") or "").strip()[:200] or "Asked during a call not to be called again."
    try:
        await run_db(services.do_not_call_add)(number=number, reason=reason, source="call")
    except Exception as exc:
        log.exception("call %s: could not record the opt-out", getattr(session.hello, "callid", "?"))
        return Result(
            json.dumps({"error": "It could not be recorded right now. Apologise; a colleague will remove them."}),
            "error",
            f"Could not record the opt-out: {type(exc).__name__}",
        )
    return Result(json.dumps({"ok": True, "next": "Confirm they will not be called again, then say goodbye."}))


def opt_out_builtins(config) -> dict[str, tuple[dict[str, Any], Any]]:
    if not (config.extra or {}).get("campaign"):
        return {}
    return {"do_not_call_again": (OPT_OUT, do_not_call_again)}
