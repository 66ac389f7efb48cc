"""Consumes usage and ledger events and writes them into the system of record in batches.

Exactly once in effect: the writes are idempotent by event id, and the consumer's offsets are
committed only after the database has committed, so a crash re-delivers a batch that is then
written again as no-ops. A record that cannot be decoded (a poison message) goes to the
dead-letter topic with where it came from and why, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

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
    ) -> None:
        self.bus = bus
        self.records = records
        self.batch = batch
        # the lag costs round trips that queue behind the consumer's fetches (on Kafka, up to
        # ~0.5 s a call under load): refreshed whenever a poll comes back empty, and at most every
        # `lag_every` seconds while busy
        self.lag_every = lag_every
        self._lag_at = time.monotonic()
        self.consumer: EventConsumer = bus.consumer(group, [USAGE, LEDGER])
        self.stats = SyncStats()
        self._stop = asyncio.Event()

    async def sync_once(self, timeout: float = 0.5) -> int:
        """Poll, write, commit one batch; returns the records handled."""
        polled = await self.consumer.poll(self.batch, timeout)
        if not polled:
            self._lag_at = time.monotonic()
            self.stats.lag = await self.consumer.lag()
            return 0
        usage: list[UsageEvent] = []
        ledger: list[LedgerEvent] = []
        poison: list[Outgoing] = []
        for record in polled:
            try:
                event = event_from_dict(orjson.loads(record.value))
            except Exception as exc:  # noqa: BLE001 - anything undecodable is poison
                poison.append(_dead_letter(record, exc))
                continue
            if isinstance(event, UsageEvent):
                usage.append(event)
            elif isinstance(event, LedgerEvent):
                ledger.append(event)
        if poison:
            await self.bus.publish(poison)
            self.stats.dead_lettered += len(poison)
        await asyncio.to_thread(self._write, usage, ledger)
        await self.consumer.commit(polled)  # only now: the database has committed
        self.stats.batches += 1
        now = time.monotonic()
        if now - self._lag_at >= self.lag_every:
            self._lag_at = now
            self.stats.lag = await self.consumer.lag()
        return len(polled)

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
            await self.sync_once()  # polls with a timeout: no idling needed
            return 0.0

        await run_until_stopped(step, self._stop, name="sf", backoff=(0.1, 5.0))

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.consumer.close()


def _dead_letter(record: Record, exc: Exception) -> Outgoing:
    envelope = {
        "schema": 1,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "error": f"{type(exc).__name__}: {exc}",
        "value": record.value.decode("utf-8", errors="replace"),
    }
    return Outgoing(DEAD_LETTER, record.key, orjson.dumps(envelope))
