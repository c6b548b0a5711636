"""The dashboard's WebSocket routes. Both are browser-facing: staff session cookie, same-origin only.

The 46elks route in voiceagent/routing.py must stay without these wrappers (46elks sends no
Origin and no cookie).
"""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from .consumers import BrowserCallConsumer, DashboardConsumer
from .routing_paths import BROWSER_CALL_SOCKET, DASHBOARD_SOCKET


def browser_socket(app):
    """Only pages of this site (Origin in ALLOWED_HOSTS), with the logged-in user in the scope."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(app))


websocket_urlpatterns = [
    path(DASHBOARD_SOCKET, browser_socket(DashboardConsumer.as_asgi())),
    path(BROWSER_CALL_SOCKET, browser_socket(BrowserCallConsumer.as_asgi())),
]
