"""After-call webhooks: sign the call's document, send it, retry with backoff until it lands.

An attempt is a plain sync function (claim → POST → record), run in a worker thread by the
server process right after a call, by `manage.py deliver_webhooks` for whatever a restart left
due, and by the admin's "deliver again" action. A lease on the row keeps two of them from
sending the same delivery at once.

Signature: `X-Voiceagent-Signature: sha256=<hex>` is HMAC-SHA256 with the assistant's secret over
`<X-Voiceagent-Timestamp>.<raw body>` (the timestamp binds the body to its time, against replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

import httpx2

from calls.db import run_db

from . import services
from .webhook_client import USER_AGENT

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
_tasks: set[asyncio.Task] = set()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str, *, tolerance_s: float = 300) -> bool:
    """What a receiver does (kept here so the docs' example and the tests agree with the sender)."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass(frozen=True)
class Attempt:
    status: str  # the delivery's status after this attempt
    attempts: int
    retry_in_s: float | None
    http_status: int | None
    error: str


def attempt(pk: int) -> Attempt | None:
    """Send one due delivery once (sync; in a worker thread from async code). None: not due or taken."""
    claimed = services.webhook_delivery_claim(pk=pk)
    if claimed is None:
        return None
    body = json.dumps(claimed.document, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Voiceagent-Event": claimed.document.get("event", "call.ended"),
        "X-Voiceagent-Delivery": claimed.delivery_id,
        "X-Voiceagent-Timestamp": timestamp,
    }
    if claimed.secret:
        headers["X-Voiceagent-Signature"] = signature(claimed.secret, timestamp, body)
    status_code, error = None, ""
    try:
        with httpx2.Client(timeout=TIMEOUT_S, follow_redirects=False) as http:
            response = http.post(claimed.url, content=body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:300]}"
    except httpx2.TimeoutException:
        error = f"No answer within {TIMEOUT_S:g} s."
    except httpx2.HTTPError as exc:
        error = f"Could not reach {claimed.url}: {type(exc).__name__}: {exc}"[:500]
    state = services.webhook_delivery_result(pk=pk, ok=not error, status_code=status_code, error=error)
    if error:
        then = f"retry in {state.retry_in_s:g} s" if state.retry_in_s is not None else "giving up"
        log.warning("after-call webhook %s attempt %d failed (%s); %s", pk, state.attempts, error[:200], then)
    else:
        log.info("after-call webhook %s delivered (attempt %d, HTTP %s)", pk, state.attempts, status_code)
    return Attempt(state.status, state.attempts, state.retry_in_s, status_code, error)


async def deliver(pk: int) -> None:
    """Keep trying one delivery from this process until it lands or is given up (or is taken over)."""
    while True:
        try:
            result = await run_db(attempt)(pk)
        except Exception:
            log.exception("after-call webhook %s: attempt crashed; deliver_webhooks will retry it", pk)
            return
        if result is None or result.retry_in_s is None:
            return
        await asyncio.sleep(result.retry_in_s)


def schedule(pk: int) -> asyncio.Task:
    """Deliver in the background of this process; the call that produced it is already over."""
    task = asyncio.ensure_future(deliver(pk))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
