"""VoltDB's client wire protocol on asyncio: procedure calls that never block an event loop.

Why not `voltdbclient` on a pool of threads: measured at 32 concurrent charges on this 2-core
machine, its pure-Python serializer and the threads' fight for the GIL gave 2,990 charges/s at a
p99 of 36 ms, about what one caller gets. Here one connection carries many calls at once (VoltDB
answers them by client handle, in any order), the invocation is encoded with a few `struct` packs
and only the answer's parts the balance store reads are decoded.

The login stays `voltdbclient`'s (its handshake, run in a thread so the loop goes on meanwhile):
the logged-in socket is then handed to the loop. A connection that gives no answer within the
timeout, or breaks, fails every call it holds with `NoAnswer` and is never used again (its byte
stream may still carry a late answer); the caller decides what a lost answer means (a read may be
sent again, a commit's outcome is unknown).

Frame formats (VoltDB's `ClientResponseImpl` and `VoltTable` serialisations, big-endian):
call `len:i32, 0:i8, name:str, handle:i64, nparams:i16, (type:i8, value)...`; answer
`len:i32, version:i8, handle:i64, fields:i8, status:i8, [status string], app status:i8,
[app status string], round trip:i32, [exception], ntables:i16, tables...`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cellcelly.runtime import until_loop_ends

log = logging.getLogger(__name__)

# VoltType codes (voltdbclient.FastSerializer's VOLTTYPE_*)
TINYINT, SMALLINT, INTEGER, BIGINT, FLOAT, STRING, TIMESTAMP, VARBINARY = 3, 4, 5, 6, 8, 9, 11, 25
ARRAY = -99
_NULL_BIGINT = -(2**63)

_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")
_F64 = struct.Struct("!d")
_HEAD = struct.Struct("!bqbb")  # version, client handle, present fields, status
_FIXED = {TINYINT: _I8, SMALLINT: _I16, INTEGER: _I32, BIGINT: _I64, FLOAT: _F64, TIMESTAMP: _I64}
_NULLS = {TINYINT: -128, SMALLINT: -32768, INTEGER: -(2**31), BIGINT: _NULL_BIGINT, TIMESTAMP: _NULL_BIGINT}
MAX_MESSAGE = 50 * 1024 * 1024  # VoltDB's own limit on a message


class NoAnswer(Exception):
    """The call was sent and got no answer (connection broken or timed out)."""


class CannotConnect(Exception):
    """No server took a connection (refused, unreachable, login refused): nothing was sent."""


@dataclass(slots=True)
class Table:
    tuples: list[list[Any]]

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(self, tuples: list[list[Any]]) -> None:
        self.tuples = tuples


@dataclass(slots=True)
class Answer:
    """What a procedure call answers (the fields of voltdbclient's VoltResponse the store reads)."""

    version: int
    status: int
    statusString: str | None  # noqa: N815 - voltdbclient's names, so one Response protocol fits both
    appStatus: int  # noqa: N815
    appStatusString: str | None  # noqa: N815
    tables: list[Any] | None  # of Table

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        version: int,
        status: int,
        statusString: str | None,
        appStatus: int,
        appStatusString: str | None,
        tables: list[Any] | None,
    ) -> None:
        self.version = version
        self.status = status
        self.statusString = statusString
        self.appStatus = appStatus
        self.appStatusString = appStatusString
        self.tables = tables


def _string(value: str | bytes | None) -> bytes:
    """A STRING; given as bytes, they are its UTF-8 already (orjson's output: no decode and
    encode again on the charging path)."""
    if value is None:
        return b"\xff\xff\xff\xff"
    raw = value if isinstance(value, bytes) else value.encode()
    return _I32.pack(len(raw)) + raw


def _param(kind: int, value: Any) -> bytes:
    """One parameter; a list or tuple is sent as an array of `kind`."""
    if type(value) is list or isinstance(value, tuple):  # not `list | tuple`: slower, per parameter
        head = _ARRAY_OF[kind] + _I16.pack(len(value))
        if kind == STRING:
            return head + b"".join([_string(v) for v in value])
        pack = _FIXED[kind].pack
        return head + b"".join([pack(v) for v in value])
    if kind == STRING:
        return b"\x09" + _string(value)
    if kind == VARBINARY:
        return b"\x19" + _I32.pack(len(value)) + bytes(value)
    return _TYPE[kind] + _FIXED[kind].pack(value)


_TYPE = {k: _I8.pack(k) for k in (TINYINT, SMALLINT, INTEGER, BIGINT, FLOAT, STRING, TIMESTAMP, VARBINARY)}
_ARRAY_OF = {k: _I8.pack(ARRAY) + code for k, code in _TYPE.items()}
_NAMES: dict[str, bytes] = {}  # a procedure's name as a call frame starts with it


def encode_call(handle: int, procedure: str, types: Sequence[int], params: Sequence[Any]) -> bytes:
    if len(types) != len(params):
        raise ValueError(f"{procedure} takes {len(types)} parameters, got {len(params)}")
    name = _NAMES.get(procedure)
    if name is None:
        name = _NAMES[procedure] = b"\x00" + _string(procedure)
    parts = [name, _I64.pack(handle), _I16.pack(len(types))]
    parts += [_param(k, v) for k, v in zip(types, params, strict=True)]
    body = b"".join(parts)
    return _I32.pack(len(body)) + body


