"""Consumes notification events and tells the subscriber, once per event id.

Order per batch: skip what was already sent, send the rest, write their ids to the sent log
(fsynced), then commit the offsets. A crash after sending and before the log is written can
send one message twice; the log makes every later delivery of the same event a no-op.

Package expiry is not an event of the charging path (nothing happens when time passes): every
`sweep_every` seconds the notifier asks the system of record which package grants end within
`expiry_horizon` and tells each subscriber once per grant (the id names the grant and its end).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from cellcelly.application.worker import run_until_stopped
from cellcelly.codec import event_from_dict
from cellcelly.domain.charging import NotificationEvent
from cellcelly.notifier.channels import Channel
from cellcelly.notifier.messages import render
from cellcelly.ports.event_bus import NOTIFICATIONS, EventBus, Record
from cellcelly.ports.records import SystemOfRecord

log = logging.getLogger(__name__)
GROUP = "cellcelly-notifier"


class SentLog:
    """Ids of the notifications already delivered (a durable append-only file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ids = set(path.read_text(encoding="utf-8").split()) if path.exists() else set()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_ids: list[str]) -> None:
        if not event_ids:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(f"{e}\n" for e in event_ids).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._ids.update(event_ids)


@dataclass
class NotifierStats:
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    skipped: int = 0


class Notifier:
    def __init__(
        self,
        bus: EventBus,
        records: SystemOfRecord,
        channel: Channel,
        sent: SentLog,
        *,
        expiry_horizon: int = 24 * 3600,
        sweep_every: float = 600.0,
        clock: Callable[[], float] = time.time,
        package_name: Callable[[str], str] = str,
    ) -> None:
        self.records = records
        self.package_name = package_name
        self.channel = channel
        self.sent = sent
        self.consumer = bus.consumer(GROUP, [NOTIFICATIONS])
        self.stats = NotifierStats()
        self.expiry_horizon = expiry_horizon
        self.sweep_every = sweep_every
        self.clock = clock
        self._swept_at = -float("inf")
        self._stop = asyncio.Event()

    async def notify_once(self, timeout: float = 0.5) -> int:
        polled = await self.consumer.poll(200, timeout)
        delivered: list[str] = []
        try:
            await self._deliver(polled, delivered)
        finally:
            self.sent.add(delivered)  # what went out is never sent again, even if the batch failed
        await self.consumer.commit(polled)
        return len(polled)

    async def _deliver(self, polled: list[Record], delivered: list[str]) -> None:
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
            await self._tell(event, delivered)  # raising leaves the batch uncommitted

    async def _tell(self, event: NotificationEvent, delivered: list[str]) -> None:
        """Send one notice unless it went out before; what went out is appended to `delivered`."""
        if event.event_id in self.sent or event.event_id in delivered:
            self.stats.duplicates += 1
            return
        subscriber = await asyncio.to_thread(self.records.get_subscriber, event.msisdn)
        if subscriber is None:
            self.stats.skipped += 1
            return
        subject, text = render(event, subscriber.first_name, self.package_name(event.package))
        await self.channel.send(subscriber, subject, text)
        delivered.append(event.event_id)
        self.stats.sent += 1

    async def sweep_expiring(self) -> int:
        """Tell every subscriber whose package ends within the horizon (once per grant); how many
        were told now."""
        now = int(self.clock())
        expiring = await asyncio.to_thread(self.records.expiring_packages, now, now + self.expiry_horizon)
        delivered: list[str] = []
        try:
            for grant in expiring:
                notice = NotificationEvent(
                    f"{grant.msisdn}#{grant.package}#{grant.valid_until}#expiring",
                    grant.msisdn,
                    "package-expiring",
                    now,
                    package=grant.package,
                    valid_until=grant.valid_until,
                )
                await self._tell(notice, delivered)
        finally:
            self.sent.add(delivered)
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
