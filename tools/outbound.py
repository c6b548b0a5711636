"""Placing an outbound call: the one path behind the admin, the API and `manage.py call_number`.

The call is recorded first (so a failure is never lost), then 46elks is asked to ring the number
and, once answered, to connect it to our websocket number; the WebSocket leg that follows is
paired with this record by `tools.pairing` and handled by the chosen assistant.
"""

from __future__ import annotations

import json
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from assistants.models import Assistant
from assistants.phone import normalize_e164

from . import services
from .elks_api import ElksApiError, place_call
from .models import OutboundCall


class OutboundCallError(Exception):
    """The call could not be placed; the message says why and what to do. `outbound` is the record, if any."""

    def __init__(
        self, message: str, outbound: OutboundCall | None = None, status: int | None = None, http_status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.outbound = outbound
        self.status = status  # 46elks' HTTP status, when 46elks answered
        self.http_status = http_status  # what our API answers: 400 bad request, 409, 503 setup, 502 46elks


def _setting_number(name: str) -> str:
    """A number setting in E.164 ("" when unset); OutboundCallError when it is not a number."""
    raw = getattr(settings, name)
    if not raw:
        return ""
    try:
        return normalize_e164(raw)
    except ValueError as exc:
        raise OutboundCallError(f"{name}: {exc}", http_status=503) from None


def caller_id_for(assistant: Assistant) -> str:
    """The number the callee sees: ELKS_CALLER_ID, else the assistant's first active number."""
    caller_id = _setting_number("ELKS_CALLER_ID")
    if caller_id:
        return caller_id
    websocket = _setting_number("ELKS_WEBSOCKET_NUMBER")
    for number in assistant.numbers.filter(is_active=True).order_by("created_at"):
        if number.number != websocket:
            return number.number
    return ""


def _callback_url(path: str) -> str:
    """One of our 46elks callback URLs, when PUBLIC_BASE_URL says where we are ("" otherwise)."""
    base = settings.PUBLIC_BASE_URL
    return f"{base}/{path}/{settings.ELKS_WS_SECRET}/" if base else ""


def voice_start() -> dict[str, str]:
    """What 46elks does when the callee answers: connect them to us, then (after us) ask `next`.

    With `next`, a transfer to a person works on outbound calls too (see docs/actions.md).
    """
    action = {"connect": _setting_number("ELKS_WEBSOCKET_NUMBER")}
    next_url = _callback_url("elks/next")
    if next_url:
        action["next"] = next_url
    return action


def configuration_problems(assistant: Assistant | None = None) -> list[str]:
    """What is missing before any outbound call can work, in words an admin can act on."""
    problems = []
    if not settings.ELKS_API_USERNAME or not settings.ELKS_API_PASSWORD:
        problems.append("Set ELKS_API_USERNAME and ELKS_API_PASSWORD (from the 46elks dashboard).")
    if not settings.ELKS_WEBSOCKET_NUMBER:
        problems.append("Set ELKS_WEBSOCKET_NUMBER to your 46elks websocket number, so the call reaches us.")
    if assistant is not None and not caller_id_for(assistant):
        problems.append(
            f"No number to call from: set ELKS_CALLER_ID, or add one of your 46elks numbers to {assistant}."
        )
    return problems


@cache
def _outbound_checks() -> tuple:
    """`settings.OUTBOUND_CALL_CHECKS`: functions `(to_number) -> str`, a refusal in words ("" lets it ring).

    Apps above tools (e.g. campaigns' do-not-call list) plug in here; tools names none of them.
    """
    return tuple(import_string(path) for path in getattr(settings, "OUTBOUND_CALL_CHECKS", []))


def outbound_refusal(to_number: str) -> str:
    """Why no call may ring `to_number` ("": it may), asked of every outbound call."""
    for check in _outbound_checks():
        refusal = check(to_number)
        if refusal:
            return refusal
    return ""


def place_outbound_call(*, assistant: Assistant, to: str, source: str, user=None) -> OutboundCall:
    """Ring `to` with `assistant`; raises OutboundCallError with a clear message when it cannot."""
    try:
        to_number = normalize_e164(to)
    except ValueError as exc:
        raise OutboundCallError(str(exc)) from None
    if not assistant.is_active:
        raise OutboundCallError(f"{assistant} is not active: activate it first.", http_status=409)
    refusal = outbound_refusal(to_number)
    if refusal:
        raise OutboundCallError(refusal, http_status=409)
    problems = configuration_problems(assistant)
    if problems:
        raise OutboundCallError(" ".join(problems), http_status=503)
    from_number = caller_id_for(assistant)
    outbound = services.outbound_call_create(
        assistant=assistant, to_number=to_number, from_number=from_number, source=source, user=user
    )
    try:
        placed = place_call(
            from_number=from_number,
            to_number=to_number,
            voice_start=json.dumps(voice_start()),
            whenhangup=_callback_url("elks/hangup"),
        )
    except ElksApiError as exc:
        services.outbound_call_failed(pk=outbound.pk, error=exc.message)
        outbound.refresh_from_db()
        raise OutboundCallError(exc.message, outbound, exc.status, http_status=502) from None
    services.outbound_call_placed(pk=outbound.pk, elks_call_id=placed.id, elks_state=placed.state)
    outbound.refresh_from_db()
    return outbound
