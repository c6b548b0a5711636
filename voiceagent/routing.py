"""WebSocket routes. The 46elks socket carries no Origin and no cookies; browser sockets do."""

from channels.routing import URLRouter
from django.urls import path

from calls.consumers import ElksCallConsumer

websocket_application = URLRouter(
    [
        path("ws/elks/<str:secret>/", ElksCallConsumer.as_asgi()),
    ]
)
