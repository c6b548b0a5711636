"""Rate-limit admin logins per client address and per user name, in the shared cache."""

from __future__ import annotations

import functools
import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from calls.access import request_client_ip

log = logging.getLogger(__name__)

TOO_MANY = (
    "<h1>Too many failed sign-ins</h1><p>For your security, sign-in is paused for this address or user "
    "name. Try again in {minutes} minutes, or ask an administrator to reset your password.</p>"
)


def _keys(request) -> list[str]:
    username = (request.POST.get("username") or "").strip().lower()
    keys = [f"login-fail:ip:{request_client_ip(request)}"]
    if username:
        keys.append("login-fail:user:" + hashlib.sha256(username.encode()).hexdigest()[:32])
    return keys


def rate_limited(login_view):
    """Wrap a login view: refuse with 429 after LOGIN_MAX_ATTEMPTS failures within the window."""

    @functools.wraps(login_view)
    def view(request, *args, **kwargs):
        if request.method != "POST":
            return login_view(request, *args, **kwargs)
        keys = _keys(request)
        window = settings.LOGIN_WINDOW_SECONDS
        if any((cache.get(key) or 0) >= settings.LOGIN_MAX_ATTEMPTS for key in keys):
            log.warning("login refused: too many failures for %s", request_client_ip(request))
            return HttpResponse(TOO_MANY.format(minutes=max(1, window // 60)), status=429)
        response = login_view(request, *args, **kwargs)
        if response.status_code != 302:  # the form came back: the password was wrong
            for key in keys:
                if not cache.add(key, 1, window):
                    try:
                        cache.incr(key)
                    except ValueError:
                        cache.set(key, 1, window)
        return response

    return view
