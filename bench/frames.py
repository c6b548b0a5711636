"""Audio frames that carry their own identity, so a frame can be matched where it comes out.

The first 18 bytes of every benchmark frame are a tag: a marker, flags, the stream it belongs to,
its sequence number and the monotonic time it was sent. 18 bytes are exactly 24 base64
characters, so the tag can be written and read on the base64 text without decoding the rest.
Bridges forward the base64 untouched, so the tag arrives as it was sent. CLOCK_MONOTONIC is one
clock for every process of the machine, which makes the times comparable across processes.
"""

from __future__ import annotations

import base64
import binascii
import struct

TAG = struct.Struct("<BBIId")  # marker, flags, stream id, sequence number, monotonic send time
TAG_BYTES = TAG.size
TAG_CHARS = TAG_BYTES // 3 * 4
MARKER = 0xB7
LOUD = 0x01  # the caller is speaking in this frame (the benchmark's stand-in for a voice detector)

assert TAG_BYTES == 18 and TAG_BYTES % 3 == 0


def tag_b64(flags: int, stream: int, seq: int, sent_at: float) -> str:
    """The 24 base64 characters that start a tagged frame."""
    return base64.b64encode(TAG.pack(MARKER, flags, stream, seq, sent_at)).decode("ascii")


def read_tag(b64: str | bytes) -> tuple[int, int, int, float] | None:
    """(flags, stream, seq, sent_at) of a tagged frame's base64, or None if it carries no tag."""
    head = b64[:TAG_CHARS]
    if len(head) < TAG_CHARS:
        return None
    try:
        marker, flags, stream, seq, sent_at = TAG.unpack(binascii.a2b_base64(head))
    except (ValueError, struct.error):
        return None
    if marker != MARKER:
        return None
    return flags, stream, seq, sent_at


def rest_b64(nbytes: int, fill: int) -> str:
    """Base64 of the untagged remainder of an `nbytes` frame, filled with one byte value."""
    if nbytes < TAG_BYTES:
        raise ValueError(f"a frame must hold at least {TAG_BYTES} bytes to carry its tag")
    return base64.b64encode(bytes([fill]) * (nbytes - TAG_BYTES)).decode("ascii")


def b64_nbytes(b64: str | bytes) -> int:
    """Bytes a base64 text encodes, from its length alone."""
    n = len(b64)
    if not n:
        return 0
    pad = (b64[-1] in ("=", 61)) + (b64[-2] in ("=", 61))
    return n // 4 * 3 - pad
