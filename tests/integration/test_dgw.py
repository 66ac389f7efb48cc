"""The DGW end to end on 127.0.0.1: a Diameter client → DGW → OCS → embedded store.

The stack is the one `make run` starts (`EmbeddedStack`), on ephemeral ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gy_client import CLIENT, PEERS, answering, voice_ccr

from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.deploy.dgw import dgw_peer
from cellcelly.deploy.embedded import DEMO, EmbeddedStack, seed_demo
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import LocalOcs, WireOcs
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter import doic
from cellcelly.diameter.codec import Avp, Message, decode
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    CONTEXT_SMS,
    FLAG_E,
    FLAG_R,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
    Result,
)
from cellcelly.diameter.peer import LocalPeer, PeerConnection, connect
from cellcelly.domain.account import Status
from cellcelly.settings import Settings
from cellcelly_testing import running_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def stack(data_dir: Path) -> AsyncIterator[EmbeddedStack]:
    async with running_stack(data_dir, admin_token="t", dgw_allowed_peers=str(PEERS)) as running:
        yield running


def ccr(
    session: str,
    kind: int,
    number: int,
    *,
    msisdn: str | None = DEMO.msisdn,
    time_requested: int | None = 60,
    time_used: int = 0,
    **more: Any,
) -> Message:
    """A voice CCR for the demo subscriber: a minute asked for."""
    return voice_ccr(session, kind, number, msisdn, requested=time_requested, used=time_used, **more)


def mscc_of(answer: Message) -> Avp:
    found = answer.find(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert found is not None, answer
    return found


def granted_time(answer: Message) -> int:
    gsu = mscc_of(answer).find(Code.GRANTED_SERVICE_UNIT)
    assert gsu is not None and (t := gsu.find(Code.CC_TIME)) is not None
    return t.as_u32()


def voice_remaining(stack: EmbeddedStack) -> int:
    account = stack.backends.store.get(DEMO.msisdn)
    assert account is not None
    return next(b.remaining for b in account.buckets.values() if b.service.value == "voice")


async def test_a_call_is_charged_through_the_gateway(stack: EmbeddedStack, peer: PeerConnection) -> None:
    before = voice_remaining(stack)
    cca = await peer.request(ccr("gw;call;1", 1, 0, time_requested=120))
    assert cca.result_code == Result.SUCCESS and not cca.is_error
    assert cca.find(Code.CC_REQUEST_TYPE).as_i32() == 1  # type: ignore[union-attr]
    assert cca.find(Code.ORIGIN_HOST).as_str() == "dgw.cellcelly.local"  # type: ignore[union-attr]
    assert granted_time(cca) == 120
    assert mscc_of(cca).find(Code.VALIDITY_TIME) is not None
    cca = await peer.request(ccr("gw;call;1", 2, 1, time_requested=60, time_used=100))
    assert cca.result_code == Result.SUCCESS and granted_time(cca) == 60
    cca = await peer.request(ccr("gw;call;1", 3, 2, time_requested=None, time_used=40))
    assert cca.result_code == Result.SUCCESS
    assert voice_remaining(stack) == before - 140
    # the gateway runs in the stack's process (CELLCELLY_RUN_SPLIT=false): its figures are on the OCS's
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ocs_port}") as ocs:
        metrics = (await ocs.get("/metrics")).text
    assert "cellcelly_dgw_ccr_total 3.0" in metrics, metrics
    assert 'cellcelly_dgw_answers_total{result_code="2001"} 3.0' in metrics, metrics
    assert "cellcelly_dgw_sessions 0.0" in metrics, metrics  # the call ended


async def test_retransmissions_get_the_original_answer_and_charge_once(
    stack: EmbeddedStack, peer: PeerConnection
) -> None:
    await peer.request(ccr("gw;rt;1", 1, 0))
    update = ccr("gw;rt;1", 2, 1, time_used=60)
    first = await peer.request(update)
    after_first = voice_remaining(stack)
    again = await peer.retransmit(update)  # T flag, same identifiers
    assert again.hop_by_hop == update.hop_by_hop
    assert [a.encode() for a in again.avps] == [a.encode() for a in first.avps]
    # a duplicate with a new hop-by-hop id (another path), and two at once while in flight
    fresh = await peer.request(ccr("gw;rt;1", 2, 1, time_used=60))
    assert fresh.result_code == first.result_code
    both = await asyncio.gather(
        peer.request(ccr("gw;rt;1", 2, 2, time_used=30)), peer.request(ccr("gw;rt;1", 2, 2, time_used=30))
    )
    assert [a.avps[1].encode() for a in both][0] == [a.avps[1].encode() for a in both][1]
    assert voice_remaining(stack) == after_first - 30
    assert stack.gateway is not None and stack.gateway.stats.replayed >= 2


async def test_a_retransmission_to_another_gateway_gets_the_ocs_answer_charged_once(
    stack: EmbeddedStack, peer: PeerConnection
) -> None:
    """The client fails over to a second DGW in front of the same OCS (RFC 6733 §5.5.4: T flag,
    same identifiers). That gateway has never seen the request, so the answer must come from
    the OCS's own replay, not from a gateway's answer cache."""
    settings = stack.backends.settings
    local = dgw_peer(settings)
    second = Gateway(local, LocalOcs(stack.backends.charging))
    server = DgwServer.from_settings(settings, second, local)
    port = await server.start("127.0.0.1", 0)
    other = await connect("127.0.0.1", port, CLIENT)
    try:
        await peer.request(ccr("gw;fo-rt;1", 1, 0))
        update = ccr("gw;fo-rt;1", 2, 1, time_used=60)
        first = await peer.request(update)
        assert first.result_code == Result.SUCCESS
        charged = voice_remaining(stack)
        again = await other.retransmit(update)
        assert again.hop_by_hop == update.hop_by_hop
        assert [a.encode() for a in again.avps] == [a.encode() for a in first.avps]
        assert second.stats.replayed == 0 and second.stats.ccr == 1  # the OCS answered it
        assert voice_remaining(stack) == charged
        # and the session carries on through the second gateway
        cca = await other.request(ccr("gw;fo-rt;1", 3, 2, time_requested=None, time_used=30))
        assert cca.result_code == Result.SUCCESS
        assert voice_remaining(stack) == charged - 30
    finally:
        await other.disconnect()
        await server.stop()


async def test_a_retransmission_after_the_gateway_forgot_its_answer_is_charged_once(
    stack: EmbeddedStack, peer: PeerConnection
) -> None:
    """A retransmission that comes after the gateway's answer cache let the answer go gets the
    original answer from the OCS, and nothing is charged again."""
    gateway = stack.gateway
    assert gateway is not None
    gateway.retention = 0.2  # seconds the gateway keeps an answer
    await peer.request(ccr("gw;late-rt;1", 1, 0))
    update = ccr("gw;late-rt;1", 2, 1, time_used=60)
    first = await peer.request(update)
    assert first.result_code == Result.SUCCESS
    charged = voice_remaining(stack)
    await asyncio.sleep(0.3)
    replayed = gateway.stats.replayed
    again = await peer.retransmit(update)
    assert gateway.stats.replayed == replayed, "the gateway's cache answered; the OCS was not asked"
    assert [a.encode() for a in again.avps] == [a.encode() for a in first.avps]
    assert voice_remaining(stack) == charged


async def test_sms_event_and_unknown_subscriber_and_session(
    stack: EmbeddedStack, peer: PeerConnection
) -> None:
    sms = ccr("gw;sms;1", 4, 0, time_requested=None, context=CONTEXT_SMS)
    sms.avps[-2] = Avp.grouped(
        Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
        [
            Avp.u32(Code.RATING_GROUP, 2),
            Avp.grouped(Code.REQUESTED_SERVICE_UNIT, [Avp.u64(Code.CC_SERVICE_SPECIFIC_UNITS, 1)]),
        ],
    )
    sms.avps[-1] = Avp.grouped(
        Code3gpp.SERVICE_INFORMATION,
        [
            Avp.grouped(
                Code3gpp.SMS_INFORMATION,
                [
                    Avp.grouped(
                        Code3gpp.RECIPIENT_INFO,
                        [
                            Avp.grouped(
                                Code3gpp.RECIPIENT_ADDRESS,
                                [Avp.utf8(Code3gpp.ADDRESS_DATA, "4915112345678", VENDOR_3GPP)],
                                VENDOR_3GPP,
                            )
                        ],
                        VENDOR_3GPP,
                    )
                ],
                VENDOR_3GPP,
            )
        ],
        VENDOR_3GPP,
    )
    wallet = stack.backends.store.get(DEMO.msisdn).wallet  # type: ignore[union-attr]
    cca = await peer.request(sms)
    assert cca.result_code == Result.SUCCESS
    assert stack.backends.store.get(DEMO.msisdn).wallet == wallet - 400  # type: ignore[union-attr]
    cca = await peer.request(ccr("gw;nobody;1", 1, 0, msisdn="5000000001"))
    assert cca.result_code == Result.USER_UNKNOWN
    cca = await peer.request(ccr("gw;never-started", 2, 3))
    assert cca.result_code == Result.UNKNOWN_SESSION_ID


async def test_malformed_requests_are_answered_and_the_connection_stays(
    stack: EmbeddedStack, peer: PeerConnection
) -> None:
    # a missing mandatory AVP: 5005 with Failed-AVP
    bad = ccr("gw;bad;1", 1, 0)
    bad.avps = [a for a in bad.avps if a.code != Code.CC_REQUEST_NUMBER]
    answer = await peer.request(bad)
    assert answer.result_code == Result.MISSING_AVP
    failed = answer.find(Code.FAILED_AVP)
    assert failed is not None and failed.children and failed.children[0].code == Code.CC_REQUEST_NUMBER
    # an unknown IETF AVP with the M bit: 5001
    odd = ccr("gw;bad;2", 1, 0)
    odd.avps.append(Avp(99_999, data=b"\x00\x00\x00\x01"))
    assert (await peer.request(odd)).result_code == Result.AVP_UNSUPPORTED
    # an AVP whose length is wrong inside: 5014, the same hop-by-hop id, connection up
    raw = bytearray(ccr("gw;bad;3", 1, 0).encode())
    struct.pack_into("!I", raw, 12, 0xDEAD0001)  # hop-by-hop (header offset 12)
    struct.pack_into("!I", raw, 20 + 4, (0x40 << 24) | 4)  # first AVP claims 4 bytes
    reader_fut: asyncio.Future[Message] = peer._expect(0xDEAD0001)  # noqa: SLF001 - raw bytes on purpose
    assert peer.transport is not None
    peer.transport.write(bytes(raw))
    answer = await asyncio.wait_for(reader_fut, 5)
    assert answer.result_code == Result.INVALID_AVP_LENGTH
    # a command the gateway does not serve: 3001 with the E bit
    other = Message(
        Cmd.SESSION_TERMINATION,
        FLAG_R,
        APP_CREDIT_CONTROL,
        avps=[Avp.utf8(Code.SESSION_ID, "x"), *CLIENT.identity()],
    )
    answer = await peer.request(other)
    assert answer.result_code == Result.COMMAND_UNSUPPORTED and answer.flags & FLAG_E
    # and charging still works on the same connection
    assert (await peer.request(ccr("gw;after-bad", 1, 0))).result_code == Result.SUCCESS


async def test_rar_after_top_up_and_asr_after_suspension(stack: EmbeddedStack) -> None:
    received: list[Message] = []

    on_server_request = answering(received)

    conn = await connect("127.0.0.1", stack.dgw_port, CLIENT, on_server_request)
    try:
        accounts = stack.backends.accounts
        # drain the wallet-paid international minutes until the OCS cuts the call off
        cca = await conn.request(ccr("gw;cut;1", 1, 0, time_requested=3600, called="tel:+4930123456789"))
        number = 1
        while (
            not mscc_of(cca).find(Code.FINAL_UNIT_INDICATION)
            and mscc_of(cca).find(Code.RESULT_CODE).as_u32() == 2001
        ):  # type: ignore[union-attr]
            cca = await conn.request(
                ccr(
                    "gw;cut;1",
                    2,
                    number,
                    time_requested=3600,
                    time_used=granted_time(cca),
                    called="tel:+4930123456789",
                )
            )
            number += 1
        accounts.top_up(DEMO.msisdn, 1000, "rar-test")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
        assert [m.code for m in received] == [Cmd.RE_AUTH]
        assert received[0].session_id == "gw;cut;1"
        assert received[0].find(Code.RE_AUTH_REQUEST_TYPE).as_i32() == 0  # type: ignore[union-attr]

        await conn.request(ccr("gw;live;1", 1, 0))
        accounts.set_status(DEMO.msisdn, Status.SUSPENDED, "asr-test")
        for _ in range(100):
            if any(m.code == Cmd.ABORT_SESSION for m in received):
                break
            await asyncio.sleep(0.02)
        aborted = {m.session_id for m in received if m.code == Cmd.ABORT_SESSION}
        assert "gw;live;1" in aborted
    finally:
        await conn.disconnect()


async def test_unreachable_ocs_is_answered_3002_and_failover_uses_the_other(data_dir: Path) -> None:
    from cellcelly.ocs.wire import serve_wire

    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    key = "failover-test-key-0123456789"
    good = await serve_wire(components.charging, "127.0.0.1", 0, api_key=key)
    good_port = good.sockets[0].getsockname()[1]
    dead = await serve_wire(components.charging, "127.0.0.1", 0, api_key=key)
    dead_port = dead.sockets[0].getsockname()[1]
    dead.close()
    await dead.wait_closed()
    local = LocalPeer("dgw.test", "cellcelly.local")
    ocs = WireOcs(
        [("127.0.0.1", dead_port), ("127.0.0.1", good_port)], api_key=key, timeout=1.0, retry_after=30
    )
    server = DgwServer(Gateway(local, ocs), local, allowed=PEERS)
    port = await server.start("127.0.0.1", 0)
    conn = await connect("127.0.0.1", port, CLIENT)
    try:
        for i in range(4):
            answer = await conn.request(ccr(f"gw;fo;{i}", 1, 0))
            assert answer.result_code == Result.SUCCESS
        assert ocs.failovers >= 1
        good.close()
        await good.wait_closed()
        assert ocs.endpoints[1].conn is not None
        ocs.endpoints[1].close()
        answer = await conn.request(ccr("gw;fo;none", 1, 0))
        assert answer.result_code == Result.UNABLE_TO_DELIVER and answer.flags & FLAG_E
    finally:
        await conn.disconnect()
        await server.stop()
        await ocs.close()
        components.close()


class LateFor:
    """The real charging service, answering every request after a pause and chosen sessions later
    still: an OCS under load."""

    inline = False  # the wire awaits charge_async, one task a request, as on VoltDB

    def __init__(self, charging: Any, late: dict[str, float], pause: float) -> None:
        self.charging, self.late, self.pause = charging, late, pause

    async def charge_async(self, req: Any) -> Any:
        await asyncio.sleep(self.late.get(req.session_id, self.pause))
        return await self.charging.charge_async(req)


@contextlib.asynccontextmanager
async def gateway_before(
    charging: Any,
    key: str,
    *,
    gateway_key: str | None = None,
    overload_delay: float = 0.0,
    also: tuple[tuple[str, int], ...] = (),
    timeout: float = 5.0,
    retry_after: float = 30.0,
) -> AsyncIterator[tuple[PeerConnection, Gateway]]:
    """A client connected to a gateway (overload at `overload_delay` s, 0 off) whose OCS wire
    charges through `charging` (with `key`; the gateway shows `gateway_key`, the same by default),
    then the endpoints `also`."""
    from cellcelly.ocs.wire import serve_wire

    wire = await serve_wire(charging, "127.0.0.1", 0, api_key=key)
    local = LocalPeer("dgw.test", "cellcelly.local")
    endpoints = [("127.0.0.1", wire.sockets[0].getsockname()[1]), *also]
    ocs = WireOcs(endpoints, api_key=gateway_key or key, timeout=timeout, retry_after=retry_after)
    gateway = Gateway(local, ocs, overload_delay=overload_delay)
    server = DgwServer(gateway, local, allowed=PEERS)
    conn = await connect("127.0.0.1", await server.start("127.0.0.1", 0), CLIENT)
    try:
        yield conn, gateway
    finally:
        await conn.disconnect()
        await server.stop()
        await ocs.close()
        wire.close()
        await wire.wait_closed()


async def test_one_late_answer_does_not_fail_the_requests_in_flight_beside_it(data_dir: Path) -> None:
    """Under load one answer may miss the timeout while the others on the same connection come in
    time: only the late request goes elsewhere. Closing the connection on that timeout failed every
    request in flight on it over to the other OCS, SIGKILLed at the time in the stack-apart test,
    and they were answered 3002 (tests/integration/test_stack_apart.py, at load ~10)."""
    from cellcelly.ocs.wire import serve_wire

    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    key = "late-answer-test-key-0123456789"
    # 1.7 s of slack for each on-time answer: on a loaded CI machine one came more than 0.7 s late
    slow = LateFor(components.charging, {"gw;late": 3.5}, pause=0.3)
    dead = await serve_wire(components.charging, "127.0.0.1", 0, api_key=key)
    dead_port = dead.sockets[0].getsockname()[1]
    dead.close()
    await dead.wait_closed()
    try:
        async with gateway_before(slow, key, also=(("127.0.0.1", dead_port),), timeout=2.0) as (conn, _):
            late = asyncio.ensure_future(conn.request(ccr("gw;late", 1, 0)))
            on_time = []
            for i in range(30):  # answers keep coming while the late one waits: the connection lives
                on_time.append(asyncio.ensure_future(conn.request(ccr(f"gw;on-time;{i}", 1, 0))))
                await asyncio.sleep(0.1)
            answers = await asyncio.gather(*on_time)
            assert [a.result_code for a in answers] == [Result.SUCCESS] * 30
            # the late one timed out, and its only other OCS is down: the network's failure handling
            assert (await late).result_code == Result.UNABLE_TO_DELIVER
    finally:
        components.close()


OVERLOAD_KEY = "overload-test-key-0123456789"


def with_doic(msg: Message, understood: bool = True) -> Message:
    """The request as a client that understands DOIC's overload reports sends it."""
    if understood:
        msg.avps.append(doic.supported())
    return msg


