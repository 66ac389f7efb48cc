"""RTP (RFC 3550) for one outgoing G.711 stream: 12-byte headers, 160-byte frames every 20 ms.

Frames are paced against the loop's clock from the stream's start (not by sleeping 20 ms after
each send), so scheduling jitter never accumulates into a slower or shorter stream.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from cellcelly.ivr.g711 import ULAW_SILENCE

log = logging.getLogger(__name__)

FRAME_SAMPLES = 160  # 20 ms at 8 kHz, one byte per sample in G.711
FRAME_SECONDS = 0.020
HEADER = struct.Struct("!BBHII")
VERSION_BITS = 2 << 6


@dataclass
class RtpSender:
    """Header state of one stream; the first sequence number and timestamp are random (RFC 3550 5.1)."""

    payload_type: int = 0
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    sequence: int = field(default_factory=lambda: secrets.randbits(16))
    timestamp: int = field(default_factory=lambda: secrets.randbits(32))
    sent: int = 0

    def packet(self, payload: bytes, marker: bool = False) -> bytes:
        header = HEADER.pack(
            VERSION_BITS,
            (0x80 if marker else 0) | self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        self.sent += 1
        return header + payload

    def packets(self, audio: bytes) -> Iterator[bytes]:
        """The whole payload as packets; the last frame is padded with µ-law silence; marker on the
        first (the start of a talkspurt)."""
        for i, start in enumerate(range(0, len(audio), FRAME_SAMPLES)):
            frame = audio[start : start + FRAME_SAMPLES].ljust(FRAME_SAMPLES, bytes([ULAW_SILENCE]))
            yield self.packet(frame, marker=i == 0)


class _MediaSocket(asyncio.DatagramProtocol):
    """Our RTP port; what the caller sends us (their microphone) is counted and dropped."""

    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.received += 1

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("rtp socket error: %s", exc)


class MediaPort:
    """A bound UDP port for one call's audio."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _MediaSocket) -> None:
        self.transport, self.protocol = transport, protocol

    @classmethod
    async def open(cls, host: str) -> MediaPort:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_MediaSocket, local_addr=(host, 0))
        return cls(transport, protocol)

    @property
    def port(self) -> int:
        return int(self.transport.get_extra_info("sockname")[1])

    async def play(self, audio: bytes, to: tuple[str, int], sender: RtpSender) -> int:
        """Send the audio in real time; returns the number of packets sent. Cancel to stop early."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, packet in enumerate(sender.packets(audio)):
            delay = start + i * FRAME_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.transport.is_closing():
                break
            self.transport.sendto(packet, to)
        return sender.sent

    def close(self) -> None:
        self.transport.close()
