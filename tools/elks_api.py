"""46elks' REST API, the part we use: placing a call (`POST /a1/calls`), sending an SMS (`POST /a1/sms`).

Every failure becomes an `ElksApiError` whose message tells a non-developer what to fix.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import httpx2
from django.conf import settings

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0


class ElksApiError(Exception):
    """46elks did not place the call; the message says why and what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PlacedCall:
    id: str
    state: str


def _explain(status: int, body: str) -> str:
    said = body.strip()[:300] or "(no message)"
    if status == 401:
        return (
            "46elks refused the API credentials (HTTP 401). Check ELKS_API_USERNAME and ELKS_API_PASSWORD "
            "(the API username and password from your 46elks dashboard, not your login)."
        )
    if status == 403:
        return (
            f"46elks refused to place the call (HTTP 403): {said}. The 'from' number must be one of your "
            "46elks numbers, and trial accounts may only call numbers verified in the dashboard."
        )
    if status == 402:
        return f"46elks refused the call for lack of credit (HTTP 402): {said}. Top up your 46elks account."
    if 400 <= status < 500:
        return f"46elks rejected the request (HTTP {status}): {said}. Check the numbers (international form, +46…)."
    return f"46elks had a server problem (HTTP {status}): {said}. Try again in a minute."


def place_call(*, from_number: str, to_number: str, voice_start: str, whenhangup: str = "") -> PlacedCall:
    """Ask 46elks to call `to_number` from `from_number`; `voice_start` runs when the callee answers."""
    url = f"{settings.ELKS_API_URL}/calls"
    data = {"from": from_number, "to": to_number, "voice_start": voice_start}
    if whenhangup:
        data["whenhangup"] = whenhangup
    auth = (settings.ELKS_API_USERNAME, settings.ELKS_API_PASSWORD)
    try:
        with httpx2.Client(timeout=TIMEOUT_S, follow_redirects=False) as http:
            response = http.post(url, data=data, auth=auth)
    except httpx2.TimeoutException:
        raise ElksApiError(f"46elks did not answer within {TIMEOUT_S:g} s ({url}). Try again in a minute.") from None
    except httpx2.HTTPError as exc:
        raise ElksApiError(
            f"Could not reach 46elks at {url}: {type(exc).__name__}: {exc}. Check the network and ELKS_API_URL."
        ) from None
    if not 200 <= response.status_code < 300:
        log.warning("46elks refused a call to %s: HTTP %s %s", to_number, response.status_code, response.text[:200])
        raise ElksApiError(_explain(response.status_code, response.text), response.status_code)
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        raise ElksApiError(f"46elks answered with something that is not JSON: {response.text[:200]!r}") from None
    call_id = str(body.get("id") or body.get("callid") or "") if isinstance(body, dict) else ""
    state = str(body.get("state") or "") if isinstance(body, dict) else ""
    if state == "failed":
        raise ElksApiError(f"46elks could not place the call (state 'failed'): {json.dumps(body)[:300]}")
    if not call_id:
        raise ElksApiError(f"46elks answered without a call id: {response.text[:200]!r}")
    return PlacedCall(call_id, state)


SMS_TIMEOUT_S = 3.0  # a caller waits for the transfer meanwhile


def send_sms(*, from_sender: str, to_number: str, message: str) -> str:
    """Send one SMS (46elks `POST /a1/sms`); returns its id, or raises ElksApiError with why not."""
    url = f"{settings.ELKS_API_URL}/sms"
    auth = (settings.ELKS_API_USERNAME, settings.ELKS_API_PASSWORD)
    data = {"from": from_sender, "to": to_number, "message": message}
    try:
        with httpx2.Client(timeout=SMS_TIMEOUT_S, follow_redirects=False) as http:
            response = http.post(url, data=data, auth=auth)
    except httpx2.HTTPError as exc:
        raise ElksApiError(f"Could not reach 46elks at {url}: {type(exc).__name__}.") from None
    if not 200 <= response.status_code < 300:
        raise ElksApiError(_explain(response.status_code, response.text), response.status_code)
    try:
        body = response.json()
    except ValueError:
        body = {}
    return str(body.get("id") or "") if isinstance(body, dict) else ""
