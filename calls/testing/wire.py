"""Just enough WebSocket (RFC 6455) for peers under load: handshakes, text frames, ping/pong, close.

Used by the fake OpenAI's lean connections (both ends of the benchmark's server) and by the
benchmark's 46elks load generator. They share one core and must cost far less than the servers
they measure; a general-purpose WebSocket library spends most of their time per frame. This
speaks the same protocol with a few byte operations per frame (masking is the C routine from
`websockets`). It is not a general implementation: no extensions, no fragmented sends.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from collections.abc import Callable

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the pure-Python fallback
    from websockets.utils import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
_mask_keys = random.Random()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def client_request(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """The upgrade request and the Sec-WebSocket-Accept value the answer must carry."""
    key = base64.b64encode(_mask_keys.randbytes(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept_key(key)


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """First line and headers (names lower-cased) of an HTTP head without its blank line."""
    first, *rest = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in rest:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers


def server_response(key: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def http_error(status: int, body: str) -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + data


def frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame; clients must mask, servers must not."""
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, bit | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, bit | 127, n)
    if not mask:
        return head + payload
    key = _mask_keys.randbytes(4)
    return head + key + apply_mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


class FrameReader:
    """Splits a byte stream into frames; answers pings and closes through `reply`."""

    def __init__(self, reply: Callable[[int, bytes], None]) -> None:
        self.buf = bytearray()
        self.reply = reply
        self.fragments: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""

    def feed(self, data: bytes) -> list[bytes]:
        """The complete text messages in `data` (and what came before it)."""
        buf = self.buf
        buf += data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            p = pos + 2
            if n == 126:
                if end - p < 2:
                    break
                n = int.from_bytes(buf[p : p + 2], "big")
                p += 2
            elif n == 127:
                if end - p < 8:
                    break
                n = int.from_bytes(buf[p : p + 8], "big")
                p += 8
            key = None
            if b1 & 0x80:
                if end - p < 4:
                    break
                key = bytes(buf[p : p + 4])
                p += 4
            if end - p < n:
                break
            payload = bytes(buf[p : p + n])
            if key is not None:
                payload = apply_mask(payload, key)
            pos = p + n
            opcode = b0 & 0x0F
            if opcode in (TEXT, CONT):
                if b0 & 0x80:
                    if self.fragments:
                        payload = b"".join([*self.fragments, payload])
                        self.fragments.clear()
                    out.append(payload)
                else:
                    self.fragments.append(payload)
            elif opcode == PING:
                self.reply(PONG, payload)
            elif opcode == CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode(errors="replace")
                self.reply(CLOSE, payload[:2])
        del buf[:pos]
        return out
