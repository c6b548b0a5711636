"""G.711 codecs and linear-sample helpers.

The bridge itself never transcodes; these serve the tools around it (the call simulator, the fake
OpenAI server's voice detector, recordings), which need linear samples.
"""

from __future__ import annotations

import array
import sys

from assistants.audio_formats import ALAW, ULAW, AudioFormat


def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    sample = ((mantissa << 3) + 0x84) << exponent
    sample -= 0x84
    return -sample if sign else sample


def _alaw_to_linear(byte: int) -> int:
    byte ^= 0x55
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    if exponent == 0:
        sample = (mantissa << 4) + 8
    else:
        sample = ((mantissa << 4) + 0x108) << (exponent - 1)
    return sample if sign else -sample


def _linear_to_ulaw(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not (sample & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _linear_to_alaw(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0
    sample = min(abs(sample), 32767) >> 3
    if sample < 32:
        code = sample >> 1
    else:
        exponent = sample.bit_length() - 5
        code = (exponent << 4) | ((sample >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


_ULAW_DECODE = array.array("h", (_ulaw_to_linear(b) for b in range(256)))
_ALAW_DECODE = array.array("h", (_alaw_to_linear(b) for b in range(256)))
# Encoding tables indexed by the top 14 bits of a sample are small and make encoding a lookup.
_ULAW_ENCODE = bytes(_linear_to_ulaw((i << 2) - 32768) for i in range(1 << 14))
_ALAW_ENCODE = bytes(_linear_to_alaw((i << 2) - 32768) for i in range(1 << 14))


def _pcm16(data: bytes) -> array.array:
    samples = array.array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _to_bytes(samples: array.array) -> bytes:
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def decode(data: bytes, fmt: AudioFormat) -> array.array:
    """Linear 16-bit samples (at the format's own rate) from wire bytes."""
    if fmt is ULAW:
        return array.array("h", (_ULAW_DECODE[b] for b in data))
    if fmt is ALAW:
        return array.array("h", (_ALAW_DECODE[b] for b in data))
    return _pcm16(data)


def encode(samples: array.array, fmt: AudioFormat) -> bytes:
    """Wire bytes from linear 16-bit samples already at the format's rate."""
    if fmt is ULAW:
        return bytes(_ULAW_ENCODE[(s + 32768) >> 2] for s in samples)
    if fmt is ALAW:
        return bytes(_ALAW_ENCODE[(s + 32768) >> 2] for s in samples)
    return _to_bytes(samples)


def resample(samples: array.array, src_rate: int, dst_rate: int) -> array.array:
    """Linear-interpolation resampling: good enough for test audio and recordings."""
    if src_rate == dst_rate or not samples:
        return array.array("h", samples)
    n_out = max(1, len(samples) * dst_rate // src_rate)
    step = src_rate / dst_rate
    last = len(samples) - 1
    out = array.array("h", bytes(2 * n_out))
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = samples[min(j, last)]
        b = samples[min(j + 1, last)]
        out[i] = int(a + (b - a) * frac)
    return out


def silence(fmt: AudioFormat, ms: float) -> bytes:
    """Wire bytes of `ms` milliseconds of silence."""
    n = int(ms * fmt.sample_rate / 1000)
    return encode(array.array("h", bytes(2 * n)), fmt)


def rms(samples: array.array) -> float:
    """Root mean square level of linear samples (0 for empty input)."""
    if not samples:
        return 0.0
    return (sum(s * s for s in samples) / len(samples)) ** 0.5
