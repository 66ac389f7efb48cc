"""The DGW's Diameter edge under hostile input, over real TCP on 127.0.0.1 (issue 12 §4).

The DGW (DgwServer, the real Gateway on a charging-free OCS) runs on an event loop in a thread of
its own; the tests are its peers with plain blocking sockets, so a test can send bytes no
well-behaved client would. Every claim is checked on the wire and then by the connection
surviving: a DWR sent after the bad frame is answered on the same connection.

  * every readable request gets an answer (5004/5014/3008/5011 ... with Failed-AVP), including a
    non-UTF-8 Session-Id or Origin-Host and Grouped AVPs nested 1000 deep, which tore the
    connection down before; random mutations of a CCR likewise (hypothesis);
  * only allowed peers get through the CER (CEA 3010 and closed otherwise); a request before the
    CER is refused with 3010 and the connection closed; a silent connection is closed after the
    CER timeout; connections over the cap are closed as they arrive;
  * pipelined requests whose answers are never read do not grow the process (tracemalloc, with the
    DGW in this process), and what was used is given back after the close.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import NoopOcs
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.codec import MAX_DEPTH, Avp, Message, decode
from cellcelly.diameter.constants import (
    APP_COMMON,
    APP_CREDIT_CONTROL,
    FLAG_E,
    FLAG_R,
    Cmd,
    Code,
    Result,
)
from cellcelly.diameter.peer import LocalPeer, PeerAllowlist
from cellcelly_dev.bench_codec import sample_ccr_update

pytestmark = [pytest.mark.integration]

log = logging.getLogger(__name__)
T = TypeVar("T")
DGW = LocalPeer("dgw.edge.test", "cellcelly.local", watchdog_interval=30)
PEER_HOST, PEER_REALM = "pgw1.example.net", "example.net"  # sample_ccr_update's identity
ALLOWED = f"{PEER_HOST}@{PEER_REALM},*.relay.test@relays.test"


class Dgw:
    """A DgwServer on an event loop in its own thread (its own loop: the tests block on sockets)."""

    def __init__(self, local: LocalPeer = DGW, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        options.setdefault("allowed", PeerAllowlist.parse(ALLOWED))
        self.server: DgwServer = self.call(lambda: DgwServer(Gateway(local, NoopOcs()), local, **options))
        self.port: int = self.run(self.server.start("127.0.0.1", 0))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[[], T]) -> T:
        done: Future[T] = Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return done.result(30)

    def connections(self) -> int:
        return self.call(lambda: len(self.server.connections))

    def close(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Peer:
    """A Diameter peer on a blocking socket: send anything, read frames."""

    def __init__(self, port: int, rcvbuf: int = 0) -> None:
        self.sock = socket.socket()
        if rcvbuf:  # before connect, so that the kernel's autotuning does not grow it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self._buf = b""
        self._hbh = 0x7FFF0000  # far from the CCR's 0x4242, which the mutation test changes

    def send(self, msg: Message | bytes) -> None:
        self.sock.sendall(msg if isinstance(msg, bytes) else msg.encode())

    def read(self) -> Message:
        while True:
            if len(self._buf) >= 4:
                length = int.from_bytes(self._buf[1:4], "big")
                if len(self._buf) >= length:
                    frame, self._buf = self._buf[:length], self._buf[length:]
                    return decode(frame)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the DGW")
            self._buf += chunk

    def request(self, code: int, avps: list[Avp], app: int = APP_COMMON) -> Message:
        self._hbh += 1
        return Message(code, FLAG_R, app, self._hbh, self._hbh, avps)

    def cer(self, host: str = PEER_HOST, realm: str = PEER_REALM) -> Message:
        self.send(
            self.request(
                Cmd.CAPABILITIES_EXCHANGE,
                [
                    Avp.utf8(Code.ORIGIN_HOST, host),
                    Avp.utf8(Code.ORIGIN_REALM, realm),
                    Avp.address(Code.HOST_IP_ADDRESS, "127.0.0.1"),
                    Avp.u32(Code.VENDOR_ID, 0),
                    Avp.utf8(Code.PRODUCT_NAME, "edge test"),
                    Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
                ],
            )
        )
        return self.read()

    def answer(self, request: Message) -> Message:
        """A success answer to the DGW's `request` (a DWR), with our identity."""
        return Message(
            request.code,
            0,
            request.app,
            request.hop_by_hop,
            request.end_to_end,
            [
                Avp.u32(Code.RESULT_CODE, Result.SUCCESS),
                Avp.utf8(Code.ORIGIN_HOST, PEER_HOST),
                Avp.utf8(Code.ORIGIN_REALM, PEER_REALM),
            ],
        )

    def dwr(self) -> Message:
        return self.request(Cmd.DEVICE_WATCHDOG, [Avp.utf8(Code.ORIGIN_HOST, PEER_HOST)])

    def alive(self) -> list[Message]:
        """Send a DWR and read up to its DWA: what came before it (the answers still due)."""
        dwr = self.dwr()
        self.send(dwr)
        before = []
        while True:
            msg = self.read()
            if msg.code == Cmd.DEVICE_WATCHDOG and msg.hop_by_hop == dwr.hop_by_hop:
                assert not msg.is_request and msg.result_code == Result.SUCCESS
                return before
            before.append(msg)

    def closed(self, within: float = 5.0) -> bool:
        """True once the DGW has closed the connection (EOF or reset), reading past any answers."""
        self.sock.settimeout(within)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def dgw() -> Iterator[Dgw]:
    server = Dgw(cer_timeout=30.0)
    yield server
    server.close()


