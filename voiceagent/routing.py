"""WebSocket routes. The 46elks socket carries no Origin and no cookies; browser sockets do."""

from channels.routing import URLRouter
from django.urls import path

from calls.consumers import ElksCallConsumer
from dashboard.routing import websocket_urlpatterns as dashboard_sockets

websocket_application = URLRouter(
    [
        path("ws/elks/<str:secret>/", ElksCallConsumer.as_asgi()),
        # Browser-facing (staff session, same Origin): they carry their own middleware.
        *dashboard_sockets,
    ]
)
