"""Consumes usage and ledger events and writes them into the system of record in batches.

Exactly once in effect: the writes are idempotent by event id, and the consumer's offsets are
committed only after the database has committed, so a crash re-delivers a batch that is then
written again as no-ops. A record that cannot be decoded (a poison message) goes to the
dead-letter topic with where it came from and why, and the stream goes on. A batch that fails
(database down) rewinds the consumer to the committed offsets, so no later commit can pass it.

`run()` overlaps the poll and decoding of the next batch with the write of the current one (the
write waits on the database, in a thread); writes and commits stay one batch at a time, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from cellcelly.application.worker import run_until_stopped
from cellcelly.codec import event_from_dict
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.ports.event_bus import DEAD_LETTER, LEDGER, USAGE, EventBus, EventConsumer, Outgoing, Record
from cellcelly.ports.records import SystemOfRecord

log = logging.getLogger(__name__)
GROUP = "cellcelly-sf"


@dataclass
class _Batch:
    records: list[Record]
    usage: list[UsageEvent] = field(default_factory=list)
    ledger: list[LedgerEvent] = field(default_factory=list)
    poison: list[Outgoing] = field(default_factory=list)
    polled_at: float = field(default_factory=time.perf_counter)


@dataclass
class SyncStats:
    batches: int = 0
    usage_written: int = 0
    ledger_written: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    lag: int = 0


class SyncFunction:
    def __init__(
        self,
        bus: EventBus,
        records: SystemOfRecord,
        *,
        batch: int = 2000,
        group: str = GROUP,
        lag_every: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.bus = bus
        self.records = records
        self.batch = batch
        # the lag costs round trips that queue behind the consumer's fetches (on Kafka, up to
        # ~0.5 s a call under load): refreshed whenever a poll comes back empty, and at most every
        # `lag_every` seconds while busy, in the background
        self.lag_every = lag_every
        self._lag_at = time.monotonic()
        self._lag_task: asyncio.Task[None] | None = None
        self.on_batch = on_batch  # (records, seconds from poll to commit) of each batch: benchmarks
        self.consumer: EventConsumer = bus.consumer(group, [USAGE, LEDGER])
        self.stats = SyncStats()
        self._stop = asyncio.Event()

    def _decode(self, polled: list[Record]) -> _Batch:
        batch = _Batch(polled)
        for record in polled:
            try:
                event = event_from_dict(orjson.loads(record.value))
            except Exception as exc:  # noqa: BLE001 - anything undecodable is poison
                batch.poison.append(_dead_letter(record, exc))
                continue
            if isinstance(event, UsageEvent):
                batch.usage.append(event)
            elif isinstance(event, LedgerEvent):
                batch.ledger.append(event)
        return batch

    async def _store(self, batch: _Batch) -> None:
        """Dead-letter, write, then commit the batch's offsets: only once the database has committed."""
        if batch.poison:
            await self.bus.publish(batch.poison)
            self.stats.dead_lettered += len(batch.poison)
        await asyncio.to_thread(self._write, batch.usage, batch.ledger)
        await self.consumer.commit(batch.records)
        self.stats.batches += 1
        if self.on_batch is not None:
            self.on_batch(len(batch.records), time.perf_counter() - batch.polled_at)

    def _refresh_lag(self, idle: bool) -> None:
        """Start measuring the lag in the background (one measurement at a time): on Kafka it
        costs round trips that queue behind the fetches, and must not hold up the batches."""
        now = time.monotonic()
        if (self._lag_task is None or self._lag_task.done()) and (
            idle or now - self._lag_at >= self.lag_every
        ):
            self._lag_at = now
            self._lag_task = asyncio.create_task(self._measure_lag())

    async def _measure_lag(self) -> None:
        try:
            self.stats.lag = await self.consumer.lag()
        except Exception:  # noqa: BLE001 - a metric: the next refresh tries again
            log.debug("sf: lag not measured", exc_info=True)

    async def _rewind(self) -> None:
        """After a failure, make the next polls deliver again what was polled but not committed."""
        try:
            await self.consumer.rewind()
        except Exception:  # noqa: BLE001 - the bus is down too: the caller's error is what matters
            log.warning("sf: rewind failed; the records come again once the group rebalances", exc_info=True)

    async def sync_once(self, timeout: float = 0.5) -> int:
        """Poll, write and commit one batch, nothing overlapped; returns the records handled."""
        polled = await self.consumer.poll(self.batch, timeout)
        if not polled:
            self._lag_at = time.monotonic()
            await self._measure_lag()  # caught up: the figure is fresh when this returns
            return 0
        try:
            await self._store(self._decode(polled))
        except Exception:
            await self._rewind()
            raise
        self._refresh_lag(idle=False)
        return len(polled)

    async def sync(self, *, timeout: float = 0.5, until: Callable[[], bool] | None = None) -> None:
        """Poll, write and commit batches until stopped (or until `until()`), pipelined: the next
        batch is polled and decoded while the current one is written and committed. Batches are
        still written and committed one at a time, in order, so offsets never pass unwritten data."""
        storing: asyncio.Task[None] | None = None

        def done() -> bool:
            return self._stop.is_set() or (until is not None and until())

        try:
            while not done():
                polled = await self.consumer.poll(self.batch, timeout)
                batch = self._decode(polled) if polled else None
                if storing is not None:
                    task, storing = storing, None
                    await task  # raises if that batch failed: nothing after it is committed
                if batch is None:
                    self._refresh_lag(idle=True)
                    continue
                storing = asyncio.create_task(self._store(batch))
                self._refresh_lag(idle=False)
            if storing is not None:
                task, storing = storing, None
                await task
        except Exception:
            if storing is not None:
                # its write may still commit in its thread; uncommitted offsets bring it again
                await asyncio.gather(storing, return_exceptions=True)
            await self._rewind()
            raise
        except BaseException:
            if storing is not None:
                storing.cancel()
            raise

    def _write(self, usage: list[UsageEvent], ledger: list[LedgerEvent]) -> None:
        if ledger:
            new = self.records.apply_ledger(ledger)
            self.stats.ledger_written += new
            self.stats.duplicates += len(ledger) - new
        if usage:
            new = self.records.record_usage(usage)
            self.stats.usage_written += new
            self.stats.duplicates += len(usage) - new

    async def run(self) -> None:
        async def step() -> float:
            await self.sync()  # returns only when stopped, or by raising
            return 0.0

        await run_until_stopped(step, self._stop, name="sf", backoff=(0.1, 5.0))

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)
        await self.consumer.close()


def _dead_letter(record: Record, exc: Exception) -> Outgoing:
    envelope = {
        "schema": 1,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "error": f"{type(exc).__name__}: {exc}",
        "value": record.value.decode("utf-8", errors="replace"),
    }
    return Outgoing(DEAD_LETTER, record.key, orjson.dumps(envelope))
