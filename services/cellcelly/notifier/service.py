"""Consumes notification events and tells the subscriber, once per event id, across replicas.

Per batch: claim its notices' ids in the system of record (`NoticeLedger`, one transaction), send
each, mark those sent told (one more); then the batch's offsets are committed. The replica whose
claim wins sends, any other skips, so two replicas, a replay or a restart on a fresh data dir tell
nothing twice. A crash between the claims and "told" leaves claims that another replica takes over
once `lease` seconds have passed: those notices may be told twice (at-least-once in a window one
batch of sends wide; a lost warning is worse), and the takeover is logged and counted
(`stats.retaken`). A notice another replica is still telling (a live claim) stops the batch,
uncommitted, until that claim is told or expires.

Package expiry is not an event of the charging path (nothing happens when time passes): every
`sweep_every` seconds the notifier asks the system of record which package grants end within
`expiry_horizon` and tells each subscriber once per grant (the id names the grant and its end).
The same sweep forgets notices told more than `keep_told` seconds ago: longer than the bus keeps a
record it could deliver again (Kafka's default retention is 7 days) and than an expiry notice can be
asked for again (a grant is swept only until it ends), so forgetting them tells nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from cellcelly.application.worker import run_until_stopped
from cellcelly.codec import event_from_dict
from cellcelly.domain.charging import NotificationEvent
from cellcelly.errors import ConflictError
from cellcelly.notifier.channels import Channel
from cellcelly.notifier.messages import render
from cellcelly.ports.event_bus import NOTIFICATIONS, EventBus, Record
from cellcelly.ports.notices import Claim, NoticeLedger
from cellcelly.ports.records import SystemOfRecord

log = logging.getLogger(__name__)
GROUP = "cellcelly-notifier"
BATCH = 200  # notices claimed in one transaction: a poll's, and the expiry sweep's at a time
_CLAIMED = (Claim.NEW, Claim.RETAKEN)  # this sender's to tell


class NoticeHeld(ConflictError):
    """Another replica holds a live claim on this notice: the batch is retried, uncommitted."""


@dataclass
class NotifierStats:
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    skipped: int = 0
    retaken: int = 0  # claims taken over after their lease: maybe told twice (see the module)


class Notifier:
    def __init__(
        self,
        bus: EventBus,
        records: SystemOfRecord,
        channel: Channel,
        ledger: NoticeLedger,
        *,
        lease: int = 120,
        expiry_horizon: int = 24 * 3600,
        sweep_every: float = 600.0,
        keep_told: int = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        package_name: Callable[[str], str] = str,
    ) -> None:
        self.records = records
        self.package_name = package_name
        self.channel = channel
        self.ledger = ledger
        self.lease = lease  # longer than a send can take (the channels time out well before)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.consumer = bus.consumer(GROUP, [NOTIFICATIONS])
        self.stats = NotifierStats()
        self.expiry_horizon = expiry_horizon
        self.sweep_every = sweep_every
        self.keep_told = keep_told
        self.clock = clock
        self._swept_at = -float("inf")
        self._stop = asyncio.Event()

    async def notify_once(self, timeout: float = 0.5) -> int:
        polled = await self.consumer.poll(BATCH, timeout)
        try:
            await self._deliver(polled, [])
        except Exception:
            await self.consumer.rewind()  # else the next commit would skip what was not told
            raise
        await self.consumer.commit(polled)
        return len(polled)

    async def _deliver(self, polled: list[Record], delivered: list[str]) -> None:
        events = []
        for record in polled:
            try:
                event = event_from_dict(orjson.loads(record.value))
            except Exception:  # noqa: BLE001 - not ours to fix here; the record is skipped
                log.warning("notifier: undecodable record skipped", extra={"offset": record.offset})
                self.stats.skipped += 1
                continue
            if not isinstance(event, NotificationEvent):
                self.stats.skipped += 1
                continue
            events.append(event)
        await self._tell(events, delivered)  # raising leaves the batch uncommitted

    async def _tell(self, events: list[NotificationEvent], delivered: list[str]) -> None:
        """Send each notice unless it went out before, in order; what went out is appended to
        `delivered`. The batch's claims are one transaction and its "told" another: two committed
        writes a notice took 5-7% of a core at 10,000 CCR/s once the load subscribers' allowances
        ran out, and queued behind the SF's writes for SQLite's one writer. A notice another
        sender holds stops the batch there; what this batch claimed and did not tell is released."""
        if not events:
            return
        ids = list(dict.fromkeys(e.event_id for e in events))
        claims = await asyncio.to_thread(
            self.ledger.claim_notices, ids, self.owner, int(self.clock()), self.lease
        )
        mine = [i for i in ids if claims[i] in _CLAIMED]
        wanted = {e.msisdn for e in events if claims[e.event_id] in _CLAIMED}
        subscribers = await asyncio.to_thread(lambda: {m: self.records.get_subscriber(m) for m in wanted})
        told: list[str] = []
        seen: set[str] = set()
        try:
            for event in events:
                event_id = event.event_id
                claim = claims[event_id]
                if claim is Claim.DONE or event_id in seen:
                    self.stats.duplicates += 1
                    continue
                if claim is Claim.HELD:
                    raise NoticeHeld(event_id)
                seen.add(event_id)
                if claim is Claim.RETAKEN:
                    self.stats.retaken += 1
                    log.warning(
                        "notifier: notice retaken after its lease, may be told twice",
                        extra={"event": event_id},
                    )
                subscriber = subscribers[event.msisdn]
                if subscriber is not None:
                    subject, text = render(event, subscriber.first_name, self.package_name(event.package))
                    await self.channel.send(subscriber, subject, text)
                told.append(event_id)
                if subscriber is None:  # nobody to tell, now or later
                    self.stats.skipped += 1
                    continue
                delivered.append(event_id)
                self.stats.sent += 1
        finally:
            # what went out is told; what this batch claimed and did not tell (a send that failed,
            # or was cancelled: unknown, so maybe told twice) may be claimed again at once
            done = set(told)
            untold = [i for i in mine if i not in done]
            if told or untold:
                await asyncio.to_thread(self._settle, told, untold)

    def _settle(self, told: list[str], untold: list[str]) -> None:
        if told:
            self.ledger.notices_done(told, int(self.clock()))
        for event_id in untold:
            self.ledger.release_notice(event_id, self.owner)

    async def sweep_expiring(self) -> int:
        """Tell every subscriber whose package ends within the horizon (once per grant); how many
        were told now."""
        now = int(self.clock())
        expiring = await asyncio.to_thread(self.records.expiring_packages, now, now + self.expiry_horizon)
        notices = [
            NotificationEvent(
                f"{grant.msisdn}#{grant.package}#{grant.valid_until}#expiring",
                grant.msisdn,
                "package-renewing" if grant.renews else "package-expiring",  # one id: told once either way
                now,
                package=grant.package,
                valid_until=grant.valid_until,
            )
            for grant in expiring
        ]
        delivered: list[str] = []
        for start in range(0, len(notices), BATCH):
            await self._tell(notices[start : start + BATCH], delivered)
        pruned = await asyncio.to_thread(self.ledger.prune_notices, now - self.keep_told)
        if pruned:
            log.info("notifier: forgot notices told long ago", extra={"pruned": pruned})
        self._swept_at = time.monotonic()
        return len(delivered)

    async def run(self) -> None:
        async def step() -> float:
            if time.monotonic() - self._swept_at >= self.sweep_every:
                await self.sweep_expiring()
            await self.notify_once()  # e.g. the SMTP server is down: the batch is retried later
            return 0.0

        def failed() -> None:
            self.stats.failed += 1

        await run_until_stopped(step, self._stop, name="notifier", backoff=(0.5, 30.0), on_failure=failed)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.consumer.close()
