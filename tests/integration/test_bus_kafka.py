"""KafkaBus on a real single-node Apache Kafka 4.4 (KRaft), started from `scripts/kafka.sh`.

Every test uses topics and groups of its own; the restart test stops and starts the session's
broker on the same data dir (the broker is running again afterwards, on the same port).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from kafka_server import KafkaServer

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_kafka import KafkaBus, KafkaConsumer
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.charging import ChargeRequest, RequestType, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.ports.event_bus import DEAD_LETTER, USAGE, Outgoing, Record
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly.sf.sync import SyncFunction
from cellcelly_dev.bench_kafka import bench_kafka
from cellcelly_testing import EPHEMERAL_PORTS

pytestmark = pytest.mark.integration

# fast group membership: a joining member makes the others rejoin within a heartbeat
CONSUMER_OPTIONS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300}


@pytest.fixture
async def bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(kafka_bootstrap, client_id="cellcelly-test", consumer_options=CONSUMER_OPTIONS)
    try:
        yield bus
    finally:
        await bus.close()


def names(prefix: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"test.{prefix}.{tag}", f"group-{prefix}-{tag}"


def events(topic: str, n: int, subscribers: int = 50) -> list[Outgoing]:
    counters: dict[str, int] = defaultdict(int)
    out = []
    for i in range(n):
        key = f"25470{i % subscribers:07d}"
        out.append(Outgoing(topic, key, orjson.dumps({"key": key, "seq": counters[key], "i": i})))
        counters[key] += 1
    return out


async def drain(consumer: KafkaConsumer, n: int, deadline: float = 20.0) -> list[Record]:
    """Poll until `n` records came (or fail after `deadline` seconds)."""
    got: list[Record] = []
    end = time.monotonic() + deadline
    while len(got) < n:
        assert time.monotonic() < end, f"only {len(got)} of {n} records within {deadline}s"
        got += await consumer.poll(max_records=500, timeout=0.5)
    return got


async def quiet(consumer: KafkaConsumer, seconds: float) -> list[Record]:
    got: list[Record] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got += await consumer.poll(timeout=0.3)
    return got


async def test_thousand_events_by_fifty_subscribers_arrive_in_per_key_order(bus: KafkaBus) -> None:
    topic, group = names("order")
    sent = events(topic, 1000, subscribers=50)
    for start in range(0, len(sent), 250):
        await bus.publish(sent[start : start + 250])
    consumer = bus.consumer(group, [topic])
    got = await drain(consumer, 1000)
    assert len(got) == 1000
    assert len({(r.partition, r.offset) for r in got}) == 1000
    assert len({r.partition for r in got}) > 1, "50 keys should spread over the 4 partitions"
    seqs: dict[str, list[int]] = defaultdict(list)
    for record in got:
        event = orjson.loads(record.value)
        assert event["key"] == record.key
        seqs[record.key].append(event["seq"])
    assert len(seqs) == 50
    for key, seq in seqs.items():
        assert seq == list(range(20)), key
    await consumer.commit(got)
    assert await consumer.lag() == 0


async def test_committed_records_are_not_delivered_again_to_the_group(bus: KafkaBus) -> None:
    topic, group = names("commit")
    await bus.publish(events(topic, 100))
    first = bus.consumer(group, [topic])
    await first.commit(await drain(first, 100))
    await first.close()

    second = bus.consumer(group, [topic])
    assert await quiet(second, 1.5) == []
    await bus.publish([Outgoing(topic, "254700000001", b'{"new":true}')])
    got = await drain(second, 1)
    assert [r.value for r in got] == [b'{"new":true}']
    assert await quiet(second, 0.5) == []


async def test_uncommitted_records_are_delivered_again(bus: KafkaBus) -> None:
    topic, group = names("redeliver")
    sent = events(topic, 100)
    await bus.publish(sent)
    first = bus.consumer(group, [topic])
    assert len(await drain(first, 100)) == 100
    await first.close()  # crashed before committing

    second = bus.consumer(group, [topic])
    again = await drain(second, 100)
    assert sorted(r.value for r in again) == sorted(o.value for o in sent)


async def test_two_members_of_a_group_split_the_partitions(bus: KafkaBus) -> None:
    topic, group = names("split")
    a, b = bus.consumer(group, [topic]), bus.consumer(group, [topic])
    end = time.monotonic() + 20
    while not (a.assignment() and b.assignment() and len(a.assignment() | b.assignment()) == 4):
        assert time.monotonic() < end, f"no stable assignment: {a.assignment()} / {b.assignment()}"
        await asyncio.gather(a.poll(timeout=0.2), b.poll(timeout=0.2))
    assert not a.assignment() & b.assignment()

    sent = events(topic, 400)
    await bus.publish(sent)
    seen: dict[str, list[Record]] = {"a": [], "b": []}
    end = time.monotonic() + 20
    while len(seen["a"]) + len(seen["b"]) < 400:
        assert time.monotonic() < end
        got_a, got_b = await asyncio.gather(a.poll(timeout=0.3), b.poll(timeout=0.3))
        seen["a"] += got_a
        seen["b"] += got_b
    assert seen["a"] and seen["b"], "both members should get records"
    both = seen["a"] + seen["b"]
    assert len(both) == 400
    assert len({(r.partition, r.offset) for r in both}) == 400
    assert {(r.topic, r.partition) for r in seen["a"]} <= a.assignment()
    assert {(r.topic, r.partition) for r in seen["b"]} <= b.assignment()
    await a.commit(seen["a"])
    await b.commit(seen["b"])
    assert await a.lag() == 0


async def test_lag_falls_to_zero_as_the_group_commits(bus: KafkaBus) -> None:
    topic, group = names("lag")
    await bus.publish(events(topic, 200))
    consumer = bus.consumer(group, [topic])
    assert await consumer.lag() == 200
    got = await drain(consumer, 200)
    assert await consumer.lag() == 200  # polled is not done
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in got:
        by_partition[record.partition].append(record)
    first_partition = min(by_partition)
    await consumer.commit(by_partition[first_partition])
    assert await consumer.lag() == 200 - len(by_partition[first_partition])
    await consumer.commit(got)
    assert await consumer.lag() == 0


async def test_rewind_delivers_again_everything_not_committed(bus: KafkaBus) -> None:
    topic, group = names("rewind")
    await bus.publish(events(topic, 120))
    consumer = bus.consumer(group, [topic])
    got = await drain(consumer, 120)
    await consumer.rewind()  # nothing committed yet: from the beginning of every partition
    again = await drain(consumer, 120)
    assert sorted((r.partition, r.offset) for r in again) == sorted((r.partition, r.offset) for r in got)
    first = min(r.partition for r in got)
    await consumer.commit([r for r in got if r.partition == first])
    await consumer.rewind()  # the committed partition stays behind, the others come again
    rest = await drain(consumer, len([r for r in got if r.partition != first]))
    assert {r.partition for r in rest} == {r.partition for r in got} - {first}
    assert await quiet(consumer, 1.0) == []
    await consumer.commit(rest)
    assert await consumer.lag() == 0


async def test_publish_benchmark_rows(kafka_bootstrap: str) -> None:
    rows = await bench_kafka(kafka_bootstrap, n=2000)
    assert [row["ops"] for row in rows] == [2000, 2000, 100]
    assert all(row["errors"] == 0 and row["ops_per_s"] > 0 for row in rows)


# The broker-down publish runs in a child process: aiokafka's producer, torn down with records in
# flight, trips a CPython 3.11.7 bug (python/cpython#106905, fixed in 3.11.8) that corrupts the
# interpreter's AST recursion counter, so a later `ast.parse` in this pytest process (assertion
# rewriting, traceback rendering) fails with "SystemError: AST constructor recursion depth mismatch".
BROKER_DOWN_CHILD = """
import asyncio, logging, sys, time
logging.disable(logging.CRITICAL)
from cellcelly.adapters.bus_kafka import KafkaBus, KafkaBusError
from cellcelly.ports.event_bus import Outgoing

