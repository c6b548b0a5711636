"""Prompt history: every saved change to an assistant becomes a numbered revision that calls point at.

A revision is a snapshot of the assistant's own fields (not its phone numbers, and never its
secrets). Saves through admin record who made them; other saves (scripts, the shell, admin
actions) are recorded by a post_save receiver. Identical snapshots never make a second revision,
so the two paths cannot duplicate each other.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from assistants.models import Assistant, AssistantRevision

NOT_TRACKED = {"id", "created_at", "updated_at"}
SECRET_HINTS = ("secret", "password", "token", "api_key")
# An old version of the prompt should not switch an assistant on or off behind anyone's back.
NOT_RESTORED = {"is_active"}

_recorded_by_caller: ContextVar[bool] = ContextVar("revision_recorded_by_caller", default=False)


def tracked_fields(model: type[models.Model] = Assistant) -> list[models.Field]:
    """The assistant's own settings that a revision keeps."""
    return [
        f
        for f in model._meta.concrete_fields
        if f.name not in NOT_TRACKED and not any(hint in f.name for hint in SECRET_HINTS)
    ]


def _plain(value: Any) -> Any:
    """JSON-normal form, so a snapshot compares equal to what the JSONField gives back."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(assistant: models.Model) -> dict[str, Any]:
    """Every tracked setting of `assistant`, JSON-ready (foreign keys as their ids)."""
    return {f.name: _plain(getattr(assistant, f.attname)) for f in tracked_fields(type(assistant))}


def changed_fields(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Names of the settings that differ, in the model's order (new fields count as changed)."""
    if old is None:
        return []
    keys = list(new) + [k for k in old if k not in new]
    return [k for k in keys if old.get(k) != new.get(k)]


@contextmanager
def recorded_by_caller() -> Iterator[None]:
    """Within this block the post_save receiver stays quiet: the caller records the revision itself."""
    token = _recorded_by_caller.set(True)
    try:
        yield
    finally:
        _recorded_by_caller.reset(token)


def receiver_should_record() -> bool:
    return not _recorded_by_caller.get()


@transaction.atomic
def revision_record(*, assistant: Assistant, user: Any = None) -> AssistantRevision:
    """Keep the assistant's current settings as a new revision, unless the latest one already has them."""
    settings = snapshot(assistant)
    # Lock the assistant so two saves at once cannot take the same number (a no-op on SQLite,
    # which serialises writers anyway).
    Assistant.objects.select_for_update().filter(pk=assistant.pk).exists()
    latest = AssistantRevision.objects.filter(assistant_id=assistant.pk).order_by("-number").first()
    if latest is not None and latest.settings == settings:
        return latest
    return AssistantRevision.objects.create(
        assistant_id=assistant.pk,
        number=latest.number + 1 if latest else 1,
        settings=settings,
        changed_fields=changed_fields(latest.settings if latest else None, settings),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def revision_id_for_call(assistant: Assistant) -> int:
    """The pk of the revision a starting call runs with: the latest, or a new one if the assistant was
    changed without a save that recorded it (e.g. a bulk `update()`)."""
    latest = (
        AssistantRevision.objects.filter(assistant_id=assistant.pk)
        .order_by("-number")
        .values_list("pk", "settings")
        .first()
    )
    if latest is not None and latest[1] == snapshot(assistant):
        return latest[0]
    return revision_record(assistant=assistant).pk


class RestoreError(Exception):
    """The revision cannot be restored as it is; the message says why, for the person restoring."""


@transaction.atomic
def revision_restore(*, revision: AssistantRevision, user: Any) -> AssistantRevision:
    """Put the assistant's settings back as they were in `revision`; returns the new revision this makes."""
    assistant = Assistant.objects.select_for_update().get(pk=revision.assistant_id)
    fields_by_name = {f.name: f for f in tracked_fields()}
    for name, value in revision.settings.items():
        field = fields_by_name.get(name)
        if field is None or name in NOT_RESTORED:
            continue  # a setting that no longer exists, or one we deliberately keep
        try:
            setattr(assistant, field.attname, None if value is None else field.to_python(value))
        except ValidationError as exc:
            raise RestoreError(f"{field.verbose_name}: {'; '.join(exc.messages)}") from None
    try:
        assistant.full_clean()
    except ValidationError as exc:
        problems = "; ".join(
            f"{_label(name)}: {' '.join(msgs)}" if name != "__all__" else " ".join(msgs)
            for name, msgs in exc.message_dict.items()
        )
        raise RestoreError(f"Version {revision.number} cannot be restored as it is: {problems}") from None
    with recorded_by_caller():
        assistant.save()
    return revision_record(assistant=assistant, user=user)


def _label(name: str) -> str:
    try:
        return str(Assistant._meta.get_field(name).verbose_name)
    except Exception:
        return name


def field_label(name: str) -> str:
    """The admin's name for a setting (also for settings that no longer exist)."""
    return _label(name)


def display_value(name: str, value: Any) -> str:
    """A setting as people read it: choice labels instead of codes, yes/no for booleans."""
    try:
        field = Assistant._meta.get_field(name)
    except Exception:
        return "" if value is None else str(value)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=2) if value else ""
    return "" if value is None else str(value)


def text_diff_html(old: str, new: str, *, old_label: str, new_label: str) -> SafeString:
    """A side-by-side diff table of two texts (difflib escapes the text itself)."""
    if old == new:
        return format_html("<p>{}</p>", "No change.")
    table = difflib.HtmlDiff(wrapcolumn=70).make_table(
        old.splitlines(), new.splitlines(), escape(old_label), escape(new_label), context=True, numlines=3
    )
    return mark_safe(table)  # difflib escapes &, < and > in every line; the labels are escaped above
