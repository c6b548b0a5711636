"""A minimal OpenAI Realtime **GA** client over one WebSocket.

Only `Authorization: Bearer` is sent: the beta header makes the server close the socket with
4000. Events are JSON text frames; the caller's audio is appended without being decoded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

log = logging.getLogger(__name__)

# Errors that barge-in races produce; the session is fine after them.
BENIGN_ERROR_MESSAGES = (
    "Cancellation failed: no active response found",
    "Conversation already has an active response",
    "is already shorter than",
    "Only model output audio messages can be truncated",
)
BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active", "conversation_already_has_active_response"})


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


class RealtimeClient:
    """One Realtime session. Create with `await RealtimeClient.connect(...)`."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.received_at = 0.0  # monotonic time the latest event came off the socket (bridge latency)

    @classmethod
    async def connect(cls, url: str, *, api_key: str, model: str, timeout: float = 10.0) -> RealtimeClient:
        """Open the socket; RealtimeError with a readable reason when that fails."""
        if not api_key:
            raise RealtimeError("OPENAI_API_KEY is not set.", code="no_api_key")
        full_url = realtime_url(url, model)
        try:
            ws = await connect(
                full_url,
                additional_headers={"Authorization": f"Bearer {api_key}"},
                open_timeout=timeout,
                max_size=16 * 1024 * 1024,
                # The default 16-frame queue is plenty; deltas are consumed as fast as they come.
                compression=None,
                ping_interval=20,
                ping_timeout=20,
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
        return cls(ws)

    async def send(self, event: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(event).decode())

    async def send_text(self, text: str) -> None:
        """Send one event; on a closed socket this does nothing: `events()` ends and says why."""
        try:
            await self._ws.send(text)
        except ConnectionClosed:
            pass

    async def append_audio(self, b64: str) -> None:
        """Forward caller audio; the base64 was checked by the 46elks parser."""
        try:
            await self._ws.send('{"type":"input_audio_buffer.append","audio":"' + b64 + '"}')
        except ConnectionClosed:
            pass

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Server events until the socket closes; non-JSON frames are logged and skipped."""
        try:
            async for raw in self._ws:
                self.received_at = time.monotonic()
                try:
                    event = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    log.warning("openai sent a frame that is not JSON (%d bytes); ignored", len(raw))
                    continue
                if isinstance(event, dict) and isinstance(event.get("type"), str):
                    yield event
                else:
                    log.warning("openai sent JSON without a type; ignored")
        except ConnectionClosed:
            pass
        finally:
            self._record_close()

    def _record_close(self) -> None:
        self.close_code = self._ws.close_code or 1006
        self.close_reason = self._ws.close_reason or ""

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._ws.close(), timeout=2)
        except (TimeoutError, OSError, WebSocketException):
            self._ws.transport.abort()
