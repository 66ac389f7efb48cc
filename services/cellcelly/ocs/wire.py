"""The OCS's internal charging transport for the DGW: length-prefixed orjson frames over TCP.

The JSON API (Nchf-style) stays the OCS's public face; between the gateway and the OCS every
microsecond counts, and `make bench` measured HTTP parsing and validation to cost more than the
charging itself. A frame is a 4-byte big-endian length and an orjson array:
request `[id, [session, type, number, msisdn, [[rg, service, requested, used, dest]...], location]]`,
answer `[id, <answer as cellcelly.codec.answer_to_list>]` or `[id, null, "error"]`. Requests on one
connection may be answered out of order; the id matches them.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, cast

import orjson

from cellcelly.application.charging import ChargingService
from cellcelly.codec import answer_to_list
from cellcelly.domain.charging import ChargeRequest, RequestType, ServiceUsage
from cellcelly.domain.units import Service

log = logging.getLogger(__name__)
_LEN = struct.Struct("!I")
MAX_FRAME = 1024 * 1024


def request_to_list(req: ChargeRequest) -> list[Any]:
    return [
        req.session_id,
        int(req.request_type),
        req.request_number,
        req.msisdn,
        [[u.rating_group, u.service.value, u.requested, u.used, u.destination] for u in req.services],
        req.location,
    ]


def request_from_list(d: list[Any]) -> ChargeRequest:
    return ChargeRequest(
        str(d[0]),
        RequestType(d[1]),
        int(d[2]),
        str(d[3]),
        tuple(ServiceUsage(int(u[0]), Service(u[1]), u[2], int(u[3]), str(u[4])) for u in d[4]),
        str(d[5]),
    )


def frame(payload: Any) -> bytes:
    body = orjson.dumps(payload)
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames = []
        while len(buf) >= 4:
            (length,) = _LEN.unpack_from(buf, 0)
            if length > MAX_FRAME:
                raise ValueError(f"frame of {length} bytes")
            if len(buf) < 4 + length:
                break
            frames.append(bytes(buf[4 : 4 + length]))
            del buf[: 4 + length]
        return frames


class WireServerProtocol(asyncio.Protocol):
    def __init__(self, charging: ChargingService) -> None:
        self.charging = charging
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            frames = self.reader.feed(data)
        except ValueError as exc:
            log.warning("closing OCS wire connection", extra={"reason": str(exc)})
            self.transport.abort()
            return
        out = []
        for raw in frames:
            rid: Any = None
            try:
                rid, body = orjson.loads(raw)
                answer = self.charging.charge(request_from_list(body))
                out.append(frame([rid, answer_to_list(answer)]))
            except Exception as exc:  # noqa: BLE001 - answer the frame, keep the connection
                log.exception("OCS wire request failed")
                out.append(frame([rid, None, f"{type(exc).__name__}: {exc}"]))
        self.transport.write(b"".join(out))


async def serve_wire(charging: ChargingService, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: WireServerProtocol(charging), host, port)
