"""A minimal OpenAI Realtime **GA** client over one WebSocket.

Only `Authorization: Bearer` is sent: the beta header makes the server close the socket with
4000. Events are JSON text frames; the caller's audio is appended without being decoded.

websockets does the handshake, pings, closing and frame parsing. On the audio path the client
goes around its message queue and its send lock: each event is handed to `on_event` in the step
that parsed it, and events are written to the socket at once, from plain (not async) calls. A
call's events are then handled in order with no task switch per frame, in either direction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
from websockets.frames import Opcode
from websockets.protocol import Event, State

from .wsframes import client_text_frame

log = logging.getLogger(__name__)

# Errors that barge-in races produce; the session is fine after them.
BENIGN_ERROR_MESSAGES = (
    "Cancellation failed: no active response found",
    "Conversation already has an active response",
    "is already shorter than",
    "Only model output audio messages can be truncated",
)
BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active", "conversation_already_has_active_response"})
# Caller audio is dropped rather than queued once this much is waiting for OpenAI to read it
# (about 30 s of 24 kHz audio): a session that stopped reading must not grow our memory.
MAX_UNSENT_BYTES = 2 * 1024 * 1024
_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'


class RealtimeError(Exception):
    """OpenAI could not be reached or refused us; `reason` is a sentence for the call record."""

    def __init__(self, reason: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.status = status


_STATUS_REASONS = {
    401: "OpenAI refused the API key (HTTP 401): check OPENAI_API_KEY.",
    403: "OpenAI refused access (HTTP 403): the key's project may lack access to this model or region.",
    404: "OpenAI does not know this URL or model (HTTP 404): check OPENAI_REALTIME_URL and the model.",
    429: "OpenAI rate limit or quota exceeded (HTTP 429): check the billing and limits of the project.",
}


def is_benign_error(error: dict[str, Any]) -> bool:
    """True for the errors that interruptions cause by racing the server; they need no action."""
    if error.get("code") in BENIGN_ERROR_CODES:
        return True
    message = str(error.get("message") or "")
    return any(fragment in message for fragment in BENIGN_ERROR_MESSAGES)


def realtime_url(base: str, model: str) -> str:
    """`base?model=…`, keeping any query the configured URL already has."""
    parts = urlsplit(base)
    query = parts.query + ("&" if parts.query else "") + urlencode({"model": model})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class _EventConnection(ClientConnection):
    """websockets' client connection, handing each text message to `on_message` as soon as it is parsed.

    The stock connection queues messages for `recv()` and wakes a reader task for each; control
    frames and the handshake still go through it.
    """

    def __init__(self, *args: Any, on_message: Callable[[bytes], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_message = on_message
        self._fragments: list[bytes] | None = None  # a fragmented text message so far

    def process_event(self, event: Event) -> None:
        if self.response is None:  # the handshake's response
            super().process_event(event)
            return
        opcode = event.opcode
        if opcode is Opcode.TEXT:
            if event.fin:
                self.on_message(event.data)
            else:
                self._fragments = [event.data]
        elif opcode is Opcode.CONT:
            if self._fragments is not None:  # else the rest of a binary message, ignored with it
                self._fragments.append(event.data)
                if event.fin:
                    data, self._fragments = b"".join(self._fragments), None
                    self.on_message(data)
        elif opcode is Opcode.BINARY:
            log.warning("openai sent a binary frame (%d bytes); ignored", len(event.data))
        else:
            super().process_event(event)


class RealtimeClient:
    """One Realtime session. Create with `await RealtimeClient.connect(...)`."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._on_event = on_event
        self._ws: _EventConnection | None = None
        self._transport: asyncio.WriteTransport | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.received_at = 0.0  # monotonic time the latest event came off the socket (bridge latency)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        api_key: str,
        model: str,
        on_event: Callable[[dict[str, Any]], None],
        timeout: float = 10.0,
    ) -> RealtimeClient:
        """Open the socket; RealtimeError with a readable reason when that fails.

        `on_event` gets every server event (a dict with a string `type`) from the moment the socket
        opens, on the event loop; it must not raise.
        """
        if not api_key:
            raise RealtimeError("OPENAI_API_KEY is not set.", code="no_api_key")
        client = cls(on_event)
        full_url = realtime_url(url, model)
        try:
            ws = await connect(
                full_url,
                additional_headers={"Authorization": f"Bearer {api_key}"},
                open_timeout=timeout,
                max_size=16 * 1024 * 1024,
                compression=None,
                ping_interval=20,
                ping_timeout=20,
                create_connection=partial(_EventConnection, on_message=client._on_message),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            reason = _STATUS_REASONS.get(status, f"OpenAI refused the connection (HTTP {status}).")
            body = (exc.response.body or b"")[:300].decode("utf-8", "replace")
            if body and status not in _STATUS_REASONS:
                reason += f" {body}"
            raise RealtimeError(redact(reason, api_key), code=f"http_{status}", status=status) from None
        except TimeoutError:
            raise RealtimeError(f"OpenAI did not answer within {timeout:g} s.", code="connect_timeout") from None
        except InvalidURI:
            raise RealtimeError(f"OPENAI_REALTIME_URL is not a WebSocket URL: {url!r}", code="bad_url") from None
        except (OSError, WebSocketException) as exc:
            raise RealtimeError(
                f"Could not connect to OpenAI ({type(exc).__name__}: {redact(str(exc), api_key)}).", code="unreachable"
            ) from None
        client._ws = ws
        client._transport = ws.transport
        return client

    def _on_message(self, raw: bytes) -> None:
        self.received_at = time.monotonic()
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("openai sent a frame that is not JSON (%d bytes); ignored", len(raw))
            return
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            self._on_event(event)
        else:
            log.warning("openai sent JSON without a type; ignored")

    def send(self, event: dict[str, Any]) -> None:
        """Send one client event now; on a closing socket it is dropped (`wait_closed()` ends and says why)."""
        if self._ws.protocol.state is State.OPEN:
            self._transport.write(client_text_frame(orjson.dumps(event)))

    def append_audio(self, b64: bytes) -> bool:
        """Forward caller audio (base64, checked by the 46elks parser); False if dropped as OpenAI stopped reading."""
        transport = self._transport
        if self._ws.protocol.state is not State.OPEN:
            return True  # closing: `wait_closed()` ends and says why
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            return False
        transport.write(client_text_frame(_APPEND_HEAD + b64 + b'"}'))
        return True

    async def wait_closed(self) -> None:
        """Return when the socket is closed, whoever closed it; `close_code` and `close_reason` then say how."""
        await self._ws.wait_closed()
        self.close_code = self._ws.close_code or 1006
        self.close_reason = self._ws.close_reason or ""

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._ws.close(), timeout=2)
        except (TimeoutError, OSError, WebSocketException):
            self._ws.transport.abort()