@pytest.fixture
def peer(dgw: Dgw) -> Iterator[Peer]:
    p = Peer(dgw.port)
    assert p.cer().result_code == Result.SUCCESS
    yield p
    p.close()


def ccr(changes: dict[int, bytes] | None = None) -> Message:
    """sample_ccr_update with hop-by-hop 0x4242 and the given top-level AVPs' bytes replaced."""
    msg = sample_ccr_update()
    msg.hop_by_hop = msg.end_to_end = 0x4242
    for avp in msg.avps:
        if changes and avp.vendor == 0 and avp.code in changes:
            avp.data = changes[avp.code]
    return msg


def failed_avp(answer: Message) -> Avp:
    failed = answer.find(Code.FAILED_AVP)
    assert failed is not None and failed.children, answer
    return failed.children[0]


# --- every readable request gets an answer, and the connection lives on ----------------------------


def test_a_ccr_is_answered(peer: Peer) -> None:
    peer.send(ccr())
    answer = peer.read()
    assert answer.hop_by_hop == 0x4242 and answer.result_code == Result.SUCCESS


@pytest.mark.parametrize("which", [Code.SESSION_ID, Code.ORIGIN_HOST, Code.ORIGIN_REALM])
def test_an_identity_that_is_not_utf8_is_answered_5004(peer: Peer, which: Code) -> None:
    """Before: the gateway's error answer read the Session-Id again inside its `except` and the
    connection was torn down with no answer."""
    bad = b"pgw1.example.net;\xff\xfe;1"
    peer.send(ccr({which: bad}))
    answer = peer.read()
    assert answer.hop_by_hop == 0x4242 and answer.result_code == Result.INVALID_AVP_VALUE
    assert failed_avp(answer).data == bad and failed_avp(answer).code == which
    session = answer.find(Code.SESSION_ID)  # echoed when it is UTF-8, left out when not
    assert session is None if which == Code.SESSION_ID else session is not None
    assert peer.alive() == []


def test_a_cer_with_an_origin_host_that_is_not_utf8_is_answered_5004(dgw: Dgw) -> None:
    peer = Peer(dgw.port)
    try:
        cer = peer.request(Cmd.CAPABILITIES_EXCHANGE, [Avp(Code.ORIGIN_HOST, data=b"pgw\xff")])
        cer.avps += [Avp.utf8(Code.ORIGIN_REALM, PEER_REALM), Avp.u32(Code.AUTH_APPLICATION_ID, 4)]
        peer.send(cer)
        cea = peer.read()
        assert cea.result_code == Result.INVALID_AVP_VALUE and failed_avp(cea).data == b"pgw\xff"
        assert peer.cer().result_code == Result.SUCCESS  # the connection still waits for a good CER
        assert peer.alive() == []
    finally:
        peer.close()


def _nested(depth: int) -> bytes:
    """A CCR carrying Proxy-Info nested `depth` deep (as bytes: as Avp objects it would recurse)."""
    avp = Avp.utf8(Code.PROXY_HOST, "relay.test").encode()
    for _ in range(depth):
        avp = struct.pack("!II", Code.PROXY_INFO, (0x40 << 24) | (8 + len(avp))) + avp
    raw = ccr().encode() + avp
    return raw[:1] + len(raw).to_bytes(3, "big") + raw[4:]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 4000])
def test_grouped_avps_nested_deep_are_answered_5004(peer: Peer, depth: int) -> None:
    peer.send(_nested(depth))
    answer = peer.read()
    assert answer.hop_by_hop == 0x4242 and answer.result_code == Result.INVALID_AVP_VALUE
    assert failed_avp(answer).code == Code.PROXY_INFO
    assert peer.alive() == []


