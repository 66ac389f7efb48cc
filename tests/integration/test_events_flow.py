"""Charging → outbox → relay → event bus → SF → system of record (SQLite and a real PostgreSQL).

The embedded bus here; the Kafka adapter has its own tests against a real broker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.charging import ChargeRequest, RequestType, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.ports.event_bus import DEAD_LETTER, USAGE, Outgoing
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly.sf.sync import SyncFunction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SUBSCRIBERS = [f"53300000{i:02d}" for i in range(20)]


def charge_traffic(charging: ChargingService, sessions: int) -> None:
    for i in range(sessions):
        msisdn = SUBSCRIBERS[i % len(SUBSCRIBERS)]
        sid = f"flow-{i}"
        if i % 3 == 2:
            charging.charge(
                ChargeRequest(
                    sid, RequestType.EVENT, 0, msisdn, (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),)
                )
            )
            continue
        voice = (ServiceUsage(1, Service.VOICE, 60, 0, "905551112233"),)
        charging.charge(ChargeRequest(sid, RequestType.INITIAL, 0, msisdn, voice))
        used = (ServiceUsage(1, Service.VOICE, 60, 45, "905551112233"),)
        charging.charge(ChargeRequest(sid, RequestType.UPDATE, 1, msisdn, used))
        end = (ServiceUsage(1, Service.VOICE, 0, 20, "905551112233"),)
        charging.charge(ChargeRequest(sid, RequestType.TERMINATE, 2, msisdn, end))


@pytest.fixture
def world(tmp_path: Path, records: SqlRecords) -> tuple[EmbeddedBalanceStore, ChargingService, EmbeddedBus]:
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    accounts = AccountService(store, records, catalogue)
    for msisdn in SUBSCRIBERS:
        accounts.open(SubscriberRecord(msisdn, "Şule", "Güneş", f"{msisdn}@example.com", "active", "ANKARA"))
    return store, ChargingService(store, catalogue), EmbeddedBus(tmp_path / "bus")


def bus_events(bus: EmbeddedBus) -> list[dict[str, object]]:
    """Every usage event on the bus, read by a group of its own."""
    reader = bus.consumer("inspector", [USAGE])
    records = reader._take(10**6)
    return [orjson.loads(r.value) for r in records]


def debits_in(store_events: list[dict[str, object]]) -> set[str]:
    return {str(e["event_id"]) for e in store_events if e["type"] == "usage"}


async def drain(relay: OutboxRelay, sf: SyncFunction) -> None:
    while await relay.relay_once():
        pass
    while await sf.sync_once(timeout=0.05):
        pass


async def test_every_debit_lands_once_in_the_system_of_record(world, records: SqlRecords) -> None:  # type: ignore[no-untyped-def]
    store, charging, bus = world
    charge_traffic(charging, 60)
    expected = debits_in([e.event for e in store.outbox(limit=10**6)])
    relay, sf = OutboxRelay(store, bus), SyncFunction(bus, records)
    await drain(relay, sf)
    assert store.outbox() == []  # acknowledged once the bus had them
    written = {e.event_id for m in SUBSCRIBERS for e in records.usage_for(m, limit=10_000)}
    assert written == expected and len(expected) == 100  # 40 calls x (U, T) + 20 SMS
    assert sf.stats.usage_written == 100 and sf.stats.ledger_written == len(SUBSCRIBERS)
    assert await sf.consumer.lag() == 0
    # the record's wallet and the SF's snapshot agree with the real-time one, subscriber by subscriber
    for msisdn in SUBSCRIBERS:
        assert records.wallet_balance(msisdn) == store.get(msisdn).wallet  # type: ignore[union-attr]
        snapshot = records.balance_snapshot(msisdn)
        assert snapshot is not None and snapshot.wallet == store.get(msisdn).wallet  # type: ignore[union-attr]
    await sf.close()


async def test_sf_killed_between_the_database_and_the_commit_doubles_nothing(
    world, records: SqlRecords
) -> None:  # type: ignore[no-untyped-def]
    store, charging, bus = world
    charge_traffic(charging, 30)
    relay = OutboxRelay(store, bus)
    while await relay.relay_once():
        pass
    first = SyncFunction(bus, records)

    async def crash(_records: object) -> None:
        raise RuntimeError("killed after the database commit, before the offset commit")

    first.consumer.commit = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await first.sync_once()
    assert first.stats.usage_written > 0
    await first.consumer.close()
    second = SyncFunction(bus, records)  # a new process of the same group: re-delivery
    while await second.sync_once(timeout=0.05):
        pass
    assert second.stats.duplicates >= first.stats.usage_written
    total = sum(len(records.usage_for(m, limit=10_000)) for m in SUBSCRIBERS)
    assert total == 50 == first.stats.usage_written + second.stats.usage_written
    await second.close()


class FlakyRecords:
    """The system of record, down for the first `failures` usage writes (then itself again)."""

    def __init__(self, records: SqlRecords, failures: int) -> None:
        self.records, self.failures = records, failures

    def record_usage(self, events: object) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database down")
        return self.records.record_usage(events)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.records, name)


async def test_batches_after_a_failed_write_never_commit_past_it(world, records: SqlRecords) -> None:  # type: ignore[no-untyped-def]
    """The pipelined loop (`run`) with small batches: a write fails while the next batch has
    already been polled. Without the rewind, the next batch's commit would pass the failed one."""
    store, charging, bus = world
    charge_traffic(charging, 60)
    relay = OutboxRelay(store, bus)
    while await relay.relay_once():
        pass
    flaky = FlakyRecords(records, failures=2)
    sf = SyncFunction(bus, flaky, batch=7)  # type: ignore[arg-type]
    task = asyncio.ensure_future(sf.run())
    deadline = asyncio.get_running_loop().time() + 30
    while (sf.stats.usage_written < 100 or sf.stats.ledger_written < 20) and (
        asyncio.get_running_loop().time() < deadline
    ):
        await asyncio.sleep(0.05)
    sf.stop()
    await task
    assert flaky.failures == 0  # both failures happened
    written = {e.event_id for m in SUBSCRIBERS for e in records.usage_for(m, limit=10_000)}
    assert written == debits_in(bus_events(bus))
    assert len(written) == 100 and sf.stats.usage_written == 100
    assert await sf.consumer.lag() == 0  # stopping finished the batch in flight, commit included
    await sf.close()


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    world,
    records: SqlRecords,  # type: ignore[no-untyped-def]
) -> None:
    store, charging, bus = world
    await bus.publish([Outgoing(USAGE, SUBSCRIBERS[0], b"{not an event")])
    charge_traffic(charging, 3)
    relay, sf = OutboxRelay(store, bus), SyncFunction(bus, records)
    await drain(relay, sf)
    assert sf.stats.dead_lettered == 1
    assert sum(len(records.usage_for(m, limit=100)) for m in SUBSCRIBERS) == 5
    dlq = bus.consumer("inspector", [DEAD_LETTER])
    letters = await dlq.poll(10, timeout=0.1)
    assert len(letters) == 1
    envelope = orjson.loads(letters[0].value)
    assert envelope["source"]["topic"] == USAGE and "not an event" in envelope["value"]
    await dlq.close()
    await sf.close()


