"""The few WebSocket frames a call's audio travels in, parsed and built without a general frame machine.

Per RFC 6455: a client masks every frame with a fresh 4-byte key and a server never masks. Audio
crosses both sockets of a call as small, complete, unfragmented text frames, 50 or more a second
each way, so these helpers handle exactly that shape and leave every other frame (control frames,
fragments, frames split across reads, 64-bit lengths, reserved bits) to the full protocol
implementation underneath. Unmasking uses websockets' C speedup.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from websockets.speedups import apply_mask

_TEXT_FIN = 0x81  # FIN, no reserved bits, opcode 1 (text)
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def take_text_frames(data: bytes, deliver: Callable[[bytes], bool], *, max_payload: int = 0) -> int:
    """Unmask and deliver the complete masked text frames at the start of `data`; returns the bytes used.

    Stops at the first frame it does not handle or that is not complete yet, and after a frame
    for which `deliver` returns False: the caller hands the rest to the full protocol, which then
    sees a stream that starts at a frame boundary.
    """
    view = memoryview(data)
    end = len(data)
    pos = 0
    while end - pos >= 6:
        if data[pos] != _TEXT_FIN:
            break
        length = data[pos + 1]
        if length < 0x80:  # a client frame must be masked: the full protocol fails the connection
            break
        length &= 0x7F
        if length < 126:
            key = pos + 2
        elif length == 126:
            if end - pos < 8:
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 126:  # not the minimal encoding: a protocol error the full protocol reports
                break
            key = pos + 4
        else:
            break
        stop = key + 4 + length
        if stop > end or (max_payload and length > max_payload):
            break
        payload = apply_mask(view[key + 4 : stop], data[key : key + 4])
        pos = stop
        if not deliver(payload):
            break
    return pos


def _text_head(n: int, mask_bit: int) -> bytes:
    """The header of a final text frame of `n` payload bytes (RFC 6455: the shortest length encoding)."""
    if n < 126:
        return bytes((_TEXT_FIN, mask_bit | n))
    if n < 65536:
        return _HEAD16.pack(_TEXT_FIN, mask_bit | 126, n)
    return _HEAD64.pack(_TEXT_FIN, mask_bit | 127, n)


def server_text_frame(payload: bytes) -> bytes:
    """An unmasked text frame (server to client)."""
    return _text_head(len(payload), 0) + payload


class MaskKeys:
    """Unpredictable 4-byte masking keys, read from the OS in blocks rather than one system call per frame."""

    def __init__(self, block: int = 4096) -> None:
        self._block = block
        self._keys = b""
        self._pos = 0

    def take(self) -> bytes:
        pos = self._pos
        if pos + 4 > len(self._keys):
            self._keys = os.urandom(self._block)
            pos = 0
        self._pos = pos + 4
        return self._keys[pos : pos + 4]


_keys = MaskKeys()


def client_text_frame(payload: bytes) -> bytes:
    """A masked text frame (client to server)."""
    key = _keys.take()
    return _text_head(len(payload), 0x80) + key + apply_mask(payload, key)
