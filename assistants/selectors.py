"""Reads about assistants and numbers."""

from __future__ import annotations

from .models import Assistant, PhoneNumber
from .phone import normalize_e164


def assistant_for_number(number: str) -> Assistant | None:
    """The active assistant answering `number` (any common spelling of it), or None."""
    try:
        e164 = normalize_e164(number)
    except ValueError:
        return None
    row = (
        PhoneNumber.objects.select_related("assistant")
        .filter(number=e164, is_active=True, assistant__is_active=True)
        .first()
    )
    return row.assistant if row else None
