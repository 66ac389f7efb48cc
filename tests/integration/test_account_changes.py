"""Account changes reach the DGW that holds the session, whichever process made them (issue 14,
item 1): RAR after a top-up, ASR after a suspension, caches forgetting a changed subscriber.

The cross-process test runs on a real Apache Kafka 4.4 and a real VoltDB 10.1.1. What would be
separate processes are separate objects on separate clients in one process, none holding a
reference to another: an OCS (its own VoltDB client, serving its wire transport), two DGWs (each
its own Kafka client and tail, its own cache over its own VoltDB client, charging over the OCS's
wire), and the MW's account path (an AccountService on a third VoltDB client, whose outbox relay
publishes to Kafka). Nothing but the bus carries a change from the MW's AccountService to a DGW.
Skipped where Kafka or VoltDB cannot run; a failure under CI=true.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from gy_client import CLIENT, PEERS, cut_off, granted_seconds, voice_ccr

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.adapters.cache_embedded import EmbeddedCache
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.changes import ChangeFollower
from cellcelly.application.charging import ChargingService
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import WireOcs
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.codec import Avp, Message
from cellcelly.diameter.constants import (
    Cmd,
    Code,
    Result,
)
from cellcelly.diameter.peer import LocalPeer, PeerConnection, connect
from cellcelly.domain.account import Status
from cellcelly.ocs.wire import serve_wire
from cellcelly.ports.balance_store import BalanceStore
from cellcelly.ports.cache import SubscriberInfo
from cellcelly.ports.event_bus import LEDGER, EventBus, Outgoing
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly_dev.devservers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

log = logging.getLogger(__name__)

KEY = "account-changes-test-key-0123456789"
MSISDN = "5340000001"
CATALOGUE = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
BOUND = 5.0  # seconds from a committed change to the DGW's request at the client, at most


def subscriber(msisdn: str) -> SubscriberRecord:
    return SubscriberRecord(msisdn, "Ömer", "Şahin", f"{msisdn}@example.com", "active", "")


# --- the kinds a follower tells are the kinds AccountService's listeners hear ----------------------


async def test_the_follower_tells_what_account_service_listeners_hear(tmp_path: Path) -> None:
    """Every way an account changes (sign-up, top-up, a voucher's held top-up, package, suspension,
    resumption), relayed through the outbox to a real bus: the follower in "another process" is told
    the same (kind, msisdn) in the same order as the listener in the process that made the change.
    A record that is not an event, and a handler that raises, stop nothing."""
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    records = SqlRecords(f"sqlite:///{tmp_path / 'records.db'}")
    records.migrate()
    bus = EmbeddedBus(tmp_path / "bus")
    accounts = AccountService(store, records, CATALOGUE)
    heard: list[tuple[str, str]] = []
    accounts.listeners.append(lambda kind, msisdn: heard.append((kind, msisdn)))
    told: list[tuple[str, str]] = []

    def broken(kind: str, msisdn: str) -> None:
        raise RuntimeError("a handler that fails")

    follower = ChangeFollower(EmbeddedBus(tmp_path / "bus"), [broken, lambda k, m: told.append((k, m))])
    await follower.tail.start()
    relay = OutboxRelay(store, bus)
    try:
        accounts.open(subscriber(MSISDN))
        accounts.top_up(MSISDN, 1000, "mw-topup")
        await bus.publish([Outgoing(LEDGER, MSISDN, b"{not an event"), Outgoing(LEDGER, MSISDN, b"[]")])
        # the voucher path (SelfCare.redeem_voucher): a held top-up, its reference released, then told
        accounts.top_up(MSISDN, 2500, "voucher:0123", hold=True, notify=False)
        accounts.release_reference(MSISDN, "voucher:0123")
        accounts.notify("topup", MSISDN)
        package = next(iter(CATALOGUE.current.packages))
        accounts.buy_package(MSISDN, package, "mw-package")
        accounts.set_status(MSISDN, Status.SUSPENDED, "admin-suspend")
        accounts.set_status(MSISDN, Status.ACTIVE, "admin-resume")
        while await relay.relay_once():
            pass
        deadline = time.monotonic() + 10
        while len(told) < len(heard) and time.monotonic() < deadline:
            await follower.follow_once(timeout=0.2)
        assert heard == [
            ("opened", MSISDN),
            ("topup", MSISDN),
            ("topup", MSISDN),
            ("package", MSISDN),
            ("suspended", MSISDN),
            ("active", MSISDN),
        ]
        assert told == heard
        assert follower.stats.skipped == 2
        assert follower.stats.handler_failures == len(heard)
    finally:
        await follower.close()
        await bus.close()
        records.close()
        store.close()


async def test_an_event_delivered_twice_is_told_once(tmp_path: Path) -> None:
    """Two OCS replicas' relays may both publish a batch before either acknowledges it: the
    repeat tells the handlers nothing (else a suspension would send a second ASR)."""
    bus = EmbeddedBus(tmp_path / "bus")
    told: list[tuple[str, str]] = []
    follower = ChangeFollower(bus, [lambda k, m: told.append((k, m))], remember=2)
    await follower.tail.start()

    def status(event_id: str, to: str) -> Outgoing:
        event = {"type": "ledger", "event_id": event_id, "kind": "status", "msisdn": MSISDN, "status": to}
        return Outgoing(LEDGER, MSISDN, orjson.dumps(event))

    try:
        await bus.publish([status("e1", "suspended"), status("e1", "suspended"), status("e2", "active")])
        await bus.publish([status("e2", "active"), status("e3", "suspended"), status("e4", "active")])
        await bus.publish([status("e1", "suspended")])  # forgotten by now (remember=2): told again
        deadline = time.monotonic() + 10
        while follower.stats.records < 7 and time.monotonic() < deadline:
            await follower.follow_once(timeout=0.2)
        assert told == [(s, MSISDN) for s in ("suspended", "active", "suspended", "active", "suspended")]
        assert follower.stats.duplicates == 2
    finally:
        await follower.close()
        await bus.close()


# --- across processes, on Kafka and VoltDB -------------------------------------------------------------


def volt(servers: str) -> BalanceStore:
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore

    return VoltBalanceStore(servers)


@dataclass
class Client:
    """The network's side: a Gy client connected to one DGW, answering RAR/ASR with 2001 and
    keeping what it was asked, with when."""

    conn: PeerConnection | None = None
    asked: list[tuple[float, Message]] = field(default_factory=list)

    def on_request(self, conn: PeerConnection, msg: Message) -> Message:
        self.asked.append((time.monotonic(), msg))
        sid = msg.find(Code.SESSION_ID)
        assert sid is not None
        return msg.answer([sid, Avp.u32(Code.RESULT_CODE, 2001), *CLIENT.identity()])

    async def request(self, msg: Message) -> Message:
        assert self.conn is not None
        return await self.conn.request(msg)

    async def asked_for(self, code: int, since: float, bound: float = BOUND) -> list[Message]:
        deadline = since + bound
        while time.monotonic() < deadline:
            found = [m for at, m in self.asked if m.code == code]
            if found:
                return found
            await asyncio.sleep(0.01)
        return []


@dataclass
class Dgw:
    gateway: Gateway
    follower: ChangeFollower
    port: int


def ccr(session: str, kind: int, number: int, *, used: int = 0, requested: int = 3600) -> Message:
    """An international call (paid from the wallet, so a small wallet cuts it off)."""
    return voice_ccr(
        session, kind, number, MSISDN, used=used, requested=requested, called="tel:+4930123456789"
    )


async def start_dgw(stack: AsyncExitStack, name: str, kafka: str, voltdb: str, wire_port: int) -> Dgw:
    """One DGW process: its own bus client and tail, a cache over its own store client."""
    from cellcelly.adapters.bus_kafka import KafkaBus

    lookups = volt(voltdb)
    stack.callback(lookups.close)

    def lookup(msisdn: str) -> SubscriberInfo | None:
        account = lookups.get(msisdn)
        return None if account is None else SubscriberInfo(msisdn, account.status.value)

    async def lookup_async(msisdn: str) -> SubscriberInfo | None:  # what the gateway's loop uses
        account = await lookups.get_async(msisdn)
        return None if account is None else SubscriberInfo(msisdn, account.status.value)

    # unknown MSISDNs cached far longer than the test: only an invalidation makes a sign-up known
    cache = EmbeddedCache(lookup, aloader=lookup_async, negative_ttl=600)
    local = LocalPeer(f"{name}.cellcelly.local", "cellcelly.local")
    ocs = WireOcs([("127.0.0.1", wire_port)], api_key=KEY)
    stack.push_async_callback(ocs.close)
    gateway = Gateway(local, ocs, cache)
    stack.push_async_callback(gateway.close)
    server = DgwServer(gateway, local, allowed=PEERS)
    port = await server.start("127.0.0.1", 0)
    stack.push_async_callback(server.stop)
    bus: EventBus = KafkaBus(kafka, client_id=name)
    stack.push_async_callback(bus.close)
    follower = ChangeFollower(bus, [gateway.account_changed])
    await follower.tail.start()
    task = asyncio.ensure_future(follower.run())

    async def stop_following() -> None:
        follower.stop()
        await task
        await follower.close()

    stack.push_async_callback(stop_following)
    return Dgw(gateway, follower, port)


async def ocs_and_mw(
    stack: AsyncExitStack, kafka: str, voltdb: str, tmp_path: Path
) -> tuple[AccountService, int]:
    """The OCS (its wire on its own store client) and the MW's account path (an AccountService on
    another client, its outbox relayed to Kafka): (that AccountService, the OCS wire's port)."""
    from cellcelly.adapters.bus_kafka import KafkaBus

    ocs_store = volt(voltdb)
    stack.callback(ocs_store.close)
    wire = await serve_wire(ChargingService(ocs_store, CATALOGUE), "127.0.0.1", 0, api_key=KEY)
    stack.push_async_callback(wire.wait_closed)
    stack.callback(wire.close)
    mw_store = volt(voltdb)
    stack.callback(mw_store.close)
    records = SqlRecords(f"sqlite:///{tmp_path / 'records.db'}")
    stack.callback(records.close)
    records.migrate()
    mw_bus = KafkaBus(kafka, client_id="mw")
    stack.push_async_callback(mw_bus.close)
    relay = OutboxRelay(mw_store, mw_bus, idle=0.02)
    relaying = asyncio.ensure_future(relay.run())

    async def stop_relay() -> None:
        relay.stop()
        await relaying

    stack.push_async_callback(stop_relay)
    return AccountService(mw_store, records, CATALOGUE), int(wire.sockets[0].getsockname()[1])


async def until_following(kafka: str, *followers: ChangeFollower) -> None:
    """Until a record published now reaches every follower: the ledger topic's leaders are elected
    and the tails are reading (a fresh broker takes seconds for a new topic, not part of the bound)."""
    from cellcelly.adapters.bus_kafka import KafkaBus

    probe = KafkaBus(kafka, client_id="probe")
    try:
        before = [f.stats.records for f in followers]
        await probe.publish([Outgoing(LEDGER, "0", b'{"kind": "probe", "msisdn": "0"}')])
        deadline = time.monotonic() + 60
        while any(f.stats.records == n for f, n in zip(followers, before, strict=True)):
            assert time.monotonic() < deadline, "the followers never read the probe"
            await asyncio.sleep(0.05)
    finally:
        await probe.close()


async def cut_off_call(client: Client, session: str, answer: Message) -> tuple[Message, int]:
    """Go on with an answered CCR-I until the OCS cuts the call off: (last answer, next number)."""
    number = 1
    while not cut_off(answer):
        answer = await client.request(ccr(session, 2, number, used=granted_seconds(answer)))
        number += 1
    return answer, number


async def test_changes_by_another_process_reach_only_the_dgw_holding_the_session(
    kafka_bootstrap: str, voltdb: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        accounts, wire_port = await ocs_and_mw(stack, kafka_bootstrap, voltdb, tmp_path)
        # two DGWs; the client's sessions are all on the first
        one = await start_dgw(stack, "dgw-1", kafka_bootstrap, voltdb, wire_port)
        two = await start_dgw(stack, "dgw-2", kafka_bootstrap, voltdb, wire_port)
        holder, bystander = Client(), Client()
        holder.conn = await connect("127.0.0.1", one.port, CLIENT, holder.on_request)
        stack.push_async_callback(holder.conn.disconnect)
        bystander.conn = await connect("127.0.0.1", two.port, CLIENT, bystander.on_request)
        stack.push_async_callback(bystander.conn.disconnect)
        await until_following(kafka_bootstrap, one.follower, two.follower)

        # not signed up yet: unknown, and the DGW's cache keeps that for 10 minutes ...
        assert (await holder.request(ccr("x;early", 1, 0))).result_code == Result.USER_UNKNOWN
        accounts.open(subscriber(MSISDN))
        # ... unless it hears of the sign-up
        deadline = time.monotonic() + BOUND
        while (answer := await holder.request(ccr("x;cut", 1, 0))).result_code != Result.SUCCESS:
            assert time.monotonic() < deadline, f"the sign-up never reached the DGW's cache: {answer}"
            await asyncio.sleep(0.05)

        # drain the wallet on the first DGW until the OCS cuts the call off
        answer, number = await cut_off_call(holder, "x;cut", answer)
        assert one.gateway.sessions["x;cut"].cut_off

        began = time.monotonic()
        accounts.top_up(MSISDN, 5000, "mw-topup-1")  # the MW's path: no listener in any DGW
        rars = await holder.asked_for(Cmd.RE_AUTH, began)
        assert [m.session_id for m in rars] == ["x;cut"], "one RAR, to the client holding the session"
        rar_latency = next(at for at, m in holder.asked if m.code == Cmd.RE_AUTH) - began
        # the client asks again, and is granted what the top-up pays for
        answer = await holder.request(ccr("x;cut", 2, number, used=granted_seconds(answer)))
        assert answer.result_code == Result.SUCCESS and granted_seconds(answer) > 0

        began = time.monotonic()
        accounts.set_status(MSISDN, Status.SUSPENDED, "admin-suspend")
        asrs = await holder.asked_for(Cmd.ABORT_SESSION, began)
        assert [m.session_id for m in asrs] == ["x;cut"]
        asr_latency = next(at for at, m in holder.asked if m.code == Cmd.ABORT_SESSION) - began

        # the second DGW heard every change too, and had nothing to send
        deadline = time.monotonic() + BOUND
        while two.follower.stats.changes < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert two.follower.stats.changes == one.follower.stats.changes == 3  # opened, topup, suspended
        assert bystander.asked == []
        assert (two.gateway.stats.rar_sent, two.gateway.stats.asr_sent) == (0, 0)
        assert (one.gateway.stats.rar_sent, one.gateway.stats.asr_sent) == (1, 1)
        log.info("RAR %.0f ms, ASR %.0f ms after the change", rar_latency * 1000, asr_latency * 1000)


async def test_a_cellcelly_dgw_process_sends_rar_and_asr_for_changes_made_elsewhere(
    kafka_bootstrap: str, voltdb: str, tmp_path: Path
) -> None:
    """`cellcelly dgw` as its own process, configured as the operator configures it (the bus by
    CELLCELLY_EVENT_BUS): a top-up and a suspension by the MW's AccountService in this process
    reach it over Kafka only, and it sends the RAR and the ASR to the client holding the session."""
    async with AsyncExitStack() as stack:
        accounts, wire_port = await ocs_and_mw(stack, kafka_bootstrap, voltdb, tmp_path)
        port, log_path = free_port(), tmp_path / "dgw.log"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "CELLCELLY_DATA_DIR": str(tmp_path / "dgw-data"),
            "CELLCELLY_EVENT_BUS": "kafka",
            "CELLCELLY_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CELLCELLY_DGW_HOST": "127.0.0.1",
            "CELLCELLY_DGW_PORT": str(port),
            "CELLCELLY_DGW_OCS_ENDPOINTS": f"127.0.0.1:{wire_port}",
            "CELLCELLY_OCS_API_KEY": KEY,
            "CELLCELLY_DGW_ALLOWED_PEERS": str(PEERS),
            "CELLCELLY_LOG_LEVEL": "INFO",
        }
        with log_path.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cellcelly.cli", "dgw", env=env, stdout=out, stderr=out
            )

        async def stop_process() -> None:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()

        stack.push_async_callback(stop_process)
        # serving, and following the ledger (so every change from now on reaches it)
        deadline = time.monotonic() + 60
        while "account changes: following" not in log_path.read_text(errors="replace"):
            assert process.returncode is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            await asyncio.sleep(0.1)
        holder = Client()
        holder.conn = await connect("127.0.0.1", port, CLIENT, holder.on_request)
        stack.push_async_callback(holder.conn.disconnect)

        accounts.open(subscriber(MSISDN))
        answer = await holder.request(ccr("p;cut", 1, 0))
        assert answer.result_code == Result.SUCCESS
        answer, number = await cut_off_call(holder, "p;cut", answer)

        began = time.monotonic()
        accounts.top_up(MSISDN, 5000, "mw-topup-p")
        assert [m.session_id for m in await holder.asked_for(Cmd.RE_AUTH, began)] == ["p;cut"]
        answer = await holder.request(ccr("p;cut", 2, number, used=granted_seconds(answer)))
        assert answer.result_code == Result.SUCCESS and granted_seconds(answer) > 0

        began = time.monotonic()
        accounts.set_status(MSISDN, Status.SUSPENDED, "admin-suspend-p")
        assert [m.session_id for m in await holder.asked_for(Cmd.ABORT_SESSION, began)] == ["p;cut"]
