"""Receivers: recordings are deleted with their calls."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from calls.models import Call

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Call, dispatch_uid="insights_call_recording_delete")
def call_deleted(sender, instance: Call, **kwargs) -> None:
    """A deleted call takes its recording with it, once the deletion is committed."""
    if not instance.recording:
        return
    name, storage = instance.recording.name, instance.recording.storage

    def delete_file() -> None:
        try:
            storage.delete(name)
        except Exception:
            log.exception("could not delete the recording %s of a deleted call", name)

    transaction.on_commit(delete_file)
