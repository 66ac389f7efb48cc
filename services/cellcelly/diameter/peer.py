"""A Diameter peer connection on asyncio (RFC 6733 §5): framing, capabilities exchange, device
watchdog, disconnect, and request/answer matching by hop-by-hop identifier.

One `PeerConnection` per TCP connection, in either role: the responder waits for a CER (the
gateway), the initiator sends one (the traffic generator, tests). Application requests go to a
handler that returns the answer, either at once or as an awaitable, so a slow back end never
blocks the other sessions on the connection. Malformed input gets an error answer with
Failed-AVP where the header could be read; only an unreadable frame length closes the
connection, because the byte stream cannot be resynchronised after it. The error path never
raises: an answer that cannot be built from the request is built from its header alone.

As the responder (the gateway) a connection must send its CER within `cer_timeout`, and it must
be the first message (RFC 6733 §5.3, §5.6.1: until the CER names the peer there is no peer to
answer for; anything else gets 3010 DIAMETER_UNKNOWN_PEER and the connection is closed); a CER
from a peer `admit` refuses gets a CEA with 3010 and the connection is closed. Reading pauses
while the transport's write buffer is above its high-water mark, so a peer that pipelines
requests and never reads the answers cannot make us buffer them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import random
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from fnmatch import fnmatchcase
from typing import TypeVar, cast

from cellcelly.diameter.codec import Avp, DecodeError, Message, decode, message_length
from cellcelly.diameter.constants import (
    APP_COMMON,
    APP_CREDIT_CONTROL,
    FLAG_E,
    FLAG_R,
    FLAG_T,
    HEADER_LENGTH,
    MAX_MESSAGE,
    VENDOR_3GPP,
    Cmd,
    Code,
    DisconnectCause,
    Result,
)
from cellcelly.timeouts import Deadlines
from cellcelly.turn_writer import TurnWriter

log = logging.getLogger(__name__)

# a handler answers with a Message, or with one already encoded (the gateway keeps its answers as
# bytes for retransmissions, and so encodes each once)
Answer = Message | bytes | Awaitable[Message | bytes] | None
Handler = Callable[["PeerConnection", Message], Answer]
Admit = Callable[[str, str], bool]  # (Origin-Host, Origin-Realm) of a CER -> may it connect?
# a handler's faster way in, tried first for each request on an open connection: the request read
# from its frame and the handler's answer to it, or None for the peer to decode it and call the handler
Reader = Callable[["PeerConnection", bytes], tuple[Message, Answer] | None]

# read as UTF-8 by the peer and the gateway on every request: checked before any of it runs, so a
# bad one is answered 5004 before anything is charged (not found out halfway)
_IDENTITY_AVPS = (Code.SESSION_ID, Code.ORIGIN_HOST, Code.ORIGIN_REALM)
_HEADER = struct.Struct("!I I I I I")
_HOP_BY_HOP = struct.Struct("!I")  # at offset 12
_T = TypeVar("_T")


@dataclass(frozen=True)
class PeerAllowlist:
    """The peers that may complete a capabilities exchange, as `host`, `host@realm` or `@realm`
    entries; `*` and `?` are wildcards (`*.epc.example.net`, `*@example.net`), names compare
    case-insensitively (DiameterIdentity is an FQDN). `*` alone allows every peer; no entries, none.
    """

    entries: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> PeerAllowlist:
        entries = []
        for item in filter(None, (p.strip().lower() for p in spec.split(","))):
            host, _, realm = item.partition("@")
            entries.append((host or "*", realm or "*"))
        return cls(tuple(entries))

    def __call__(self, host: str, realm: str) -> bool:
        host, realm = host.lower(), realm.lower()
        return any(fnmatchcase(host, h) and fnmatchcase(realm, r) for h, r in self.entries)

    def __str__(self) -> str:
        return ",".join(f"{h}@{r}" for h, r in self.entries) or "(nobody)"


@dataclass(frozen=True)
class LocalPeer:
    """Who we are in CER/CEA and in every message we originate."""

    origin_host: str
    origin_realm: str
    host_ip: str = "127.0.0.1"
    product_name: str = "CellCelly"
    vendor_id: int = 0
    firmware_revision: int = 1
    auth_applications: tuple[int, ...] = (APP_CREDIT_CONTROL,)
    supported_vendors: tuple[int, ...] = (VENDOR_3GPP,)
    watchdog_interval: float = 30.0  # Tw (RFC 3539): a DWR after this long without traffic
    origin_state_id: int = field(default_factory=lambda: int(time.time()))

    def identity(self) -> list[Avp]:
        return [Avp.utf8(Code.ORIGIN_HOST, self.origin_host), Avp.utf8(Code.ORIGIN_REALM, self.origin_realm)]

    def capabilities(self) -> list[Avp]:
        avps = [
            *self.identity(),
            Avp.address(Code.HOST_IP_ADDRESS, self.host_ip),
            Avp.u32(Code.VENDOR_ID, self.vendor_id),
            Avp.utf8(Code.PRODUCT_NAME, self.product_name, mandatory=False),
            Avp.u32(Code.ORIGIN_STATE_ID, self.origin_state_id),
        ]
        avps += [Avp.u32(Code.SUPPORTED_VENDOR_ID, v) for v in self.supported_vendors]
        avps += [Avp.u32(Code.AUTH_APPLICATION_ID, a) for a in self.auth_applications]
        avps.append(Avp.u32(Code.FIRMWARE_REVISION, self.firmware_revision, mandatory=False))
        return avps


class State(Enum):
    WAIT_CER = "wait-cer"
    WAIT_CEA = "wait-cea"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ids = itertools.count(int.from_bytes(os.urandom(3), "big") << 8)
# RFC 6733 §3: the high 12 bits of End-to-End are the low bits of the start time
_E2E_BASE = (int(time.time()) & 0xFFF) << 20


def next_hop_by_hop() -> int:
    return next(_ids) & 0xFFFFFFFF


def next_end_to_end() -> int:
    return _E2E_BASE | (next(_ids) & 0xFFFFF)


def error_answer(
    request: Message, local: LocalPeer, result: int, text: str = "", failed: Avp | None = None
) -> Message:
    """An answer with the E bit for protocol errors (3xxx), or a plain one for 5xxx (RFC 6733 §7).

    Never raises on what the peer sent: a Session-Id that is not UTF-8 is left out (it is optional
    in the generic error answer, RFC 6733 §7.2) rather than read, and Failed-AVP reports it."""
    avps: list[Avp] = []
    session = request.find(Code.SESSION_ID)
    if session is not None and _utf8(session.data):
        avps.append(Avp(Code.SESSION_ID, session.flags, 0, session.data))
    avps += [Avp.u32(Code.RESULT_CODE, result), *local.identity()]
    if text:
        avps.append(Avp.utf8(Code.ERROR_MESSAGE, text, mandatory=False))
    if failed is not None:
        avps.append(Avp.grouped(Code.FAILED_AVP, [failed]))
    return request.answer(avps, error=3000 <= result < 4000)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bare_header(frame: bytes) -> Message | None:
    """The frame's header as it stands, unchecked: what an error answer needs (command, application,
    identifiers) when nothing else of the frame can be trusted."""
    if len(frame) < HEADER_LENGTH:
        return None
    _, word1, app, hbh, e2e = _HEADER.unpack_from(frame, 0)
    return Message(word1 & 0xFFFFFF, (word1 >> 24) & ~FLAG_E & 0xF0, app, hbh, e2e)


class PeerConnection(asyncio.Protocol):
    def __init__(
        self,
        local: LocalPeer,
        handler: Handler | None = None,
        *,
        initiator: bool = False,
        on_open: Callable[[PeerConnection], None] | None = None,
        on_close: Callable[[PeerConnection], None] | None = None,
        admit: Admit | None = None,
        cer_timeout: float | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.local = local
        self.handler = handler
        self.reader = reader
        self.initiator = initiator
        self.admit = admit  # None: any peer (the initiator, and tests); the gateway always passes one
        self.cer_timeout = cer_timeout
        self._cer_timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self.state = State.WAIT_CEA if initiator else State.WAIT_CER
        self.remote_host = ""
        self.remote_realm = ""
        self.remote_applications: set[int] = set()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._pending_frames: dict[int, asyncio.Future[bytes]] = {}  # `request_frame`'s
        self._deadlines = Deadlines()  # of the requests sent with `request` and `request_frame`
        # asked once: `asyncio.get_running_loop()` is a getpid system call on Python 3.11, and a
        # request and its answer each asked it (perf: 1-2% of the gateway's and the generator's CPU)
        self.loop = asyncio.get_running_loop()
        self._writer = TurnWriter(self.loop)
        self._last_seen = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        self._dwr_outstanding = False
        self._on_open = on_open
        self._on_close = on_close
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.stats = {"requests": 0, "answers": 0, "errors": 0}

    # --- transport events -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = self._writer.transport = cast(asyncio.Transport, transport)
        if self.initiator:
            cer = Message(
                Cmd.CAPABILITIES_EXCHANGE,
                FLAG_R,
                APP_COMMON,
                next_hop_by_hop(),
                next_end_to_end(),
                self.local.capabilities(),
            )
            fut = self._expect(cer.hop_by_hop)
            fut.add_done_callback(self._on_cea)
            self._write(cer)
        elif self.cer_timeout is not None:
            self._cer_timer = self.loop.call_later(self.cer_timeout, self._no_cer)
        self._watchdog = self.loop.create_task(self._watch())

    def _no_cer(self) -> None:
        if self.state is State.WAIT_CER:
            log.info("closing diameter connection: no CER", extra={"seconds": self.cer_timeout})
            self.stats["errors"] += 1
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = State.CLOSED
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._cer_timer is not None:
            self._cer_timer.cancel()
        self._buffer = bytearray()  # the gateway may keep this object (its sessions); not the bytes
        self._deadlines.close()
        for waiting in (self._pending, self._pending_frames):
            for fut in waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("peer connection closed"))
            waiting.clear()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before capabilities exchange"))
            self.opened.exception()  # retrieved: nobody may be waiting
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_close is not None:
            self._on_close(self)

    def data_received(self, data: bytes) -> None:
        self._last_seen = time.monotonic()
        self._buffer += data
        self._frames()

    def _frames(self) -> None:
        buf = self._buffer
        while len(buf) >= 4 and not self._reading_paused:
            length = message_length(buf)
            if length < HEADER_LENGTH or length > MAX_MESSAGE:
                self._abort(f"frame length {length}: cannot resynchronise")
                return
            if len(buf) < length:
                return
            frame = bytes(buf[:length])
            del buf[:length]
            self._frame(frame)  # another version than 1 is read and answered 5011 (RFC 6733 §7.1.5)

    # --- backpressure: the transport calls these around its write buffer's high-water mark ------

    def pause_writing(self) -> None:
        # stop reading (and working through what is buffered): answers we cannot send are not made
        self._reading_paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._reading_paused = False
        self._frames()
        if not self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # --- frames -----------------------------------------------------------------------------------

    def _frame(self, frame: bytes) -> None:
        if self._pending_frames and not frame[4] & FLAG_R:
            waiting = self._pending_frames.pop(_HOP_BY_HOP.unpack_from(frame, 12)[0], None)
            if waiting is not None:  # an answer its requester reads from its bytes (`request_frame`)
                self.stats["answers"] += 1
                if not waiting.done():
                    waiting.set_result(frame)
                return
        if self.reader is not None and self.state is State.OPEN and self.handler is not None:
            try:
                read = self.reader(self, frame)
            except Exception:  # noqa: BLE001 - one bad request must not take the peer down
                self.stats["requests"] += 1
                self._unreadable(frame, "diameter handler failed", "internal error")
                return
            if read is not None:
                self.stats["requests"] += 1
                self._answer(read[0], read[1])
                return
        try:
            msg = decode(frame)
        except DecodeError as exc:
            self.stats["errors"] += 1
            header = exc.header
            log.info("malformed diameter message", extra={"peer": self.remote_host, "reason": str(exc)})
            if header is not None and header.is_request:
                self._refuse(header, exc.result, str(exc), exc.failed)
            return
        except Exception:  # noqa: BLE001 - a codec defect: still an answer, and the connection lives
            self._unreadable(frame, "diameter message could not be decoded", "could not decode")
            return
        if msg.is_request:
            self.stats["requests"] += 1
            try:
                for code in _IDENTITY_AVPS:
                    avp = msg.find(code)
                    if avp is not None:
                        avp.as_str()  # DecodeError 5004 with the AVP when it is not UTF-8
                self._request(msg)
            except DecodeError as exc:  # an AVP value read on the way
                self.stats["errors"] += 1
                log.info("invalid diameter request", extra={"peer": self.remote_host, "reason": str(exc)})
                self._refuse(msg, exc.result, str(exc), exc.failed)
            except Exception:  # noqa: BLE001 - one bad request must not take the peer down
                self.stats["errors"] += 1
                log.exception("diameter request failed")
                self._refuse(msg, Result.UNABLE_TO_COMPLY, "internal error")
        else:
            self.stats["answers"] += 1
            fut = self._pending.pop(msg.hop_by_hop, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif msg.code == Cmd.DEVICE_WATCHDOG:
                self._dwr_outstanding = False

    def _unreadable(self, frame: bytes, logged: str, answered: str) -> None:
        """A frame that failed where no message read from it holds it (a defect of the codec or of
        the handler's reader): logged with the exception, and a request answered 5012 from its
        bare header."""
        self.stats["errors"] += 1
        log.exception(logged)
        header = _bare_header(frame)
        if header is not None and header.is_request:
            self._refuse(header, Result.UNABLE_TO_COMPLY, answered)

    def _request(self, msg: Message) -> None:
        code = msg.code
        if self.state is State.WAIT_CER and code != Cmd.CAPABILITIES_EXCHANGE:
            # RFC 6733 §5.6.1: the peer is unknown until its CER; §5.3: CER comes first
            log.info("diameter request before CER", extra={"command": code})
            self._refuse(msg, Result.UNKNOWN_PEER, "capabilities exchange (CER) first")
            self.close()
            return
        if code == Cmd.CAPABILITIES_EXCHANGE:
            self._cer(msg)
        elif code == Cmd.DEVICE_WATCHDOG:
            self._write(
                msg.answer(
                    [
                        Avp.u32(Code.RESULT_CODE, Result.SUCCESS),
                        *self.local.identity(),
                        Avp.u32(Code.ORIGIN_STATE_ID, self.local.origin_state_id),
                    ]
                )
            )
        elif code == Cmd.DISCONNECT_PEER:
            self._write(msg.answer([Avp.u32(Code.RESULT_CODE, Result.SUCCESS), *self.local.identity()]))
            self.state = State.CLOSING
            # the initiator of DPR closes; close our side too once the DPA is out
            self.loop.call_later(0.5, self.close)
        elif self.state is not State.OPEN:
            self._write(error_answer(msg, self.local, Result.UNKNOWN_PEER, "no capabilities exchange yet"))
        elif msg.app not in self.local.auth_applications:
            self._write(
                error_answer(msg, self.local, Result.APPLICATION_UNSUPPORTED, f"application {msg.app}")
            )
        elif self.handler is None:
            self._write(error_answer(msg, self.local, Result.COMMAND_UNSUPPORTED, f"command {code}"))
        else:
            try:
                result = self.handler(self, msg)
            except Exception:  # noqa: BLE001 - one bad request must not take the peer down
                log.exception("diameter handler failed")
                self._refuse(msg, Result.UNABLE_TO_COMPLY, "internal error")
                return
            self._answer(msg, result)

    def _answer(self, msg: Message, result: Answer) -> None:
        """Send the handler's answer to `msg`, now or when it is done."""
        if isinstance(result, (Message, bytes)):
            self._write(result)
        elif result is not None:
            # the handler's task (or a coroutine made one) answers when done: a callback, not a
            # second task awaiting the first, which every CCR paid for
            # (the gateway gives a task: asyncio.ensure_future, Python, is only for the others)
            task = result if isinstance(result, asyncio.Future) else asyncio.ensure_future(result)
            task.add_done_callback(functools.partial(self._answer_later, msg))

    def _answer_later(self, msg: Message, done: asyncio.Future[Message | bytes]) -> None:
        if done.cancelled():  # the gateway is stopping: nothing to answer with
            return
        exc = done.exception()
        if isinstance(exc, Exception):
            log.error("diameter handler failed", exc_info=exc)
            self._refuse(msg, Result.UNABLE_TO_COMPLY, "internal error")
            return
        if exc is not None:
            return
        answer = done.result()
        if self.state is not State.CLOSED:
            try:
                self._write(answer)
            except Exception:  # noqa: BLE001 - e.g. an answer echoing what could not be encoded
                log.exception("diameter answer could not be sent")
                self._refuse(msg, Result.UNABLE_TO_COMPLY, "internal error")

    def _cer(self, msg: Message) -> None:
        # a failed CER closes a connection still waiting for one; an open one stays (RFC 6733 §5.6,
        # R-Open: R-Rcv-CER is answered and the state kept)
        opening = self.state is not State.OPEN
        host = msg.find(Code.ORIGIN_HOST)
        realm = msg.find(Code.ORIGIN_REALM)
        if host is None or realm is None:
            missing = Avp.utf8(Code.ORIGIN_HOST if host is None else Code.ORIGIN_REALM, "")
            self._refuse(msg, Result.MISSING_AVP, "Origin-Host and Origin-Realm", missing)
            if opening:
                self.close()
            return
        host_name, realm_name = host.as_str(), realm.as_str()
        if self.admit is not None and not self.admit(host_name, realm_name):
            log.warning(
                "diameter peer refused: not in the allowed peers",
                extra={"origin_host": host_name, "origin_realm": realm_name, "address": self._address()},
            )
            self._refuse(msg, Result.UNKNOWN_PEER, "peer not allowed")
            if opening:
                self.close()
            return
        if not opening and (host_name, realm_name) != (self.remote_host, self.remote_realm):
            self._refuse(msg, Result.UNKNOWN_PEER, "another peer on an open connection")
            return
        apps = {a.as_u32() for a in msg.find_all(Code.AUTH_APPLICATION_ID)}
        for vsa in msg.find_all(Code.VENDOR_SPECIFIC_APPLICATION_ID):
            apps |= {a.as_u32() for a in vsa.find_all(Code.AUTH_APPLICATION_ID)}
        common = apps & (set(self.local.auth_applications) | {0xFFFFFFFF})
        if not common:
            answer = msg.answer(
                [Avp.u32(Code.RESULT_CODE, Result.NO_COMMON_APPLICATION), *self.local.capabilities()]
            )
            self._write(answer)
            if opening:
                self.close()  # after the CEA: close() flushes what is buffered first
            return
        self.remote_host, self.remote_realm = host_name, realm_name
        self.remote_applications = apps
        self._write(msg.answer([Avp.u32(Code.RESULT_CODE, Result.SUCCESS), *self.local.capabilities()]))
        if opening:
            if self._cer_timer is not None:
                self._cer_timer.cancel()
            self._set_open()

    def _address(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""

    def _on_cea(self, fut: asyncio.Future[Message]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        cea = fut.result()
        if cea.result_code != Result.SUCCESS:
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(f"CEA result {cea.result_code}"))
            self.close()
            return
        host, realm = cea.find(Code.ORIGIN_HOST), cea.find(Code.ORIGIN_REALM)
        self.remote_host = host.as_str() if host else ""
        self.remote_realm = realm.as_str() if realm else ""
        self._set_open()

    def _set_open(self) -> None:
        self.state = State.OPEN
        if not self.opened.done():
            self.opened.set_result(None)
        if self._on_open is not None:
            self._on_open(self)

    # --- sending ----------------------------------------------------------------------------------

    def _write(self, msg: Message | bytes) -> None:
        """Encoded now (an answer that cannot be encoded raises to its caller), sent with the
        others of this loop turn (turn_writer.py)."""
        if self.transport is None or self.transport.is_closing():
            return
        self._writer.write(msg if isinstance(msg, bytes) else msg.encode())

    def _refuse(self, request: Message, result: int, text: str = "", failed: Avp | None = None) -> None:
        """Send an error answer; never raises. If the full answer cannot be built (whatever of the
        request it echoes), the answer is made from the request's header alone."""
        try:
            self._write(error_answer(request, self.local, result, text, failed))
            return
        except Exception:  # noqa: BLE001
            log.exception("diameter error answer could not be built; answering from the header")
        try:
            header = Message(request.code, request.flags, request.app, request.hop_by_hop, request.end_to_end)
            self._write(error_answer(header, self.local, result))
        except Exception:  # noqa: BLE001 - nothing left to answer with: give up on this one message
            log.exception("diameter error answer could not be sent")

    def _expect(self, hop_by_hop: int) -> asyncio.Future[Message]:
        fut: asyncio.Future[Message] = self.loop.create_future()
        self._pending[hop_by_hop] = fut
        return fut

    def _outgoing(self, msg: Message) -> None:
        """A request made ready to send: identifiers filled in when zero, the R flag set."""
        if self.state is State.CLOSED or self.transport is None or self.transport.is_closing():
            raise ConnectionError("the peer connection is closed")  # fail now, not at the timeout
        if not msg.hop_by_hop:
            msg.hop_by_hop = next_hop_by_hop()
        if not msg.end_to_end:
            msg.end_to_end = next_end_to_end()
        msg.flags |= FLAG_R

    def send_request(self, msg: Message) -> asyncio.Future[Message]:
        """Send a request (identifiers are filled in when zero); the future gets its answer."""
        self._outgoing(msg)
        fut = self._expect(msg.hop_by_hop)
        self._write(msg)
        return fut

    async def request(self, msg: Message, timeout: float = 5.0) -> Message:
        self._outgoing(msg)
        self._write(msg)
        return await self._answer_to(self._pending, msg.hop_by_hop, timeout)

    async def request_frame(self, msg: Message, timeout: float = 5.0) -> bytes:
        """`request`, its answer's frame as it came, not decoded: for a requester that reads it
        from its bytes (the traffic generator, `cca_reader`) and decodes only what that cannot read
        (`codec.decode` raises on a malformed one, which the peer has not checked)."""
        self._outgoing(msg)
        self._write(msg)
        return await self._answer_to(self._pending_frames, msg.hop_by_hop, timeout)

    async def _answer_to(self, waiting: dict[int, asyncio.Future[_T]], hop_by_hop: int, timeout: float) -> _T:
        """The answer to the request sent with `hop_by_hop`, waited for in `waiting` (where
        `_frame` finds it) until `timeout`."""
        fut: asyncio.Future[_T] = self.loop.create_future()
        waiting[hop_by_hop] = fut
        self._deadlines.add(fut, timeout)
        try:
            return await fut
        except BaseException:
            # the future holds the exception, whose traceback holds this frame: without the
            # future the frame makes no cycle, which only a full collection frees (runtime.tune_gc)
            del fut
            raise
        finally:
            waiting.pop(hop_by_hop, None)

    def retransmit(self, msg: Message) -> asyncio.Future[Message]:
        """Send `msg` again with the T flag, same identifiers (RFC 6733 §5.5.4)."""
        msg.flags |= FLAG_T | FLAG_R
        fut = self._expect(msg.hop_by_hop)
        self._write(msg)
        return fut

    async def disconnect(
        self, cause: DisconnectCause = DisconnectCause.REBOOTING, timeout: float = 2.0
    ) -> None:
        """DPR/DPA, then close (RFC 6733 §5.4)."""
        if self.state is State.OPEN:
            self.state = State.CLOSING
            dpr = Message(
                Cmd.DISCONNECT_PEER,
                FLAG_R,
                APP_COMMON,
                0,
                0,
                [*self.local.identity(), Avp.u32(Code.DISCONNECT_CAUSE, cause)],
            )
            try:
                await self.request(dpr, timeout)
            except (TimeoutError, ConnectionError):
                pass
        self.close()
        await self.closed

    def close(self) -> None:
        """Close now, without a DPR (a refused peer, a reboot); what was answered goes out first."""
        if self.transport is not None and not self.transport.is_closing():
            self._writer.flush()  # an error answer, a DPA
            self.transport.close()

    def _abort(self, reason: str) -> None:
        log.warning("closing diameter connection", extra={"peer": self.remote_host, "reason": reason})
        self.stats["errors"] += 1
        if self.transport is not None:
            self.transport.abort()

    # --- watchdog (RFC 3539) ----------------------------------------------------------------------

    async def _watch(self) -> None:
        tw = self.local.watchdog_interval
        jitter = min(2.0, tw / 10)  # RFC 3539 §3.4.1: Tw is jittered so peers do not tick together
        dwr_sent = 0.0
        suspect = False
        while self.state is not State.CLOSED:
            await asyncio.sleep(tw / 4)
            if self.state is not State.OPEN:
                continue
            now = time.monotonic()
            if self._dwr_outstanding:
                if self._last_seen >= dwr_sent:
                    self._dwr_outstanding = suspect = False  # any traffic proves the peer alive
                    continue
                # RFC 3539 §3.4.1: no answer in Tw makes the peer SUSPECT; only a second Tw
                # without one closes the connection (one slow moment of the peer's is not a failure)
                if now - dwr_sent >= 2 * tw:
                    self._abort("watchdog: no answer to DWR in 2 Tw")
                    return
                if now - dwr_sent >= tw and not suspect:
                    suspect = True
                    log.warning("diameter peer suspect: no answer to DWR", extra={"peer": self.remote_host})
                continue
            if now - self._last_seen >= tw + random.uniform(-jitter, jitter):
                self._dwr_outstanding = True
                dwr_sent = now
                dwr = Message(
                    Cmd.DEVICE_WATCHDOG,
                    FLAG_R,
                    APP_COMMON,
                    next_hop_by_hop(),
                    next_end_to_end(),
                    [*self.local.identity(), Avp.u32(Code.ORIGIN_STATE_ID, self.local.origin_state_id)],
                )
                self._write(dwr)


async def connect(
    host: str, port: int, local: LocalPeer, handler: Handler | None = None, timeout: float = 5.0
) -> PeerConnection:
    """Open a connection as the initiator and complete the capabilities exchange."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: PeerConnection(local, handler, initiator=True), host, port), timeout
    )
    await asyncio.wait_for(conn.opened, timeout)
    return conn
