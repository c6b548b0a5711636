"""The `TextLink` ASGI extension: a WebSocket's text frames without an ASGI message per frame.

A server that offers it puts an object with this interface in the scope, under
`scope["extensions"][TEXT_LINK]` (ours: voiceagent.fastlane). An application that finds it may
take the socket's text frames as plain calls and send text frames the same way; one that does
not find it uses `receive()` and `send()` as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

TEXT_LINK = "voiceagent.text_link"


class LinkClosed(ConnectionError):
    """The socket is closing or closed: nothing more can be sent on it."""


class TextLink(Protocol):
    def receive_with(self, callback: Callable[[bytes], None]) -> None:
        """From now on, text frames go to `callback` as raw bytes (UTF-8 not checked), in order, not to `receive()`.

        Call it before accepting the socket, so that no frame comes before it. Binary frames and
        the disconnect still come through `receive()`.
        """

    def send(self, payload: bytes) -> None:
        """Send one text frame (UTF-8 bytes) now; LinkClosed once the socket is closing."""