async def test_the_outbox_holds_events_while_the_bus_is_down(world, records: SqlRecords) -> None:  # type: ignore[no-untyped-def]
    store, charging, bus = world

    class DownBus:
        calls = 0

        async def send(self, batch: object) -> None:
            DownBus.calls += 1
            raise ConnectionError("broker down")

    charge_traffic(charging, 9)
    pending = len(store.outbox(limit=10**6))
    down = OutboxRelay(store, DownBus(), backoff=(0.01, 0.05))  # type: ignore[arg-type]
    task = asyncio.ensure_future(down.run())
    await asyncio.sleep(0.3)
    down.stop()
    await task
    assert DownBus.calls >= 3 and down.stats.failures >= 3
    assert len(store.outbox(limit=10**6)) == pending  # nothing lost, nothing acknowledged
    relay, sf = OutboxRelay(store, bus), SyncFunction(bus, records)
    await drain(relay, sf)
    assert sum(len(records.usage_for(m, limit=100)) for m in SUBSCRIBERS) == 15
    await sf.close()


async def test_bus_keeps_key_order_survives_reopen_and_shares_partitions(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus")
    batch = [Outgoing(USAGE, f"53{i % 7:08d}", orjson.dumps({"n": i, "k": i % 7})) for i in range(700)]
    await bus.publish(batch)
    a, b = bus.consumer("g", [USAGE]), bus.consumer("g", [USAGE])
    seen = await a.poll(10_000, 0.1) + await b.poll(10_000, 0.1)
    assert sorted(orjson.loads(r.value)["n"] for r in seen) == list(range(700))  # each once
    by_key: dict[str, list[int]] = {}
    for r in seen:
        by_key.setdefault(r.key, []).append(orjson.loads(r.value)["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())
    await a.commit([r for r in seen if r.partition in {x.partition for x in seen[:1]}])
    await a.close()
    await b.close()
    again = EmbeddedBus(tmp_path / "bus").consumer("g", [USAGE])
    rest = await again.poll(10_000, 0.1)
    assert 0 < len(rest) < 700 and await again.lag() == len(rest)
    await again.commit(rest)
    assert await again.lag() == 0
    await again.close()
