"""G.711 µ-law to 16-bit linear PCM, by table (the stdlib audioop module is deprecated)."""

from __future__ import annotations

import io
import sys
import wave
from array import array

SAMPLE_RATE = 8000
ULAW_SILENCE = 0xFF  # µ-law code of (nearly) zero


def _decode(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


ULAW_TO_LINEAR = tuple(_decode(code) for code in range(256))


def ulaw_to_pcm16(payload: bytes) -> bytes:
    """Little-endian 16-bit samples, as WAV files hold them."""
    samples = array("h", (ULAW_TO_LINEAR[b] for b in payload))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def pcm16_wav(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """A complete mono 16-bit PCM WAV file (PCM because every player and the wave module read it)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()