async def test_behind_a_standing_queue_new_sessions_get_3004_and_sessions_under_way_go_on(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Overload (`dgw/overload.py`): an OCS answering everything 0.3 s late, six requests at a time,
    is a standing queue for a gateway whose limit is 0.1 s. New sessions and events are then
    answered 3004 at once, while the session under way is charged; once answers are quick again,
    new sessions are admitted, the refused one too when it is sent again (a 3004 is not kept as
    its answer)."""
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    caplog.set_level(logging.INFO, "cellcelly.dgw.overload")
    slow = LateFor(components.charging, {}, pause=0.3)
    stalls: list[float] = []  # lateness of the loop once the OCS is quick again (below)
    try:
        async with gateway_before(slow, OVERLOAD_KEY, overload_delay=0.1) as (
            conn,
            gateway,
        ):
            # a queue: sessions under way, their requests all waiting at once, round after round
            under_way = [f"gw;busy;{c}" for c in "acdfgh"]
            for number in range(3):
                kind = 1 if number == 0 else 2
                sent = [conn.request(ccr(sid, kind, number, time_used=10 * number)) for sid in under_way]
                assert {a.result_code for a in await asyncio.gather(*sent)} == {Result.SUCCESS}
            reports = []
            for session, kind, doic_client in (("gw;busy;b", 1, True), ("gw;busy;e", 4, False)):
                started = time.monotonic()
                refused = await conn.request(with_doic(ccr(session, kind, 0), doic_client))
                assert refused.result_code == Result.TOO_BUSY and refused.flags & FLAG_E
                assert refused.session_id == session
                assert time.monotonic() - started < 0.25  # at once: it did not wait for the OCS
                # DOIC (RFC 7683): a client that understands reports is told how much less to send
                assert (refused.find(Code.OC_SUPPORTED_FEATURES) is not None) is doic_client
                reports.append(doic.read_report(refused))
            assert reports[0] is not None and reports[0].reduction >= 10 and reports[0].validity == 10
            assert reports[1] is None  # nothing DOIC for a client that did not say it understands it
            assert gateway.stats.too_busy == 2
            # the session under way is charged, late as the OCS is
            assert (await conn.request(ccr("gw;busy;a", 2, 3, time_used=10))).result_code == Result.SUCCESS
            slow.pause = 0.0
            # The gateway also counts its own loop's lateness as queue (`dgw/overload.py`); here the
            # OCS and its commits share that loop, so a stalled commit (CI's background builds) is a
            # late window that rightly raises the reduction. Such stalls are recorded, not hidden:
            # a timer of the test's on the same loop sees what the gateway's sees.

            async def watch() -> None:
                while True:
                    due = time.monotonic() + 0.05
                    await asyncio.sleep(0.05)
                    if time.monotonic() - due >= 0.04:
                        stalls.append(time.monotonic() - due)

            watching = asyncio.create_task(watch())
            number, started = 4, time.monotonic()
            told: list[tuple[int, int]] = []  # (sequence, reduction) of each report
            # two windows of quick answers at least, then until a report asks for less than the first
            try:
                while time.monotonic() < started + 0.5 or told[-1][1] >= told[0][1]:
                    assert time.monotonic() < started + 5, (told, stalls)
                    answer = await conn.request(with_doic(ccr("gw;busy;a", 2, number, time_used=1)))
                    assert answer.result_code == Result.SUCCESS
                    report = doic.read_report(answer)
                    assert report is not None, told
                    told.append((report.sequence, report.reduction))
                    number += 1
            finally:
                watching.cancel()
            # the queue is gone: each report asks for less than the last (but after a stall of the
            # loop itself), and each change comes under a newer sequence number
            rises = [(a, b) for a, b in itertools.pairwise(told) if b[1] > a[1]]
            assert not rises or stalls, (told, stalls)
            assert all(b[0] > a[0] for a, b in itertools.pairwise(told) if b[1] != a[1]), told
            assert told[-1][1] < told[0][1] and told[-1][0] > told[0][0] >= reports[0].sequence
            assert (await conn.request(ccr("gw;busy;b", 1, 0))).result_code == Result.SUCCESS
            for session, n in (("gw;busy;a", number), ("gw;busy;b", 1)):
                assert (await conn.request(ccr(session, 3, n, time_used=1))).result_code == Result.SUCCESS
            assert gateway.stats.too_busy == 2
    finally:
        components.close()
    said = [r.getMessage() for r in caplog.records if r.name == "cellcelly.dgw.overload"]
    # one overload and its end; a stall of the loop after the end (recorded above) is rightly
    # another, and said so the same way (once in CI, behind the compiled build's background work)
    pair = [
        "overloaded: new sessions refused with 3004 DIAMETER_TOO_BUSY",
        "overload over: new sessions admitted",
    ]
    assert said == pair or (stalls and said == pair * (len(said) // 2)), (said, stalls)


class HeldOcs:
    """An OCS client that keeps each request until the test answers it."""

    def __init__(self) -> None:
        self.held: list[tuple[Any, Any]] = []

    async def charge(self, req: Any) -> Any:
        raise AssertionError("charge_soon takes every request here")

    def charge_soon(self, req: Any, done: Any) -> bool:
        self.held.append((req, done))
        return True

    async def close(self) -> None:
        return None


async def test_a_ccr_with_the_ocs_keeps_only_what_its_answer_is_made_from() -> None:
    """While the OCS charges a CCR the gateway holds the request for its answer; of its AVPs only
    Session-Id, Origin-Host/Realm, Proxy-Info and OC-Supported-Features live on (the collector walked
    all ~23 of each CCR under way), and the answer still carries what they give it."""
    from cellcelly.domain.charging import ChargeAnswer, ResultCode, ServiceResult

    local = LocalPeer("dgw.test", "cellcelly.local")
    ocs = HeldOcs()
    gateway = Gateway(local, ocs)
    conn = PeerConnection(local, gateway)
    proxy = Avp.grouped(
        Code.PROXY_INFO, [Avp.utf8(Code.PROXY_HOST, "dra.test"), Avp.octets(Code.PROXY_STATE, b"s1")]
    )
    request = with_doic(ccr("gw;held;1", 1, 0))
    request.avps.append(proxy)
    msg = decode(request.encode())  # as the peer hands it over: decoded from the wire
    before = len(msg.avps)
    pending = gateway(conn, msg)
    kept = [(a.code, a.vendor) for a in msg.avps]
    assert kept == [
        (int(code), 0)
        for code in (
            Code.SESSION_ID,
            Code.ORIGIN_HOST,
            Code.ORIGIN_REALM,
            Code.OC_SUPPORTED_FEATURES,
            Code.PROXY_INFO,
        )
    ], kept
    assert before > len(kept) + 3
    ((req, done),) = ocs.held
    assert (req.session_id, req.msisdn) == ("gw;held;1", DEMO.msisdn)
    done(
        ChargeAnswer(
            req.session_id,
            req.request_type,
            0,
            ResultCode.SUCCESS,
            (ServiceResult(1, ResultCode.SUCCESS, 60),),
        ),
        None,
    )
    assert isinstance(pending, asyncio.Future)
    answer = decode(await pending)
    assert (answer.session_id, answer.result_code) == ("gw;held;1", Result.SUCCESS)
    assert [a.encode() for a in answer.find_all(Code.PROXY_INFO)] == [proxy.encode()]
    assert answer.find(Code.OC_SUPPORTED_FEATURES) is not None
    assert gateway.sessions["gw;held;1"].client_host == CLIENT.origin_host  # Origin-Host, kept


async def test_the_traffic_generator_holds_back_what_an_overloaded_gateway_reports(data_dir: Path) -> None:
    """DOIC (RFC 7683) end to end over the wire: behind an OCS answering 0.3 s late, the gateway
    reports its overload to `cellcelly traffic`'s generator, which then holds back new sessions
    (abated) beside those the gateway refuses with 3004; every session started runs to its end."""
    from cellcelly.traffic.generator import TrafficConfig, run_traffic

    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    slow = LateFor(components.charging, {}, pause=0.3)
    try:
        async with gateway_before(slow, OVERLOAD_KEY, overload_delay=0.1) as (conn, gateway):
            assert conn.transport is not None
            port = conn.transport.get_extra_info("peername")[1]
            config = TrafficConfig(
                port=port,
                rate=100.0,
                duration=2.5,
                connections=1,
                subscribers=1,
                first_msisdn=int(DEMO.msisdn),
                origin_host="traffic.test.local",
                origin_realm="test.local",
                max_in_flight=10_000,  # nothing shed: what is not sent is the gateway's doing
            )
            report = await run_traffic(config)
    finally:
        components.close()
    assert (report.timeouts, report.errors, report.sessions_aborted) == (0, 0, 0)
    assert report.sessions_abated > 0, report.render()
    assert report.sessions_started + report.sessions_abated == 250
    assert report.result_counts.get(Result.TOO_BUSY, 0) == gateway.stats.too_busy
    assert report.sessions_completed == report.sessions_started


async def test_one_stuck_request_does_not_make_the_gateway_refuse_new_sessions(data_dir: Path) -> None:
    """A request the OCS holds for 1.5 s while it answers the others at once is no queue: every
    new session meanwhile is admitted (CoDel's rule: the fastest answer of a window counts)."""
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    slow = LateFor(components.charging, {"gw;stuck": 1.5}, pause=0.0)
    try:
        async with gateway_before(slow, OVERLOAD_KEY, overload_delay=0.1) as (
            conn,
            gateway,
        ):
            stuck = asyncio.ensure_future(conn.request(ccr("gw;stuck", 1, 0)))
            for i in range(25):  # over a second: five windows while the stuck one waits
                answer = await conn.request(ccr(f"gw;free;{i}", 1, 0))
                assert answer.result_code == Result.SUCCESS
                await asyncio.sleep(0.04)
            assert (await stuck).result_code == Result.SUCCESS
            assert gateway.stats.too_busy == 0 and not gateway.overload.overloaded
    finally:
        components.close()


async def test_a_gateway_with_the_wrong_key_cannot_charge(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The OCS wire needs CELLCELLY_OCS_API_KEY: a DGW with another key gets every CCR answered 3002
    (the network's credit-control failure handling), says why in its log, and nothing is charged."""
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    before = voice_remaining_of(components)
    try:
        async with gateway_before(
            components.charging, "the-ocs-key-0123456789", gateway_key="another-key-0123456789"
        ) as (conn, _):
            for i in range(3):
                answer = await conn.request(ccr(f"gw;badkey;{i}", 1, 0, time_requested=120))
                assert answer.result_code == Result.UNABLE_TO_DELIVER and answer.flags & FLAG_E
        assert voice_remaining_of(components) == before
        account = components.store.get(DEMO.msisdn)
        assert account is not None and not account.sessions
        assert "OCS refused this gateway's key" in caplog.text
        assert "another-key" not in caplog.text and "the-ocs-key" not in caplog.text
    finally:
        components.close()


def voice_remaining_of(components: Backends) -> int:
    account = components.store.get(DEMO.msisdn)
    assert account is not None
    return next(b.remaining for b in account.buckets.values() if b.service.value == "voice")


def test_decoding_of_what_the_gateway_sends_is_clean() -> None:
    """Our own codec reads back every CCA shape we build (tshark checks the wire in its own test)."""
    from cellcelly.dgw.gy import build_cca, parse_ccr
    from cellcelly.domain.charging import ChargeAnswer, ResultCode, ServiceResult

    request = ccr("gw;shape", 1, 0)
    req, _ = parse_ccr(decode(request.encode()))
    answer = ChargeAnswer(
        req.session_id,
        req.request_type,
        0,
        ResultCode.SUCCESS,
        (ServiceResult(1, ResultCode.SUCCESS, 60, 600, True),),
    )
    cca = decode(build_cca(request, req, answer, LocalPeer("h", "r")).encode())
    fui = mscc_of(cca).find(Code.FINAL_UNIT_INDICATION)
    assert fui is not None and fui.find(Code.FINAL_UNIT_ACTION).as_i32() == 0  # type: ignore[union-attr]
    assert req.location == "90" and req.services[0].destination == "905551112233"


async def test_hostile_bytes_never_take_the_gateway_or_other_peers_down(stack: EmbeddedStack) -> None:
    """Random, truncated and mutated frames on some connections; a well-behaved peer's session on
    another connection carries on, and the gateway keeps accepting new peers."""
    import random

    rng = random.Random(7)
    good = await connect("127.0.0.1", stack.dgw_port, CLIENT)
    try:
        assert (await good.request(ccr("gw;steady", 1, 0))).result_code == Result.SUCCESS
        valid = ccr("gw;fuzz", 1, 0).encode()
        for round_ in range(40):
            reader, writer = await asyncio.open_connection("127.0.0.1", stack.dgw_port)
            cer = Message(Cmd.CAPABILITIES_EXCHANGE, FLAG_R, 0, 1, 1, CLIENT.capabilities()).encode()
            kind = round_ % 4
            if kind == 0:  # pure noise
                payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
            elif kind == 1:  # a valid CCR cut short, then the connection closes
                payload = cer + valid[: rng.randint(1, len(valid) - 1)]
            elif kind == 2:  # single-byte mutations inside the AVPs of a well-framed CCR
                mutated = bytearray(valid)
                for _ in range(rng.randint(1, 8)):
                    mutated[rng.randint(20, len(mutated) - 1)] = rng.getrandbits(8)
                payload = cer + bytes(mutated)
            else:  # a frame claiming to be huge
                payload = cer + b"\x01\xff\xff\xff" + bytes(60)
            writer.write(payload)
            await writer.drain()
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(65536), 0.2)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            number = round_ + 1
            answer = await good.request(ccr("gw;steady", 2, number, time_used=1))
            assert answer.result_code == Result.SUCCESS, f"round {round_}: {answer}"
        # the listener still takes new peers, and the steady session ends normally
        late = await connect("127.0.0.1", stack.dgw_port, CLIENT)
        await late.disconnect()
        assert (await good.request(ccr("gw;steady", 3, 41, time_used=1))).result_code == Result.SUCCESS
    finally:
        await good.disconnect()
