"""Reads about assistants and numbers."""

from __future__ import annotations

from .models import Assistant
from .phone import normalize_e164


def assistant_for_number(number: str) -> Assistant | None:
    """The active assistant answering `number` (any common spelling of it), or None."""
    try:
        e164 = normalize_e164(number)
    except ValueError:
        return None
    # One row at most (numbers are unique); the assistant's columns only, as a call's setup waits for it.
    return Assistant.objects.filter(numbers__number=e164, numbers__is_active=True, is_active=True).first()
