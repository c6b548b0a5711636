"""The insights app's background jobs (settings.WORKER_JOBS)."""

from __future__ import annotations

from . import services


def delete_expired_recordings() -> str:
    """Delete the recordings older than their assistant's retention period."""
    expired = services.recordings_expired()
    missing = sum(1 for call in expired if not services.recording_delete(call=call))
    if not expired:
        return ""
    note = f" ({missing} file(s) were already gone from storage)" if missing else ""
    return f"deleted {len(expired)} expired recording(s){note}"
