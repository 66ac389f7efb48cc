"""The OCS's internal charging transport for the DGW: length-prefixed orjson frames over TCP.

The JSON API (Nchf-style) stays the OCS's public face; between the gateway and the OCS every
microsecond counts, and `make bench` measured HTTP parsing and validation to cost more than the
charging itself. A frame is a 4-byte big-endian length and an orjson array:
request `[id, [session, type, number, msisdn, [[rg, service, requested, used, dest]...], location]]`,
answer `[id, <answer as cellcelly.codec.answer_to_list>]` or `[id, null, "error"]`. Requests on one
connection may be answered out of order; the id matches them.

A connection charges nothing until it has shown the shared key (`ocs/auth.py`): its first frame is
`{"auth": <CELLCELLY_OCS_API_KEY>}`, answered `{"ok": true}`; a wrong or missing key (or none within
`AUTH_TIMEOUT` seconds) is answered `{"error": "unauthorized", ...}` and the connection closed, and the
log names the peer, never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import struct
from typing import Any, Protocol, cast

import orjson

from cellcelly.codec import answer_to_list
from cellcelly.domain.charging import REQUEST_TYPES, ChargeAnswer, ChargeRequest, ServiceUsage
from cellcelly.domain.units import service_of
from cellcelly.ocs.auth import ApiKey
from cellcelly.turn_writer import TurnWriter

log = logging.getLogger(__name__)
_LEN = struct.Struct("!I")
MAX_FRAME = 1024 * 1024
AUTH_TIMEOUT = 5.0  # seconds a new connection has to show the key
AUTH_MAX_FRAME = 4096  # what a connection may send before it has shown the key
REFUSED = "unauthorized"


class Charging(Protocol):
    """What the wire server charges through: `ChargingService`, or a stand-in that wraps it (an
    interface, not the class: compiled by mypyc, a parameter typed with a class accepts only it)."""

    @property
    def inline(self) -> bool: ...

    def charge(self, req: ChargeRequest) -> ChargeAnswer: ...

    async def charge_async(self, req: ChargeRequest) -> ChargeAnswer: ...


def auth_frame(key: str) -> bytes:
    return frame({"auth": key})


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
    """Raises ValueError (or TypeError, IndexError) for a request it cannot read."""
    kind = REQUEST_TYPES.get(d[1])
    if kind is None:
        raise ValueError(f"{d[1]!r} is not a request type")
    services = tuple(_usage_from_list(u) for u in d[4])
    return ChargeRequest(str(d[0]), kind, int(d[2]), str(d[3]), services, str(d[5]))


def _usage_from_list(u: list[Any]) -> ServiceUsage:
    return ServiceUsage(int(u[0]), service_of(u[1]), u[2], int(u[3]), str(u[4]))


def frame(payload: Any) -> bytes:
    body = orjson.dumps(payload)
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frames."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames = []
        while len(buf) >= 4:
            (length,) = _LEN.unpack_from(buf, 0)
            if length > self.max_frame:
                raise ValueError(f"frame of {length} bytes")
            if len(buf) < 4 + length:
                break
            frames.append(bytes(buf[4 : 4 + length]))
            del buf[: 4 + length]
        return frames


class WireServerProtocol(asyncio.Protocol):
    def __init__(self, charging: Charging, api_key: ApiKey) -> None:
        self.charging = charging
        self.api_key = api_key
        self.reader = FrameReader(AUTH_MAX_FRAME)  # a stranger cannot make us buffer a megabyte
        self.transport: asyncio.Transport | None = None
        self.authenticated = False
        self._auth_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # requests in flight (a task needs a reference)
        self.loop = asyncio.get_running_loop()  # asked once: a getpid system call on Python 3.11
        self._writer = TurnWriter(self.loop)  # the answers of one loop turn leave in one send

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = self._writer.transport = cast(asyncio.Transport, transport)
        self._auth_timer = self.loop.call_later(AUTH_TIMEOUT, self._refuse, "no key within the time allowed")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()

    def _peer(self) -> str:
        assert self.transport is not None
        peer = self.transport.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def _refuse(self, reason: str) -> None:
        """Say why, then close (after the answer is flushed); the key itself is never logged."""
        assert self.transport is not None
        if self.transport.is_closing():
            return
        log.warning("OCS wire connection refused", extra={"peer": self._peer(), "reason": reason})
        self.transport.write(frame({"error": REFUSED, "detail": f"{reason}: send CELLCELLY_OCS_API_KEY"}))
        self.transport.close()

    def _authenticate(self, raw: bytes) -> bool:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        key = message.get("auth") if isinstance(message, dict) else None
        if not isinstance(key, str) or not self.api_key.matches(key):
            self._refuse("wrong or missing key" if self.api_key.configured else "this OCS has no key set")
            return False
        self.authenticated = True
        self.reader.max_frame = MAX_FRAME
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        assert self.transport is not None
        self.transport.write(frame({"ok": True}))
        return True

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return  # refused: what a peer sends after is not read
        try:
            frames = self.reader.feed(data)
        except ValueError as exc:
            log.warning("closing OCS wire connection", extra={"reason": str(exc)})
            self.transport.abort()
            return
        if frames and not self.authenticated:
            if not self._authenticate(frames[0]):
                return
            frames = frames[1:]
        if not self.charging.inline:
            # the store waits on a server: each request its own task, answered when it is done
            # (out of order; the id matches), so the loop serves others meanwhile
            for raw in frames:
                task = self.loop.create_task(self._answer(raw))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        out = []
        for raw in frames:  # an in-memory store: charged right here, one write for the lot
            rid: Any = None
            try:
                rid, body = orjson.loads(raw)
                answer = self.charging.charge(request_from_list(body))
                out.append(frame([rid, answer_to_list(answer)]))
            except Exception as exc:  # noqa: BLE001 - answer the frame, keep the connection
                out.append(_failed(rid, exc))
        self.transport.write(b"".join(out))

    async def _answer(self, raw: bytes) -> None:
        rid: Any = None
        try:
            rid, body = orjson.loads(raw)
            answer = await self.charging.charge_async(request_from_list(body))
            reply = frame([rid, answer_to_list(answer)])
        except Exception as exc:  # noqa: BLE001 - answer the frame, keep the connection
            reply = _failed(rid, exc)
        self._writer.write(reply)


def _failed(rid: Any, exc: Exception) -> bytes:
    log.exception("OCS wire request failed")
    return frame([rid, None, f"{type(exc).__name__}: {exc}"])


async def serve_wire(charging: Charging, host: str, port: int, *, api_key: str | None) -> asyncio.Server:
    """The wire listener; with no `api_key` it refuses every connection (fail closed)."""
    key = ApiKey(api_key)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: WireServerProtocol(charging, key), host, port)


async def serve_wire_unix(charging: Charging, path: str, *, api_key: str | None) -> asyncio.Server:
    """The wire on a Unix socket at `path` (mode 0600; a socket left there by a process before is
    replaced): the same protocol and key, for a gateway on this machine."""
    key = ApiKey(api_key)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    server = await asyncio.get_running_loop().create_unix_server(
        lambda: WireServerProtocol(charging, key), path
    )
    # only this user; until this chmod the key alone keeps others out, as it does on TCP
    # (the process's umask is not changed for it: other threads create files meanwhile)
    os.chmod(path, 0o600)
    return server