def test_a_bad_avp_length_is_answered_5014_and_a_bad_version_5011(peer: Peer) -> None:
    raw = bytearray(ccr().encode())
    raw[20 + 5 : 20 + 8] = (3).to_bytes(3, "big")  # the Session-Id claims 3 bytes
    peer.send(bytes(raw))
    answer = peer.read()
    assert answer.result_code == Result.INVALID_AVP_LENGTH and failed_avp(answer).code == Code.SESSION_ID
    raw = bytearray(ccr().encode())
    raw[0] = 2
    peer.send(bytes(raw))
    assert peer.read().result_code == Result.UNSUPPORTED_VERSION
    raw[0], raw[4] = 1, FLAG_R | FLAG_E  # R and E together: 3008, an answer with the E bit
    peer.send(bytes(raw))
    answer = peer.read()
    assert answer.result_code == Result.INVALID_HDR_BITS and answer.is_error
    assert peer.alive() == []


CCR = ccr().encode()
MUTATIONS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@MUTATIONS
@given(data=st.data())
def test_random_mutations_of_a_ccr_are_answered_on_a_connection_that_lives(
    dgw: Dgw, data: st.DataObject
) -> None:
    """1 to 8 bytes of a CCR changed anywhere but the length field (which no receiver can check:
    the stream would be out of step): if the frame is still a request it gets exactly one answer
    with its identifiers, then a DWR is answered on the same connection. (12 of 150 random
    mutations tore the connection down before.)"""
    raw = bytearray(CCR)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1).filter(lambda i: not 1 <= i < 4))
        raw[at] = data.draw(st.integers(0, 255))
    code = int.from_bytes(raw[5:8], "big")
    # a DPR closes the connection as it should, and a CER on an open one is answered as a CER
    assume(code not in (Cmd.DISCONNECT_PEER, Cmd.CAPABILITIES_EXCHANGE))
    peer = Peer(dgw.port)
    try:
        assert peer.cer().result_code == Result.SUCCESS
        peer.send(bytes(raw))
        answers = peer.alive()
        if raw[4] & FLAG_R:
            if not answers:  # a CCR is charged asynchronously: its CCA may come after the DWA
                answers.append(peer.read())
            assert len(answers) == 1, answers
            hbh, e2e = struct.unpack_from("!II", raw, 12)
            assert (answers[0].hop_by_hop, answers[0].end_to_end) == (hbh, e2e)
            result = answers[0].result_code
            assert result is not None
            assert (3000 <= result < 4000) == answers[0].is_error
            assert peer.alive() == []  # and nothing more
        else:
            assert answers == []  # an answer to nothing is dropped
    finally:
        peer.close()


# --- who may connect ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "realm", "allowed"),
    [
        ("", "pgw1.example.net", "example.net", False),
        ("pgw1.example.net", "PGW1.Example.NET", "anything", True),
        ("pgw1.example.net@example.net", "pgw1.example.net", "other.net", False),
        ("@example.net", "pgw9.example.net", "example.net", True),
        ("*.epc.example.net@example.net", "pgw2.epc.example.net", "example.net", True),
        ("*.epc.example.net@example.net", "epc.example.net.evil", "example.net", False),
        (" a.test , b.test@r ", "b.test", "r", True),
        ("*", "whoever", "wherever", True),
    ],
)
def test_allowlist_entries(spec: str, host: str, realm: str, allowed: bool) -> None:
    assert PeerAllowlist.parse(spec)(host, realm) is allowed


def test_an_unknown_peer_gets_3010_and_is_closed(dgw: Dgw) -> None:
    peer = Peer(dgw.port)
    try:
        cea = peer.cer(host="pgw.attacker.test", realm="attacker.test")
        assert cea.result_code == Result.UNKNOWN_PEER and cea.is_error
        assert cea.find(Code.ORIGIN_HOST) is not None
        assert peer.closed()
    finally:
        peer.close()
    relay = Peer(dgw.port)  # a wildcard entry
    try:
        assert relay.cer(host="r1.relay.test", realm="relays.test").result_code == Result.SUCCESS
    finally:
        relay.close()


@pytest.mark.parametrize("code", [Cmd.DEVICE_WATCHDOG, Cmd.CREDIT_CONTROL, Cmd.DISCONNECT_PEER])
def test_a_request_before_the_cer_is_refused_with_3010_and_closed(dgw: Dgw, code: int) -> None:
    """RFC 6733 §5.6.1: until its CER a connection is no peer; §5.3: CER/CEA come first."""
    peer = Peer(dgw.port)
    try:
        request = (
            ccr() if code == Cmd.CREDIT_CONTROL else peer.request(code, [Avp.utf8(Code.ORIGIN_HOST, "x")])
        )
        peer.send(request)
        answer = peer.read()
        assert answer.code == code and answer.result_code == Result.UNKNOWN_PEER and answer.is_error
        assert peer.closed()
    finally:
        peer.close()


