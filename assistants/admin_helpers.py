"""Small pieces the project's admin pages share, and how extension apps extend the core's pages.

The core's admin classes (assistants.admin, calls.admin) are built from the mixins a setting
names (`ASSISTANT_ADMIN_EXTENSIONS`, `CALL_ADMIN_EXTENSIONS`): each mixin overrides ModelAdmin's
`get_*` methods and adds to what `super()` returns, so the core imports no extension.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import URLField
from django.utils.module_loading import import_string


class ReadOnlyMixin:
    """Records of what happened: shown, never added or edited in admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def insert_fieldsets(fieldsets, new, *, before: str) -> tuple:
    """`fieldsets` with `new` sections placed before the section titled `before` (at the end if absent)."""
    fieldsets = list(fieldsets)
    at = next((i for i, (title, _) in enumerate(fieldsets) if title == before), len(fieldsets))
    return tuple(fieldsets[:at] + list(new) + fieldsets[at:])


def https_formfield(field, **kwargs):
    """A ModelForm's `formfield_callback`: URL fields assume https:// when people type a bare host name."""
    if isinstance(field, URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


def admin_extensions(setting: str) -> tuple[type, ...]:
    """The admin mixins a setting names, first named first in the method order."""
    return tuple(import_string(path) for path in getattr(settings, setting, []))


def extended_admin(base: type, setting: str) -> type:
    """`base` with the mixins `setting` names in front of it."""
    return type(base.__name__.removesuffix("Base"), (*admin_extensions(setting), base), {"__module__": base.__module__})
