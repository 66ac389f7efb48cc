"""The event bus contract on a real Apache Kafka 4.4 (the session's broker, `kafka_server.py`),
plus what only Kafka has: partitions added to a topic while a tail reads it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions  # type: ignore[import-untyped]
from event_bus_contract import EventBusContract, drain

from cellcelly.adapters.bus_kafka import KafkaBus, KafkaTail
from cellcelly.ports.event_bus import Outgoing

pytestmark = [pytest.mark.integration, pytest.mark.contract, pytest.mark.timeout(90)]

CONSUMER_OPTIONS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300}


@pytest.fixture
def topic() -> str:
    return f"test.tail.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(kafka_bootstrap, client_id="tail-a", consumer_options=CONSUMER_OPTIONS)
    yield bus
    await bus.close()


@pytest.fixture
async def other(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(kafka_bootstrap, client_id="tail-b", consumer_options=CONSUMER_OPTIONS)
    yield bus
    await bus.close()


class TestKafkaBus(EventBusContract):
    pass


async def test_a_tail_follows_partitions_added_to_its_topic(
    bus: KafkaBus, kafka_bootstrap: str, topic: str
) -> None:
    """A topic grown from 4 to 8 partitions: records keyed to the new ones reach a running tail
    (from the new partitions' beginning: everything in them is newer than the tail)."""
    tail = bus.tail([topic])
    assert isinstance(tail, KafkaTail)
    tail.partition_check = 0.5
    await tail.start()
    # the topic is made by the tail's first look; when its metadata is not out by the end of
    # start(), the first polls take the partitions (CI once saw none at start)
    for _ in range(50):
        if tail.assignment():
            break
        assert await tail.poll(timeout=0.1) == []
    assert len(tail.assignment()) == 4
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=8)})
    finally:
        await admin.close()
    sent = [Outgoing(topic, f"53511{i:05d}", orjson.dumps({"i": i})) for i in range(80)]
    fresh = KafkaBus(kafka_bootstrap, client_id="tail-grown")  # a producer that sees 8 partitions
    try:
        await fresh.publish(sent)
    finally:
        await fresh.close()
    got = await drain(tail, 80)
    assert len(tail.assignment()) == 8
    assert {r.partition for r in got} - set(range(4)), "some keys land on the new partitions"
    assert sorted(r.value for r in got) == sorted(o.value for o in sent)
    await tail.close()
