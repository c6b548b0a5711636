"""Receivers: a revision for every save of an assistant made outside admin."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from . import revisions
from .models import Assistant


@receiver(post_save, sender=Assistant, dispatch_uid="assistants_revision_on_save")
def assistant_saved(sender, instance: Assistant, raw: bool = False, **kwargs) -> None:
    """Called after every assistant save; admin records its own revisions (with the editor's name)."""
    if raw or not revisions.receiver_should_record():
        return
    revisions.revision_record(assistant=instance)