# --- silent connections, the cap -----------------------------------------------------------------------


def test_silent_connections_are_closed_after_the_cer_timeout() -> None:
    """200 connections that never send a CER (all 200 were still open after 35 s before)."""
    server = Dgw(cer_timeout=1.0)
    peers = [Peer(server.port) for _ in range(200)]
    try:
        started = time.monotonic()
        assert all(p.closed(within=10) for p in peers)
        assert 0.9 <= time.monotonic() - started < 8
        deadline = time.monotonic() + 5
        while server.connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.connections() == 0
        late = Peer(server.port)  # a peer that does send its CER in time is unaffected
        assert late.cer().result_code == Result.SUCCESS
        time.sleep(1.5)
        assert late.alive() == []
        late.close()
    finally:
        for p in peers:
            p.close()
        server.close()


def test_a_peer_that_stops_answering_dwrs_is_suspect_after_tw_and_closed_after_two() -> None:
    """RFC 3539 §3.4.1: a DWR unanswered for Tw makes the peer SUSPECT, and any message from it
    then makes it OKAY again; only a second Tw without one closes the connection. (It closed after
    one Tw before: a peer slow for a second lost its connection.)"""
    tw = 1.0
    server = Dgw(local=dataclasses.replace(DGW, watchdog_interval=tw))
    late, silent = Peer(server.port), Peer(server.port)
    try:
        assert late.cer().result_code == silent.cer().result_code == Result.SUCCESS
        first, dwr = late.read(), silent.read()  # each is sent a DWR after Tw of quiet
        assert first.code == dwr.code == Cmd.DEVICE_WATCHDOG and first.is_request and dwr.is_request
        assert not silent.closed(within=1.5 * tw)  # past Tw unanswered: suspect, not closed
        late.send(late.answer(first))  # the late peer answers now, in its SUSPECT time
        assert silent.closed(within=2 * tw)  # the silent one is closed after its second Tw
        again = late.read()  # the late one is OKAY: its next DWR comes after another Tw of quiet
        assert again.code == Cmd.DEVICE_WATCHDOG and again.is_request
        late.send(late.answer(again))
        assert late.alive() == []
    finally:
        late.close()
        silent.close()
        server.close()


def test_connections_over_the_cap_are_closed() -> None:
    server = Dgw(max_connections=5)
    peers = [Peer(server.port) for _ in range(5)]
    try:
        assert all(p.cer().result_code == Result.SUCCESS for p in peers)
        extra = Peer(server.port)
        assert extra.closed(within=5)
        extra.close()
        assert server.call(lambda: server.server.refused) == 1
        peers.pop().close()
        deadline = time.monotonic() + 5
        while server.connections() == 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        again = Peer(server.port)  # a freed slot is taken again
        peers.append(again)
        assert again.cer().result_code == Result.SUCCESS and again.alive() == []
    finally:
        for p in peers:
            p.close()
        server.close()


# --- backpressure --------------------------------------------------------------------------------------


def test_unread_answers_neither_grow_the_dgw_nor_stay_after_close() -> None:
    """A peer pipelines 30 MB of requests and reads none of the answers. Before, the DGW read them
    all and buffered every answer (20 MB that stayed after the close, as measured in the issue);
    now it stops reading above the write buffer's high-water mark, so the peer is held back by TCP
    and the DGW's traced memory stays small, and returns to where it was once the peer is gone."""
    server = Dgw()
    peer = Peer(server.port)
    assert peer.cer().result_code == Result.SUCCESS
    dwr = peer.dwr().encode()
    burst = dwr * (30_000_000 // len(dwr))
    sent = [0]

    def pipeline() -> None:
        sock = peer.sock
        sock.settimeout(3)  # the DGW stops reading: sendall blocks and times out
        view = memoryview(burst)
        try:
            while sent[0] < len(burst):
                sent[0] += sock.send(view[sent[0] : sent[0] + (1 << 20)])
        except (TimeoutError, OSError):
            pass

    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        pusher = threading.Thread(target=pipeline)
        pusher.start()
        pusher.join(60)
        assert not pusher.is_alive()
        buffered = server.call(
            lambda: sum(c.transport.get_write_buffer_size() for c in server.server.connections if c.transport)
        )
        peak = tracemalloc.get_traced_memory()[1] - baseline
        assert sent[0] < len(burst), "the DGW read the whole burst: no backpressure"
        assert buffered < 1 << 20, f"{buffered} bytes of answers buffered"
        assert peak < 8 << 20, f"traced peak grew by {peak / 1e6:.1f} MB"
        peer.close()
        deadline = time.monotonic() + 10
        while server.connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.connections() == 0
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] - baseline
        assert after < 1 << 20, f"{after / 1e6:.1f} MB still held after the close"
        log.info(
            "backpressure: %.1f of %.0f MB sent; traced peak +%.2f MB; +%.2f MB after the close",
            sent[0] / 1e6,
            len(burst) / 1e6,
            peak / 1e6,
            after / 1e6,
        )
    finally:
        tracemalloc.stop()
        server.close()


