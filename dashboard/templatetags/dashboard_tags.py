"""Small formatting filters for the dashboard templates."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def clock(ms: int | float | None) -> str:
    """Milliseconds into the call as m:ss (h:mm:ss past an hour)."""
    if ms is None:
        return ""
    seconds = int(ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@register.filter
def live(call) -> bool:
    """Whether the call is going on now."""
    return call.status == "active"
