"""The outbox relay: moves events from the balance store's outbox to the event bus.

Sign-ups, suspensions and resumptions also go to the subscriber topic, as lifecycle events
derived from their ledger events (`codec.lifecycle_event`), in the same publish.

Events leave the outbox only after the bus has them durably (`flush` returned), so a crash or
a bus outage loses nothing: the relay retries with exponential backoff and the events wait in
the outbox, which is itself durable. A crash after sending and before acknowledging sends them
twice; consumers are idempotent on the event id, which makes that harmless.

Sending and making durable are apart: each look `send`s what is new (small batches, so no look
stalls the charges in flight for long) and the relay `flush`es and acknowledges what it sent at
most every `flush_every` seconds, and at once when a look finds nothing new. On the embedded bus a
flush is an fsync of each file written; one a look was 7% of the stand-alone OCS's CPU. What was
sent and not yet acknowledged is not read again: the relay reads each part after the highest seq
it sent from it (seqs increase within a part in commit order, VoltDB's too).

It reads and acknowledges the outbox a part at a time (`BalanceStore.outbox_parts`: on VoltDB a
partition, so each call is a single-partition transaction; whole-outbox calls stop every site), all
parts read at once and sent together. Each subscriber's events live in one part, so their
order on the bus (keyed by subscriber) is kept. The parts are read again every `parts_every`
seconds (the relay flushes first) and after any failure; each part is then read from its start
again (a rebalanced VoltDB cluster may have moved rows between partitions).
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
# CCR in the parent and a third more in the SF, for a worse p99 (2026-12-05, docs/performance-log.md).
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
        # the most seconds between a send and its flush (and acknowledgement); a look that finds
        # nothing new flushes at once
        flush_every: float = 0.05,
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
        self.flush_every = flush_every
        self._after: dict[str, int] = {}  # each part: the highest seq sent from it
        self._sent: dict[str, list[int]] = {}  # each part: seqs sent and not yet acknowledged
        self._flushed_at = time.monotonic()

    async def relay_once(self) -> int:
        """Send one batch of each part, flush and acknowledge everything sent; how many events were
        sent (raises when the bus fails)."""
        try:
            moved = await self._send_parts()
            await self._flush()
            return moved
        except BaseException:
            self._forget()
            raise

    def _forget(self) -> None:
        """After a failure: read the parts and everything not acknowledged again (sent twice at
        worst): reading the parts anew reads each from its start."""
        self._parts = []
        self._sent = {}

    async def _send_parts(self) -> int:
        store = self.store
        if not self._parts or time.monotonic() - self._parts_read >= self.parts_every:
            await self._flush()  # what was sent is acknowledged before the parts are read anew
            self._parts = await store.outbox_parts_async()
            self._parts_read = time.monotonic()
            self._after = {}  # the only place the cursors go back: after a failure too (`_forget`)
        parts = self._parts
        after = self._after
        reads = await asyncio.gather(
            *(store.outbox_async(limit=self.batch, after=after.get(p, 0), part=p) for p in parts)
        )
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
        await self.bus.send(batch)
        moved = 0
        for p, entries in zip(parts, reads, strict=True):
            if entries:
                seqs = [e.seq for e in entries]
                after[p] = max(after.get(p, 0), max(seqs))
                self._sent.setdefault(p, []).extend(seqs)
                moved += len(seqs)
        self.stats.batches += 1
        return moved

    async def _flush(self) -> int:
        """Make what was sent durable, then acknowledge exactly it, each seq in its part (see
        BalanceStore.ack); how many events that was."""
        if not self._sent:
            return 0
        await self.bus.flush()
        sent, self._sent = self._sent, {}
        await asyncio.gather(*(self.store.ack_async(seqs, part=p) for p, seqs in sent.items()))
        acknowledged = sum(len(seqs) for seqs in sent.values())
        self.stats.relayed += acknowledged
        self._flushed_at = time.monotonic()
        return acknowledged

    async def look(self) -> float:
        """One look of `run`: send what is new, flush when due; the seconds to wait before the next."""
        try:
            moved = await self._send_parts()
            if not moved or time.monotonic() - self._flushed_at >= self.flush_every:
                moved += await self._flush()
        except BaseException:
            self._forget()
            raise
        return 0.0 if self._full else self.busy if moved else self.idle

    async def run(self) -> None:
        def failed() -> None:
            self.stats.failures += 1

        await run_until_stopped(
            self.look, self._stop, name="outbox relay", backoff=self.backoff, on_failure=failed
        )
        try:  # what was sent is acknowledged now, not sent again by the next relay
            await self._flush()
        except Exception:  # noqa: BLE001 - it stays in the outbox: sent again, which is harmless
            log.warning("outbox relay: the last flush failed; those events will be sent again", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
