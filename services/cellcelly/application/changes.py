"""Following account changes made by any process: the bus's ledger topic, told to handlers as the
same (kind, msisdn) that `AccountService.listeners` hear in the process that made the change.

Every change of an account is a ledger event: a sign-up ("provisioned"), a top-up (a voucher's
included: it credits the wallet as a "topup"), a package, a status change (suspension or
resumption; the admin API and the MW change accounts through the same AccountService). The
subscriber topic is not read: its lifecycle events are derived from these (`codec.lifecycle_event`),
and reading one topic keeps a subscriber's changes in the order they were made (one key, one
partition), which two topics would not.

Every process reads the topic whole through a tail (`EventBus.tail`): a DGW must hear of a
subscriber's top-up whichever replica holds the session, and a cache in every process must forget
the subscriber. It starts at the end and commits nothing: caches and gateways start empty, so what
changed before does not matter. A record that cannot be read is logged and skipped; a handler that
fails is logged and the others are still told.

The bus is at-least-once (two OCS replicas' relays may both publish a batch before either
acknowledges it): the follower remembers the last `remember` event ids it told and tells a repeat
of one nothing, so a duplicate never becomes a second ASR or RAR.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cellcelly.application.worker import run_until_stopped
from cellcelly.ports.event_bus import LEDGER, EventBus, Record

log = logging.getLogger(__name__)

# a ledger event's kind -> the kind AccountService.listeners are told ("status": the new status)
FROM_LEDGER = {"provisioned": "opened", "topup": "topup", "package": "package", "status": "status"}

Handler = Callable[[str, str], Any]


def change_of(record: Record) -> tuple[str, str, str] | None:
    """(kind, msisdn, event id) of a ledger record, None for a kind no listener is told of. Raises
    ValueError on a record that is not an event."""
    try:
        event = orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError(f"not an event object: {type(event).__name__}")
    kind, msisdn = event.get("kind"), event.get("msisdn")
    if not isinstance(kind, str) or not isinstance(msisdn, str) or not msisdn:
        raise ValueError(f"no kind or msisdn in {sorted(event)}")
    mapped = FROM_LEDGER.get(kind)
    if mapped == "status":
        mapped = event.get("status")
        if not isinstance(mapped, str) or not mapped:
            raise ValueError("a status event without its status")
    event_id = event.get("event_id")
    return None if mapped is None else (mapped, msisdn, event_id if isinstance(event_id, str) else "")


@dataclass
class FollowerStats:
    records: int = 0  # read from the bus
    changes: int = 0  # told to the handlers
    duplicates: int = 0  # an event told before (the bus delivers at least once)
    skipped: int = 0  # records that were not events
    handler_failures: int = 0
    failures: int = 0  # polls that failed (the bus was away)


class ChangeFollower:
    """Tails the ledger topic and tells `handlers` of every change, in the order
    they happened per subscriber. Handlers run on the event loop and must not block."""

    def __init__(
        self,
        bus: EventBus,
        handlers: Sequence[Handler],
        *,
        batch: int = 500,
        backoff: tuple[float, float] = (0.1, 5.0),
        remember: int = 100_000,
    ) -> None:
        self.bus = bus
        self.handlers = list(handlers)
        self.batch = batch
        self.backoff = backoff
        self.tail = bus.tail([LEDGER])
        self.stats = FollowerStats()
        self._told: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._stop = asyncio.Event()
        self._following = False

    async def follow_once(self, timeout: float = 1.0) -> int:
        """Tell the handlers of the changes published since the last call; how many records came."""
        records = await self.tail.poll(self.batch, timeout=timeout)
        self.stats.records += len(records)
        for record in records:
            try:
                change = change_of(record)
            except ValueError as exc:
                self.stats.skipped += 1
                where = f"{record.topic}/{record.partition}@{record.offset}"
                log.warning(
                    "account changes: unreadable record skipped", extra={"at": where, "error": str(exc)}
                )
                continue
            if change is not None and self._first_time(change[2]):
                self._tell(change[0], change[1])
        return len(records)

    def _first_time(self, event_id: str) -> bool:
        if not event_id:
            return True
        if event_id in self._told:
            self.stats.duplicates += 1
            return False
        self._told[event_id] = None
        if len(self._told) > self._remember:
            self._told.popitem(last=False)
        return True

    def _tell(self, kind: str, msisdn: str) -> None:
        self.stats.changes += 1
        for handler in self.handlers:
            try:
                handler(kind, msisdn)
            except Exception:  # noqa: BLE001 - one handler's failure must not keep the others uninformed
                self.stats.handler_failures += 1
                log.exception("account change handler failed", extra={"kind": kind, "msisdn": msisdn})

    async def run(self) -> None:
        """Until `stop`: every change published after the tail started (`self.tail.start()`, else
        the first poll; while the bus is away the worker keeps trying) is told."""

        async def step() -> float:
            if not self._following:
                await self.tail.start()
                self._following = True
                log.info("account changes: following the ledger from its end")
            await self.follow_once(timeout=0.5)
            return 0.0  # the poll itself waits for records

        def failed() -> None:
            self.stats.failures += 1

        await run_until_stopped(
            step, self._stop, name="account changes", backoff=self.backoff, on_failure=failed
        )

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.tail.close()
