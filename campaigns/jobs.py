"""The campaigns app's worker job (settings.WORKER_JOBS)."""

from __future__ import annotations

from .dialer import dial_round


def run_dialer() -> str:
    """One dialer round: settle ended calls, start the calls that are due."""
    return dial_round()
