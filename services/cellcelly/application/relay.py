"""The outbox relay: moves events from the balance store's outbox to the event bus.

Sign-ups, suspensions and resumptions also go to the subscriber topic, as lifecycle events
derived from their ledger events (`codec.lifecycle_event`), in the same publish.

Events leave the outbox only after the bus has them durably (`publish` returned), so a crash or
a bus outage loses nothing: the relay retries with exponential backoff and the events wait in
the outbox, which is itself durable. A crash after publishing and before acknowledging
publishes a batch twice; consumers are idempotent on the event id, which makes that harmless.

It reads and acknowledges the outbox a part at a time (`BalanceStore.outbox_parts`: on VoltDB a
partition, so each call is a single-partition transaction; whole-outbox calls stop every site), all
parts read at once and published together. Each subscriber's events live in one part, so their
order on the bus (keyed by subscriber) is kept. The parts are read again every `parts_every`
seconds and after any failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import orjson

from cellcelly.application.worker import run_until_stopped
from cellcelly.codec import lifecycle_event
from cellcelly.ports.balance_store import BalanceStore
from cellcelly.ports.event_bus import LEDGER, NOTIFICATIONS, SUBSCRIBER, USAGE, EventBus, Outgoing

log = logging.getLogger(__name__)

TOPIC_OF = {"usage": USAGE, "ledger": LEDGER, "notification": NOTIFICATIONS}
# A stand-alone OCS's wait after a batch that moved events: back soon, with a small batch. Waiting
# `idle` (0.05 s) there, the OCS on VoltDB gathered ~700 events a turn, whose decode, publish and
# acknowledgement stalled every charge in flight for ms (p99 / p50 of the bench row 3.5-4.0; with
# 0.01, 2.6-3.0). An empty outbox still waits `idle`. The embedded stack keeps `idle`: its SF writes
# the record a batch at a time, and `make run` (its SF a child) with BUSY spent a quarter more CPU a
# CCR in the parent and a third more in the SF, for a worse p99 (2026-12-05, docs/architecture.md).
BUSY = 0.01


@dataclass
class RelayStats:
    relayed: int = 0
    batches: int = 0
    failures: int = 0


class OutboxRelay:
    def __init__(
        self,
        store: BalanceStore,
        bus: EventBus,
        *,
        batch: int = 500,
        idle: float = 0.05,
        # the wait after a batch that moved events without filling one (None: `idle`); see BUSY
        busy: float | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        parts_every: float = 10.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.batch = batch
        self.idle = idle
        self.busy = idle if busy is None else busy
        self.backoff = backoff
        self.stats = RelayStats()
        self._stop = asyncio.Event()
        self.parts_every = parts_every
        self._parts: list[str] = []
        self._parts_read = 0.0
        self._full = False  # a part gave a whole batch: more may wait

    async def relay_once(self) -> int:
        """Publish one batch of each part and acknowledge them; how many events moved (raises when
        the bus fails)."""
        try:
            return await self._relay_parts()
        except BaseException:
            self._parts = []  # perhaps a part that is no more: read them again
            raise

    async def _relay_parts(self) -> int:
        store = self.store
        if not self._parts or time.monotonic() - self._parts_read >= self.parts_every:
            self._parts = await store.outbox_parts_async()
            self._parts_read = time.monotonic()
        parts = self._parts
        reads = await asyncio.gather(*(store.outbox_async(limit=self.batch, part=p) for p in parts))
        self._full = any(len(entries) >= self.batch for entries in reads)
        batch = []
        for entries in reads:
            for e in entries:
                batch.append(
                    Outgoing(TOPIC_OF.get(e.event["type"], USAGE), e.event["msisdn"], orjson.dumps(e.event))
                )
                lifecycle = lifecycle_event(e.event)
                if lifecycle is not None:
                    batch.append(Outgoing(SUBSCRIBER, lifecycle["msisdn"], orjson.dumps(lifecycle)))
        if not batch:
            return 0
        await self.bus.publish(batch)
        # exactly these, each in its part: see BalanceStore.ack
        await asyncio.gather(
            *(
                store.ack_async([e.seq for e in entries], part=p)
                for p, entries in zip(parts, reads, strict=True)
                if entries
            )
        )
        moved = sum(len(entries) for entries in reads)
        self.stats.relayed += moved
        self.stats.batches += 1
        return moved

    async def run(self) -> None:
        async def step() -> float:
            moved = await self.relay_once()
            return 0.0 if self._full else self.busy if moved else self.idle

        def failed() -> None:
            self.stats.failures += 1

        await run_until_stopped(
            step, self._stop, name="outbox relay", backoff=self.backoff, on_failure=failed
        )

    def stop(self) -> None:
        self._stop.set()