async def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    bus = KafkaBus(bootstrap, publish_timeout=4.0)
    try:
        await bus.publish([Outgoing(topic, "254700000001", b'{"warm":true}')])
        print("ready", flush=True)
        sys.stdin.readline()  # the parent stops the broker
        began = time.monotonic()
        try:
            await bus.publish([Outgoing(topic, "254700000001", b'{"lost":true}')])
        except KafkaBusError as exc:
            print(f"failed after {time.monotonic() - began:.2f}s: {exc}", flush=True)
        else:
            print("published", flush=True)
    finally:
        await bus.close()

asyncio.run(main())
"""


async def test_broker_down_fails_publish_and_restart_keeps_the_data(kafka: KafkaServer) -> None:
    """Last on purpose (it restarts the session's broker; the broker is up again afterwards)."""
    if kafka.external:
        pytest.skip(f"{os.environ.get('CELLCELLY_TEST_KAFKA')} is an external Kafka: cannot restart it")
    topic, group = names("restart")
    sent = events(topic, 300)
    bus = KafkaBus(kafka.bootstrap, publish_timeout=4.0, consumer_options=CONSUMER_OPTIONS)
    try:
        await bus.publish(sent)
        consumer = bus.consumer(group, [topic])
        await consumer.commit(await drain(consumer, 300))
    finally:
        await bus.close()

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BROKER_DOWN_CHILD, kafka.bootstrap, topic,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        ready = await asyncio.wait_for(child.stdout.readline(), 30)
        assert ready == b"ready\n", ready
        kafka.stop()  # blocks the loop ~2 s; nothing else runs here
        child.stdin.write(b"stopped\n")
        await child.stdin.drain()
        out, err = await asyncio.wait_for(child.communicate(), 30)
        assert child.returncode == 0, err.decode()[-3000:]
        verdict = out.decode().strip()
        assert verdict.startswith("failed after"), verdict
        assert "publish of 1 record(s)" in verdict and "not acknowledged within 4 s" in verdict, verdict
        assert float(verdict.split()[2].rstrip("s:")) < 10, verdict
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        if not kafka.running:
            kafka.start()

    bus = KafkaBus(kafka.bootstrap, consumer_options=CONSUMER_OPTIONS)
    try:
        # the committed offsets survived: the group has nothing old to do
        again = bus.consumer(group, [topic])
        assert [
            r for r in await quiet(again, 1.5) if r.value not in (b'{"warm":true}', b'{"lost":true}')
        ] == []
        # and the acknowledged records too: a new group reads all 300 (+ the child's warm-up)
        fresh = bus.consumer(f"{group}-fresh", [topic])
        got = [r for r in await drain(fresh, 301) if r.value not in (b'{"warm":true}', b'{"lost":true}')]
        assert sorted(r.value for r in got) == sorted(o.value for o in sent)
        await again.commit(await quiet(again, 0.1))
    finally:
        await bus.close()


@pytest.mark.timeout(120)
async def test_charging_to_kafka_to_sf_to_the_system_of_record(
    kafka_bootstrap: str, records: SqlRecords, tmp_path: Path
) -> None:
    """The whole path on real servers: charging → outbox → relay → Kafka → SF → SQLite/PostgreSQL,
    every debit exactly once, the outbox empty and the group's lag 0 at the end."""
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    accounts = AccountService(store, records, catalogue)
    subscribers = [f"53500000{i:02d}" for i in range(10)]
    for msisdn in subscribers:
        accounts.open(SubscriberRecord(msisdn, "Ömer", "Şahin", f"{msisdn}@example.com", "active", "RIZE"))
    charging = ChargingService(store, catalogue)
    for i in range(150):
        msisdn = subscribers[i % len(subscribers)]
        voice = (ServiceUsage(1, Service.VOICE, 60, 0, "905551112233"),)
        charging.charge(ChargeRequest(f"k{i}", RequestType.INITIAL, 0, msisdn, voice))
        done = (ServiceUsage(1, Service.VOICE, 0, 42, "905551112233"),)
        charging.charge(ChargeRequest(f"k{i}", RequestType.TERMINATE, 1, msisdn, done))
    expected = {e.event["event_id"] for e in store.outbox(limit=10**6) if e.event["type"] == "usage"}
    group = f"sf-{uuid.uuid4().hex[:8]}"  # a fresh group on the shared broker
    bus = KafkaBus(kafka_bootstrap, client_id=group)
    try:
        relay = OutboxRelay(store, bus)
        while await relay.relay_once():
            pass
        assert store.outbox() == []
        sf = SyncFunction(bus, records, group=group)

        def written() -> set[str]:
            return {e.event_id for m in subscribers for e in records.usage_for(m, limit=10_000)}

        # the topics are shared with other tests: the fresh group writes their events too
        deadline = time.monotonic() + 60
        while written() != expected and time.monotonic() < deadline:
            await sf.sync_once(timeout=1.0)
        assert written() == expected and len(expected) == 150
        while await sf.sync_once(timeout=1.0):
            pass
        assert await sf.consumer.lag() == 0
        await sf.close()
    finally:
        await bus.close()
        store.close()


@pytest.mark.timeout(120)
async def test_the_stack_on_kafka_by_configuration(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`CELLCELLY_EVENT_BUS=kafka`: the same stack `make run` starts, its events on the real broker;
    Gy traffic through the DGW ends up as usage records in the system of record."""
    from cellcelly.deploy.backends import open_backends
    from cellcelly.deploy.embedded import DEMO, EmbeddedStack, seed_demo
    from cellcelly.diameter.ccr import build_ccr
    from cellcelly.diameter.constants import RequestType as CcType
    from cellcelly.diameter.peer import LocalPeer, connect
    from cellcelly.settings import Settings

    settings = Settings(
        data_dir=tmp_path,
        **EPHEMERAL_PORTS,
        event_bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        dgw_allowed_peers="pgw.kafka.test",
    )
    components = open_backends(settings)
    seed_demo(components)
    stack = EmbeddedStack(components)
    await stack.start()
    client = LocalPeer("pgw.kafka.test", "test.local")
    conn = await connect("127.0.0.1", stack.dgw_port, client)
    try:
        for i in range(5):
            for kind, number, used in ((CcType.INITIAL, 0, 0), (CcType.TERMINATION, 1, 33)):
                ccr = build_ccr(
                    session_id=f"kafka-stack-{i}",
                    origin=client,
                    destination_realm="cellcelly.local",
                    request_type=kind,
                    request_number=number,
                    msisdn=DEMO.msisdn,
                    service="voice",
                    rating_group=1,
                    requested=60 if number == 0 else None,
                    used=used,
                    destination="905551112233",
                )
                assert (await conn.request(ccr)).result_code == 2001
        deadline = time.monotonic() + 60
        while len(components.records.usage_for(DEMO.msisdn)) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        usage = components.records.usage_for(DEMO.msisdn)
        assert sorted(u.session_id for u in usage) == [f"kafka-stack-{i}" for i in range(5)]
        assert all(u.units == 33 for u in usage)
    finally:
        await conn.disconnect()
        await stack.stop()
        await components.aclose()


@pytest.mark.timeout(120)
async def test_a_poison_record_on_kafka_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str, records: SqlRecords
) -> None:
    """On the real broker: an undecodable usage record goes to the dead-letter topic with where it
    came from, and the group commits past it (the stream does not stall)."""
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(kafka_bootstrap, client_id=marker, consumer_options=CONSUMER_OPTIONS)
    try:
        await bus.publish([Outgoing(USAGE, "5350000099", f"{{not an event {marker}".encode())])
        sf = SyncFunction(bus, records, group=f"sf-{marker}")  # a fresh group reads the shared topics
        deadline = time.monotonic() + 60
        while sf.stats.dead_lettered < 1 and time.monotonic() < deadline:
            await sf.sync_once(timeout=1.0)
        while await sf.sync_once(timeout=1.0):
            pass
        assert await sf.consumer.lag() == 0  # committed past the poison record
        await sf.close()
        letters = bus.consumer(f"dlq-{marker}", [DEAD_LETTER])
        ours: list[dict[str, object]] = []
        while not ours and time.monotonic() < deadline:
            ours = [
                envelope
                for r in await letters.poll(500, timeout=1.0)
                if marker in str((envelope := orjson.loads(r.value))["value"])
            ]
        assert len(ours) == 1
        source = ours[0]["source"]
        assert isinstance(source, dict) and source["topic"] == USAGE
        assert "JSONDecodeError" in str(ours[0]["error"])
    finally:
        await bus.close()
