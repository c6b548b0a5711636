"""The tools app's background jobs (settings.WORKER_JOBS)."""

from __future__ import annotations

import logging

from . import post_call
from .selectors import due_deliveries

log = logging.getLogger(__name__)


def deliver_due_webhooks() -> str:
    """Send the after-call webhooks that are due (first attempts a web process could not make, and retries)."""
    sent = failed = 0
    for pk in due_deliveries():
        try:
            result = post_call.attempt(pk)
        except Exception as exc:  # e.g. the database went away: the next round tries again
            log.warning("delivery %s could not be attempted: %s: %s", pk, type(exc).__name__, exc)
            continue
        if result is None:
            continue
        if result.error:
            failed += 1
            log.info("delivery %s: attempt %s failed: %s", pk, result.attempts, result.error)
        else:
            sent += 1
    return f"delivered {sent}, failed {failed}" if sent or failed else ""
