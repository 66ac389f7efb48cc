"""The outbox relay: moves events from the balance store's outbox to the event bus.

Sign-ups, suspensions and resumptions also go to the subscriber topic, as lifecycle events
derived from their ledger events (`codec.lifecycle_event`), in the same publish.

Events leave the outbox only after the bus has them durably (`publish` returned), so a crash or
a bus outage loses nothing: the relay retries with exponential backoff and the events wait in
the outbox, which is itself durable. A crash after publishing and before acknowledging
publishes a batch twice; consumers are idempotent on the event id, which makes that harmless.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import orjson

from cellcelly.application.worker import run_until_stopped
from cellcelly.codec import lifecycle_event
from cellcelly.ports.balance_store import BalanceStore
from cellcelly.ports.event_bus import LEDGER, NOTIFICATIONS, SUBSCRIBER, USAGE, EventBus, Outgoing

log = logging.getLogger(__name__)

TOPIC_OF = {"usage": USAGE, "ledger": LEDGER, "notification": NOTIFICATIONS}


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
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.store = store
        self.bus = bus
        self.batch = batch
        self.idle = idle
        self.backoff = backoff
        self.stats = RelayStats()
        self._stop = asyncio.Event()

    async def relay_once(self) -> int:
        """Publish one batch and acknowledge it; how many events moved (raises when the bus fails)."""
        entries = await self.store.outbox_async(limit=self.batch)
        if not entries:
            return 0
        batch = []
        for e in entries:
            batch.append(
                Outgoing(TOPIC_OF.get(e.event["type"], USAGE), e.event["msisdn"], orjson.dumps(e.event))
            )
            lifecycle = lifecycle_event(e.event)
            if lifecycle is not None:
                batch.append(Outgoing(SUBSCRIBER, lifecycle["msisdn"], orjson.dumps(lifecycle)))
        await self.bus.publish(batch)
        await self.store.ack_async([e.seq for e in entries])  # exactly these: see BalanceStore.ack
        self.stats.relayed += len(entries)
        self.stats.batches += 1
        return len(entries)

    async def run(self) -> None:
        async def step() -> float:
            return self.idle if await self.relay_once() < self.batch else 0.0

        def failed() -> None:
            self.stats.failures += 1

        await run_until_stopped(
            step, self._stop, name="outbox relay", backoff=self.backoff, on_failure=failed
        )

    def stop(self) -> None:
        self._stop.set()
