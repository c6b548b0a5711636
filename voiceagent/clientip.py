"""The client's real address, believing only the proxies we run behind."""

from __future__ import annotations

from django.conf import settings


def real_client_ip(peer: str, forwarded_for: str | None) -> str:
    """The TCP peer, or the address our own proxies saw.

    X-Forwarded-For is written by whoever sends the request; only the last TRUSTED_PROXY_COUNT
    entries were appended by proxies of ours, so the entry just before them is the client.
    """
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0 or not forwarded_for:
        return peer
    entries = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    return entries[-count] if len(entries) >= count else peer


def request_client_ip(request) -> str:
    return real_client_ip(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR"))