def test_a_peer_that_reads_late_gets_every_answer() -> None:
    """Pausing and resuming loses nothing: 100,000 pipelined DWRs, read only after the DGW has had
    to stop reading, are all answered, in order, on the one connection."""
    server = Dgw()
    peer = Peer(server.port, rcvbuf=1 << 16)
    try:
        assert peer.cer().result_code == Result.SUCCESS
        first = peer._hbh + 1
        burst = b"".join(peer.dwr().encode() for _ in range(100_000))
        pusher = threading.Thread(target=peer.sock.sendall, args=(burst,))
        pusher.start()
        deadline = time.monotonic() + 20  # until the buffers are full and the DGW pauses
        while not server.call(lambda: [c._reading_paused for c in server.server.connections]) == [True]:
            assert time.monotonic() < deadline, "the DGW never paused reading"
            time.sleep(0.05)
        for i in range(100_000):
            dwa = peer.read()
            assert dwa.hop_by_hop == first + i and dwa.result_code == Result.SUCCESS
        pusher.join(10)
        assert peer.alive() == []
    finally:
        peer.close()
        server.close()


@pytest.mark.parametrize("fast", [False, True])
async def test_a_failing_handler_or_answer_is_answered_5012_and_the_connection_lives(fast: bool) -> None:
    """The error path never raises: a handler that raises (at once or later) and an answer that cannot
    be encoded each get 5012 DIAMETER_UNABLE_TO_COMPLY, and the next request is served. So with a
    reader (the gateway's hot path) that raises, answers, or leaves a request to the handler."""
    from cellcelly.diameter.codec import decode
    from cellcelly.diameter.peer import PeerConnection, connect

    async def later(msg: Message) -> Message:
        await asyncio.sleep(0)
        if msg.hop_by_hop % 2:
            raise RuntimeError("the back end failed")
        return Message(msg.code, 0, msg.app, 1 << 40, msg.end_to_end)  # no 32-bit hop-by-hop: struct.error

    def handler(conn: PeerConnection, msg: Message) -> Any:
        kind = msg.find(Code.SESSION_ID).as_str()  # type: ignore[union-attr]
        if kind == "raise":
            raise RuntimeError("handler failed")
        if kind == "unencodable":
            return Message(msg.code, 0, msg.app, 1 << 40, msg.end_to_end)
        if kind == "later":
            return later(msg)
        return msg.answer([Avp.u32(Code.RESULT_CODE, Result.SUCCESS), *DGW.identity()])

    def reader(conn: PeerConnection, frame: bytes) -> Any:
        msg = decode(frame)
        kind = msg.find(Code.SESSION_ID).as_str()  # type: ignore[union-attr]
        if kind == "reader raises":
            raise RuntimeError("reader failed")
        return (msg, handler(conn, msg)) if kind == "read" else None

    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: PeerConnection(DGW, handler, cer_timeout=5, reader=reader if fast else None),
        "127.0.0.1",
        0,
    )
    port = listener.sockets[0].getsockname()[1]
    conn = await connect("127.0.0.1", port, LocalPeer(PEER_HOST, PEER_REALM))
    kinds = ["raise", "unencodable", "later", "later", "ok"]
    if fast:
        kinds += ["reader raises", "read", "ok"]
    try:
        for kind in kinds:
            request = Message(
                Cmd.CREDIT_CONTROL, FLAG_R, APP_CREDIT_CONTROL, avps=[Avp.utf8(Code.SESSION_ID, kind)]
            )
            answer = await conn.request(request)
            expected = Result.SUCCESS if kind in ("ok", "read") else Result.UNABLE_TO_COMPLY
            assert answer.result_code == expected, kind
    finally:
        await conn.disconnect()
        listener.close()
        await listener.wait_closed()
