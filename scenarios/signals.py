"""Receivers: run an assistant's scenarios when a new revision changes its prompt (if it asks for that)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from assistants.models import AssistantRevision

PROMPT_FIELDS = {"instructions", "welcome_message"}


@receiver(post_save, sender=AssistantRevision, dispatch_uid="scenarios_run_on_prompt_change")
def revision_saved(sender, instance: AssistantRevision, created: bool, raw: bool = False, **kwargs) -> None:
    if raw or not created or not PROMPT_FIELDS & set(instance.changed_fields or []):
        return
    from scenarios.models import ScenarioSettings
    from scenarios.services import run_create, run_start

    if not ScenarioSettings.objects.filter(assistant_id=instance.assistant_id, run_on_prompt_change=True).exists():
        return
    assistant = instance.assistant
    if not assistant.scenarios.exists():
        return
    run = run_create(assistant=assistant)
    transaction.on_commit(lambda: run_start(run=run))
