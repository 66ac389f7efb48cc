"""Event throughput: outbox → Kafka (the relay) and Kafka → SF → PostgreSQL, each beside a baseline.

    rows = bench_events(seconds_hint=10.0, events=50_000)

Starts a throwaway Kafka and a throwaway PostgreSQL (`cellcelly_dev.devservers`), charges real traffic
(voice, data and SMS sessions) through `ChargingService` into an `EmbeddedBalanceStore` until its
outbox holds about `events` usage events, then measures five rows of the shape of
`cellcelly_dev.benchstats.summarise` (`ops_per_s` is events/s, `p50_us`/`p99_us` the latency of one
batch):

1. raw aiokafka producer (acks=all, idempotent) sending the relay's own serialized values in
   batches of 500, waiting for every acknowledgement per batch;
2. `OutboxRelay.relay_once` (batch 500) until the outbox is empty;
3. raw batched inserts (SQLAlchemy Core executemany, batches of 2000, one transaction each) of
   the same usage rows (and their consumed-bucket rows) into a schema of their own;
4. `SyncFunction(batch=2000).sync` (the pipelined loop the SF runs) until every event is in
   PostgreSQL: polls are included, the consumer group join is not (the consumer joins before the
   relay publishes); a batch's latency runs from its poll to its offset commit;
5. the SF's database side alone: `SqlRecords.record_usage` of the same events in batches of 2000
   (bulk COPY + balance snapshots), no Kafka: how much of row 4 the writing is;
6. and 7. rows 3 and 5 into SQLite (`make run`'s record; its own bulk path, `sqlite_bulk.py`).

The event rows carry `baseline_ops_per_s` and `ratio_to_baseline`. Without Java/Maven or
PostgreSQL binaries the rows are named "skipped: ..." with zero ops. `seconds_hint` is not used to
size the run (the work is a fixed number of events) and is accepted for symmetry with the others.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, func, insert, make_url, select, text
from sqlalchemy.pool import NullPool

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.sql import SqlRecords
from cellcelly.adapters.sql.records import _usage_bucket_rows, _usage_row
from cellcelly.adapters.sql.schema import usage_buckets, usage_records
from cellcelly.application.charging import ChargingService
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.codec import event_from_dict
from cellcelly.domain.charging import UsageEvent
from cellcelly.ports.event_bus import DEAD_LETTER, LEDGER, NOTIFICATIONS, USAGE, Outgoing
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly.sf.sync import SyncFunction
from cellcelly_dev.bench_kafka import raw_producer
from cellcelly_dev.benchstats import summarise
from cellcelly_dev.devservers import KafkaUnavailable, PostgresUnavailable, kafka_server, postgres_server

log = logging.getLogger(__name__)

RELAY_BATCH = 500
SF_BATCH = 2000
SUBSCRIBERS = 10_000

RAW_KAFKA = "events baseline: raw aiokafka producer x500 (acks=all, idempotent)"
RELAY = "events: outbox → Kafka (OutboxRelay.relay_once x500)"
RAW_SQL = "events baseline: raw batched inserts into PostgreSQL x2000"
SF = "events: Kafka → SF → PostgreSQL (SyncFunction.sync x2000, polls included)"
SF_WRITE = "events: the SF's write alone (SqlRecords.record_usage x2000, no Kafka)"
RAW_SQLITE = "events baseline: raw batched inserts into SQLite x2000 (SQLAlchemy executemany)"
SF_WRITE_SQLITE = "events: the SF's write into SQLite alone (make run's record; record_usage x2000)"


def _skipped(names: Sequence[str], reason: str) -> list[dict[str, Any]]:
    first = reason.strip().splitlines()[0] if reason.strip() else "unavailable"
    return [summarise(f"skipped: {name} ({first[:120]})", 0, 0.0, []) for name in names]


def _fill_outbox(store: EmbeddedBalanceStore, events: int) -> int:
    """Provision subscribers, drop their provisioning events, charge traffic until the outbox
    holds at least `events` usage events; how many it holds."""
    from cellcelly_dev.bench import interleaved_requests, provision  # the traffic mix of `make bench`

    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    subscribers = max(1, min(SUBSCRIBERS, events // 4))
    provision(store, catalogue, subscribers)
    provisioning = store.outbox(limit=10**9)
    if provisioning:
        store.ack([e.seq for e in provisioning])  # ledger events of the sign-ups: not what is measured
    service = ChargingService(store, catalogue)
    # the mix gives ~7 usage events per 9 requests
    requests = interleaved_requests(int(events * 9 / 7) + 64, subscribers)
    held = 0
    for start in range(0, len(requests), 5000):
        for request in requests[start : start + 5000]:
            service.charge(request)
        held = store.outbox_size()
        if held >= events:
            break
    return held


async def _relay(store: EmbeddedBalanceStore, bus: Any, expected: int) -> dict[str, Any]:
    relay = OutboxRelay(store, bus, batch=RELAY_BATCH)
    latencies: list[int] = []
    began = time.perf_counter()
    while True:
        t0 = time.perf_counter_ns()
        moved = await relay.relay_once()
        if not moved:
            break
        latencies.append(time.perf_counter_ns() - t0)
    seconds = time.perf_counter() - began
    return summarise(RELAY, relay.stats.relayed, seconds, latencies, abs(expected - relay.stats.relayed))


def _schema_url(url: str, schema: str) -> str:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    finally:
        engine.dispose()
    with_path = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return with_path.render_as_string(hide_password=False)


def _count_usage(records: SqlRecords) -> int:
    with records.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(usage_records)).scalar_one())


def _raw_inserts(url: str, usage: list[UsageEvent], name: str = RAW_SQL) -> dict[str, Any]:
    records = SqlRecords(url)  # the same engine settings as the SF's
    try:
        records.migrate()
        batches = [
            (
                [_usage_row(e) for e in usage[start : start + SF_BATCH]],
                [row for e in usage[start : start + SF_BATCH] for row in _usage_bucket_rows(e)],
            )
            for start in range(0, len(usage), SF_BATCH)
        ]
        with records.engine.connect() as conn:  # warm up: connection and statement compilation
            conn.execute(select(func.count()).select_from(usage_records)).scalar_one()
        latencies: list[int] = []
        began = time.perf_counter()
        for rows, bucket_rows in batches:
            t0 = time.perf_counter_ns()
            with records.engine.begin() as conn:
                conn.execute(insert(usage_records), rows)
                if bucket_rows:
                    conn.execute(insert(usage_buckets), bucket_rows)
            latencies.append(time.perf_counter_ns() - t0)
        seconds = time.perf_counter() - began
        written = _count_usage(records)
    finally:
        records.close()
    return summarise(name, len(usage), seconds, latencies, abs(len(usage) - written))


def _sf_writes(url: str, usage: list[UsageEvent], name: str = SF_WRITE) -> dict[str, Any]:
    """What the SF's database side alone does with the same events: where the SF row's time goes."""
    records = SqlRecords(url)
    try:
        records.migrate()
        latencies: list[int] = []
        began = time.perf_counter()
        for start in range(0, len(usage), SF_BATCH):
            t0 = time.perf_counter_ns()
            records.record_usage(usage[start : start + SF_BATCH])
            latencies.append(time.perf_counter_ns() - t0)
        seconds = time.perf_counter() - began
        written = _count_usage(records)
    finally:
        records.close()
    return summarise(name, len(usage), seconds, latencies, abs(len(usage) - written))


async def _join(sf: SyncFunction) -> None:
    """Have the SF's consumer join its group (on still empty topics) before anything is timed."""
    assignment = getattr(sf.consumer, "assignment", None)
    deadline = time.monotonic() + 60
    while assignment is not None and not assignment():
        if await sf.sync_once(timeout=0.2):
            raise RuntimeError("events on the topics before the relay ran")
        if time.monotonic() > deadline:
            raise RuntimeError("the SF consumer did not join its group within 60 s")


