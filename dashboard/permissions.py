"""Who may do what on the dashboard; shared by the pages and the WebSockets."""

from __future__ import annotations

from typing import Any


def _staff(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def can_watch(user: Any) -> bool:
    """Staff who may see calls may watch them live."""
    return _staff(user) and user.has_perm("calls.view_call")


def can_hang_up(user: Any) -> bool:
    """Ending someone's live call is for staff allowed to change calls (superusers, or granted)."""
    return can_watch(user) and user.has_perm("calls.change_call")


def can_test_call(user: Any) -> bool:
    """Test calls are for the people who edit assistants (they cost OpenAI usage like any call)."""
    return _staff(user) and user.has_perm("assistants.change_assistant")
