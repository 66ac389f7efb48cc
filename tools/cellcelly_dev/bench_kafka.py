"""Publishing throughput on Kafka: raw aiokafka against `KafkaBus.publish`.

    rows = await bench_kafka("127.0.0.1:9092", n=20000)

Rows have the shape of `cellcelly_dev.benchstats.summarise`. Both batched rows send `n` ~200-byte
events keyed by 1,000 subscribers in batches of 500 and wait for every acknowledgement (idempotent
producer, acks=all) before the next batch, so `ops_per_s` is records/s and `p50_us`/`p99_us` are
the latency of one batch of 500. The last row publishes single events one at a time (the latency
of one durable publish).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from cellcelly.adapters.bus_kafka import KafkaBus
from cellcelly.ports.event_bus import Outgoing
from cellcelly_dev.benchstats import summarise

BATCH = 500
SUBSCRIBERS = 1000


def _events(topic: str, n: int) -> list[Outgoing]:
    return [
        Outgoing(
            topic,
            f"2547{(i % SUBSCRIBERS):08d}",
            orjson.dumps({"v": 1, "id": str(uuid.uuid4()), "seq": i, "type": "usage", "units": 1024}),
        )
        for i in range(n)
    ]


async def raw_producer(
    bootstrap: str, events: list[Outgoing], *, name: str, batch: int = BATCH, warm_up: bool = False
) -> dict[str, Any]:
    """The baseline: a plain idempotent aiokafka producer (acks=all) sending `events` in batches of
    `batch` futures; one row in the benchmarks' shape. `warm_up` first sends one record and waits."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id="cellcelly-bench-raw", enable_idempotence=True, acks="all",
        linger_ms=2,
    )  # fmt: skip
    await producer.start()
    latencies: list[int] = []
    try:
        if warm_up and events:
            await (await producer.send(events[0].topic, value=b"warm-up", key=b"0"))
        began = time.perf_counter()
        for start in range(0, len(events), batch):
            t0 = time.perf_counter_ns()
            futures = [
                await producer.send(e.topic, value=e.value, key=e.key.encode())
                for e in events[start : start + batch]
            ]
            await asyncio.gather(*futures)
            latencies.append(time.perf_counter_ns() - t0)
        seconds = time.perf_counter() - began
    finally:
        await producer.stop()
    return summarise(name, len(events), seconds, latencies)


async def _bus_batches(bus: KafkaBus, events: list[Outgoing]) -> dict[str, Any]:
    latencies: list[int] = []
    began = time.perf_counter()
    for start in range(0, len(events), BATCH):
        t0 = time.perf_counter_ns()
        await bus.publish(events[start : start + BATCH])
        latencies.append(time.perf_counter_ns() - t0)
    seconds = time.perf_counter() - began
    return summarise(f"kafka KafkaBus.publish x{BATCH}", len(events), seconds, latencies)


async def _bus_single(bus: KafkaBus, events: list[Outgoing]) -> dict[str, Any]:
    latencies: list[int] = []
    began = time.perf_counter()
    for event in events:
        t0 = time.perf_counter_ns()
        await bus.publish([event])
        latencies.append(time.perf_counter_ns() - t0)
    seconds = time.perf_counter() - began
    return summarise("kafka KafkaBus.publish x1", len(events), seconds, latencies)


async def bench_kafka(bootstrap: str, n: int = 20000) -> list[dict[str, Any]]:
    topic = f"cellcelly.bench.{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(bootstrap, client_id="cellcelly-bench")
    try:
        await bus.ensure_topics([topic])
        await bus.publish(_events(topic, 10))  # warm up: metadata, producer id, connections
        rows = [
            await raw_producer(bootstrap, _events(topic, n), name=f"kafka raw aiokafka send() x{BATCH}"),
            await _bus_batches(bus, _events(topic, n)),
        ]
        rows.append(await _bus_single(bus, _events(topic, max(1, min(n // 20, 1000)))))
    finally:
        await bus.close()
    return rows
