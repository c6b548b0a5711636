"""Who may reach the call socket and 46elks' webhooks: the client's real address, the allowlist, the secret."""

from __future__ import annotations

import hmac
import ipaddress

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


def client_ip(scope) -> str:
    """The real address of an ASGI connection's client."""
    peer = (scope.get("client") or ("unknown",))[0]
    forwarded = ",".join(v.decode("latin-1") for k, v in scope.get("headers") or () if k.lower() == b"x-forwarded-for")
    return real_client_ip(peer, forwarded)


def ip_allowed(ip: str, allowed: list[str]) -> bool:
    """True if `ip` is in one of the `allowed` addresses or networks (all are, when none are listed)."""
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def secret_matches(given: str, expected: str) -> bool:
    """Compare a secret from a URL in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