def _read_string(buf: bytes, at: int) -> tuple[str | None, int]:
    (n,) = _I32.unpack_from(buf, at)
    at += 4
    if n < 0:
        return None, at
    return buf[at : at + n].decode(), at + n


def _read_table(buf: bytes, at: int) -> tuple[Table, int]:
    (size,) = _I32.unpack_from(buf, at)
    end = at + 4 + size
    at += 4 + 4 + 1  # table size, header size, status
    (ncols,) = _I16.unpack_from(buf, at)
    at += 2
    types = list(buf[at : at + ncols])
    at += ncols
    for _ in range(ncols):  # column names: not needed
        (n,) = _I32.unpack_from(buf, at)
        at += 4 + n
    (nrows,) = _I32.unpack_from(buf, at)
    at += 4
    readers: list[Callable[[int], tuple[Any, int]]] = []
    for t in types:
        kind = t - 256 if t > 127 else t
        readers.append(_reader(kind, buf))
    rows = []
    for _ in range(nrows):
        at += 4  # row size
        row = []
        for read in readers:
            value, at = read(at)
            row.append(value)
        rows.append(row)
    return Table(rows), end


def _reader(kind: int, buf: bytes) -> Callable[[int], tuple[Any, int]]:
    if kind == STRING:
        return lambda at: _read_string(buf, at)
    if kind == VARBINARY:

        def varbinary(at: int) -> tuple[bytes | None, int]:
            (n,) = _I32.unpack_from(buf, at)
            return (None, at + 4) if n < 0 else (buf[at + 4 : at + 4 + n], at + 4 + n)

        return varbinary
    fixed = _FIXED.get(kind)
    if fixed is None:
        raise ValueError(f"VoltDB column type {kind} is not read by this client")
    null = _NULLS.get(kind)

    def number(at: int) -> tuple[Any, int]:
        (value,) = fixed.unpack_from(buf, at)
        return (None if value == null else value), at + fixed.size

    return number


def decode_answer(body: bytes) -> tuple[int, Answer]:
    """(client handle, answer) from one message without its length prefix."""
    version, handle, fields, status = _HEAD.unpack_from(body, 0)
    at = _HEAD.size
    status_string = app_status_string = None
    if fields & 0x20:
        status_string, at = _read_string(body, at)
    (app_status,) = _I8.unpack_from(body, at)
    at += 1
    if fields & 0x80:
        app_status_string, at = _read_string(body, at)
    at += 4  # cluster round trip time
    if fields & 0x40:  # a serialised exception: its length, then that many bytes
        (n,) = _I32.unpack_from(body, at)
        at += 4 + n
    (ntables,) = _I16.unpack_from(body, at)
    at += 2
    tables: list[Any] = []
    for _ in range(ntables):
        table, at = _read_table(body, at)
        tables.append(table)
    return handle, Answer(version, status, status_string, app_status, app_status_string, tables)