async def _sync(sf: SyncFunction, records: SqlRecords, expected: int) -> dict[str, Any]:
    latencies: list[int] = []
    sf.on_batch = lambda _records, seconds: latencies.append(int(seconds * 1e9))
    began = time.perf_counter()
    # the short poll timeout only bounds the last, empty poll that overlaps the last write
    await asyncio.wait_for(
        sf.sync(timeout=0.05, until=lambda: sf.stats.usage_written + sf.stats.duplicates >= expected), 300
    )
    seconds = time.perf_counter() - began
    written = await asyncio.to_thread(_count_usage, records)
    row = summarise(SF, sf.stats.usage_written, seconds, latencies, abs(expected - written))
    row["duplicates"] = sf.stats.duplicates
    row["dead_lettered"] = sf.stats.dead_lettered
    return row


def _compare(row: dict[str, Any], baseline: dict[str, Any]) -> None:
    row["baseline_ops_per_s"] = baseline["ops_per_s"]
    row["ratio_to_baseline"] = (
        round(row["ops_per_s"] / baseline["ops_per_s"], 3) if baseline["ops_per_s"] else 0.0
    )


async def _measure(bootstrap: str, pg_url: str | None, store: EmbeddedBalanceStore) -> list[dict[str, Any]]:
    from cellcelly.adapters.bus_kafka import KafkaBus

    run = uuid.uuid4().hex[:8]
    entries = store.outbox(limit=10**9)
    values = [(e.event["msisdn"].encode(), orjson.dumps(e.event)) for e in entries]
    usage = [event for e in entries if isinstance(event := event_from_dict(e.event), UsageEvent)]
    raw_topic = f"cellcelly.bench.raw.{run}"
    bus = KafkaBus(bootstrap, client_id=f"cellcelly-bench-{run}")
    sf: SyncFunction | None = None
    records: SqlRecords | None = None
    rows: list[dict[str, Any]] = []
    try:
        await bus.ensure_topics(
            [raw_topic, USAGE, LEDGER, NOTIFICATIONS, DEAD_LETTER, f"cellcelly.bench.warm.{run}"]
        )
        if pg_url is not None:
            records = SqlRecords(_schema_url(pg_url, f"bench_sf_{run}"))
            records.migrate()
            sf = SyncFunction(bus, records, batch=SF_BATCH, group=f"cellcelly-bench-sf-{run}")
            await _join(sf)
        # warm up the bus's producer (connection, producer id) on a topic nobody reads
        await bus.publish([Outgoing(f"cellcelly.bench.warm.{run}", "0", b"{}")])

        outgoing = [Outgoing(raw_topic, key.decode(), value) for key, value in values]
        raw = await raw_producer(bootstrap, outgoing, name=RAW_KAFKA, batch=RELAY_BATCH, warm_up=True)
        relayed = await _relay(store, bus, len(entries))
        _compare(relayed, raw)
        rows += [raw, relayed]
        # `make run`'s record: SQLite, written by the SF in the charging process (its bulk path)
        with tempfile.TemporaryDirectory(prefix="cellcelly-bench-sqlite-") as lite:
            raw_lite = await asyncio.to_thread(_raw_inserts, f"sqlite:///{lite}/raw.db", usage, RAW_SQLITE)
            sf_lite = await asyncio.to_thread(_sf_writes, f"sqlite:///{lite}/sf.db", usage, SF_WRITE_SQLITE)
        _compare(sf_lite, raw_lite)
        rows += [raw_lite, sf_lite]

        if pg_url is None or sf is None or records is None:
            return rows
        raw_sql = await asyncio.to_thread(_raw_inserts, _schema_url(pg_url, f"bench_raw_{run}"), usage)
        synced = await _sync(sf, records, len(usage))
        _compare(synced, raw_sql)
        synced["target_ops_per_s"] = 20_000
        writes = await asyncio.to_thread(_sf_writes, _schema_url(pg_url, f"bench_write_{run}"), usage)
        _compare(writes, raw_sql)
        rows += [raw_sql, synced, writes]
        return rows
    finally:
        if sf is not None:
            await sf.close()
        await bus.close()
        if records is not None:
            records.close()


def bench_events(seconds_hint: float, events: int = 50_000) -> list[dict[str, Any]]:
    del seconds_hint  # a fixed amount of work, see the module docstring
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        try:
            bootstrap = stack.enter_context(kafka_server())
        except (KafkaUnavailable, OSError) as exc:
            return _skipped([RAW_KAFKA, RELAY, RAW_SQLITE, SF_WRITE_SQLITE, RAW_SQL, SF, SF_WRITE], str(exc))
        pg_url: str | None = None
        skipped: list[dict[str, Any]] = []
        try:
            pg_url = stack.enter_context(postgres_server())
        except (PostgresUnavailable, RuntimeError, OSError) as exc:
            skipped = _skipped([RAW_SQL, SF, SF_WRITE], str(exc))
        store = EmbeddedBalanceStore(Path(tmp) / "balances", fsync="interval")
        stack.callback(store.close)
        held = _fill_outbox(store, events)
        log.info("bench events: %d events in the outbox", held)
        return asyncio.run(_measure(bootstrap, pg_url, store)) + skipped