class VoltProtocol(asyncio.Protocol):
    """One logged-in connection; calls pipelined, answers matched by client handle."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, tuple[asyncio.Future[Answer], float]] = {}
        self._buf = bytearray()
        self._out: list[bytes] = []  # calls not yet written
        self._handles = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self.dead: str | None = None  # why it may not be used again

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are only alike

    def call(self, procedure: str, types: Sequence[int], params: Sequence[Any]) -> asyncio.Future[Answer]:
        assert self.transport is not None
        if self.dead is not None:
            raise NoAnswer(self.dead)
        handle = next(self._handles)
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.pending[handle] = (fut, time.monotonic() + self.timeout)
        # one write per loop iteration for all the calls made in it: a send on loopback costs more
        # than encoding a call (measured: a write per call was most of this client's time)
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(encode_call(handle, procedure, types, params))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout / 4, self._sweep)
        return fut

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.dead is None and self.transport is not None:
            self.transport.write(b"".join(out))

    def _sweep(self) -> None:
        """One timer per connection, not one per call: the oldest call past its deadline kills the
        connection (its answer may still come, on a stream no longer read)."""
        self._timer = None
        if not self.pending:
            return
        _, deadline = next(iter(self.pending.values()))
        if time.monotonic() >= deadline:
            self._fail(f"no answer from VoltDB {self.name} within {self.timeout:g} s")
            return
        self._timer = asyncio.get_running_loop().call_later(self.timeout / 4, self._sweep)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        at = 0
        try:
            while len(buf) - at >= 4:
                (n,) = _I32.unpack_from(buf, at)
                if not 0 < n <= MAX_MESSAGE:
                    raise ValueError(f"a message of {n} bytes")
                if len(buf) - at - 4 < n:
                    break
                handle, answer = decode_answer(bytes(buf[at + 4 : at + 4 + n]))
                at += 4 + n
                entry = self.pending.pop(handle, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_result(answer)
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            self._fail(f"unreadable answer from VoltDB {self.name}: {exc}")
            return
        del buf[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection to VoltDB {self.name} lost" + (f": {exc}" if exc else ""))

    def _fail(self, why: str) -> None:
        if self.dead is None:
            self.dead = why
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self.pending = self.pending, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(NoAnswer(why))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def close(self) -> None:
        self._fail(f"connection to VoltDB {self.name} closed")


Login = Callable[[str, int], Any]  # (host, port) -> a logged-in voltdbclient FastSerializer


class AsyncVoltClient:
    """A few pipelined connections on the running loop, opened on first use, replaced when dead.

    Bound to one event loop; used from another (a test's new loop), it opens new connections there."""

    def __init__(
        self,
        servers: list[tuple[str, int]],
        login: Login,
        types: dict[str, list[int]],
        *,
        timeout: float,
        connections: int = 2,
    ) -> None:
        self._servers = servers
        self._login = login
        self._types = types
        self.timeout = timeout
        self._size = connections
        self._conns: list[VoltProtocol | None] = [None] * connections
        self._opening: list[asyncio.Future[VoltProtocol] | None] = [None] * connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: AsyncGenerator[None, None] | None = None
        self._rr = itertools.count()
        self._next_server = itertools.count()
        self._closed = False

    async def call(self, procedure: str, params: Sequence[Any]) -> Answer:
        """Raises NoAnswer when the call got none (the caller decides whether to send it again),
        CannotConnect when it could not be sent."""
        return await self.send(procedure, params)

    def send(self, procedure: str, params: Sequence[Any]) -> Awaitable[Answer]:
        """`call` without its coroutine: in the usual case (a live connection of the running
        loop) the call is sent here and its answer's future returned, one coroutine less a call."""
        slot = next(self._rr) % self._size
        conn = self._conns[slot]
        if (
            conn is None
            or conn.dead is not None
            or self._closed
            or self._loop is not asyncio.get_running_loop()
        ):
            return self._call_opening(slot, procedure, params)
        return conn.call(procedure, self._types[procedure], params)

    async def _call_opening(self, slot: int, procedure: str, params: Sequence[Any]) -> Answer:
        conn = await self._connection(slot)
        return await conn.call(procedure, self._types[procedure], params)

    async def _connection(self, slot: int) -> VoltProtocol:
        """The connection in `slot`, opened (or replaced) first when it is not a live one of this loop."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise CannotConnect("the VoltDB client is closed")
        if self._loop is not loop:  # connections belong to the loop that made them
            if self._loop is not None and not self._loop.is_closed():
                self._drop()
            self._conns = [None] * self._size
            self._opening = [None] * self._size
            self._loop = loop
            self._watcher = until_loop_ends(lambda: self._loop_ended(loop))
            await anext(self._watcher)
        conn = self._conns[slot]
        if conn is not None and conn.dead is None:
            return conn
        opening = self._opening[slot]
        if opening is None:
            opening = self._opening[slot] = loop.create_task(self._open(slot))
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening[slot] is opening:
                self._opening[slot] = None

    async def _open(self, slot: int) -> VoltProtocol:
        loop = asyncio.get_running_loop()
        problems = []
        start = next(self._next_server)
        for i in range(len(self._servers)):
            host, port = self._servers[(start + i) % len(self._servers)]
            try:
                # voltdbclient's blocking handshake, off the loop
                client = await loop.run_in_executor(None, self._login, host, port)
            except (OSError, RuntimeError) as exc:  # refused, reset, login refused
                problems.append(f"{host}:{port}: {exc}")
                continue
            sock = client.socket
            sock.settimeout(None)
            sock.setblocking(False)
            try:
                name = f"{host}:{port}"
                _, conn = await loop.create_connection(
                    lambda: VoltProtocol(name, self.timeout),  # noqa: B023 - called at once
                    sock=sock,
                )
            except OSError as exc:
                sock.close()
                problems.append(f"{host}:{port}: {exc}")
                continue
            self._conns[slot] = conn
            return conn
        raise CannotConnect("cannot connect to VoltDB (" + "; ".join(problems) + ")")

    def _loop_ended(self, loop: asyncio.AbstractEventLoop) -> None:
        """Its loop is ending: close the connections made on it (left open, they would be sockets
        of a closed loop, never closed)."""
        if self._loop is loop:
            self._drop()
            self._loop = None

    def _drop(self) -> None:
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._conns = [None] * self._size
        self._opening = [None] * self._size

    async def detach(self) -> None:
        """Close the connections on the running loop (before it ends); later calls open new ones."""
        watcher, self._watcher = self._watcher, None
        if self._loop is asyncio.get_running_loop():
            self._drop()
            self._loop = None
        if watcher is not None:
            await watcher.aclose()

    def close(self) -> None:
        """Fails what is in flight and closes the connections, on their loop: from that loop, from
        another thread while it runs, or after it stopped (before it is closed)."""
        self._closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._drop()
        elif loop.is_running():
            loop.call_soon_threadsafe(self._drop)
        else:
            self._drop()
            loop.run_until_complete(asyncio.sleep(0))  # the transports' connection_lost closes the sockets
