"""Consumes usage and ledger events and writes them into the system of record in batches.

Exactly once in effect: the writes are idempotent by event id, and the consumer's offsets are
committed only after the database has committed, so a crash re-delivers a batch that is then
written again as no-ops. A record that cannot be decoded (a poison message) goes to the
dead-letter topic with where it came from and why, and the stream goes on.

A batch whose write fails on its data (a value the database refuses: `is_data_error`) is split
in halves, and halves again, until the records that fail on their own are found; those go to the
dead-letter topic with the database's error, the others are written, and only then are the
offsets committed. One bad record must not hold up everyone's usage (issue 12: one CCR stopped
all usage from reaching the record). A batch that fails for any other reason (database down) is
retried whole with backoff, and rewinds the consumer first, so no later commit can pass it; while
that lasts the SF is stalled: `stalled()` (its readiness and metrics), one log line when it begins
and one when it ends.

`run()` overlaps the poll and decoding of the next batch with the write of the current one (the
write waits on the database, in a thread); writes and commits stay one batch at a time, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import exc as sa_exc

from cellcelly.application.worker import run_until_stopped
from cellcelly.codec import event_from_dict
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.ports.event_bus import DEAD_LETTER, LEDGER, USAGE, EventBus, EventConsumer, Outgoing, Record
from cellcelly.ports.records import SystemOfRecord

log = logging.getLogger(__name__)
GROUP = "cellcelly-sf"
BACKOFF = (0.1, 5.0)  # seconds between retries of a failing batch: first, at most
MAX_ERROR_TEXT = 2000  # characters of the database's error kept in a dead letter

# raised before the row reaches the database (SQLite: "Python int too large to convert")
_BAD_VALUES = (OverflowError, ValueError, TypeError, UnicodeError)

Event = UsageEvent | LedgerEvent


def is_data_error(exc: BaseException) -> bool:
    """True when the database refused the data itself, so the same rows would fail again: a
    value out of range, too long, a constraint. Anything else (connection lost, lock timeout,
    server shut down) is transient and the batch is retried whole."""
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    # SQLSTATE class 22 (data exception) and 23 (integrity constraint violation), also when a
    # driver's error is raised as it is (psycopg's COPY)
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig):
        sqlstate = getattr(candidate, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23"):
            return True
    if isinstance(exc, sa_exc.DBAPIError):
        return False  # OperationalError, InterfaceError...: the database, not the row
    if isinstance(exc, sa_exc.StatementError):
        return isinstance(orig, _BAD_VALUES)
    return isinstance(exc, _BAD_VALUES)


@dataclass
class _Batch:
    records: list[Record]
    usage: list[UsageEvent] = field(default_factory=list)
    ledger: list[LedgerEvent] = field(default_factory=list)
    events: list[tuple[Record, Event]] = field(default_factory=list)  # for isolating a poison record
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
    failures: int = 0  # batches that failed and were retried (not those that only isolated poison)


class SyncFunction:
    def __init__(
        self,
        bus: EventBus,
        records: SystemOfRecord,
        *,
        batch: int = 2000,
        linger: float = 0.0,
        group: str = GROUP,
        lag_every: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
        stall_after: float = 30.0,
    ) -> None:
        self.bus = bus
        self.records = records
        self.batch = batch
        # after a batch smaller than `batch`, wait up to this long before the next poll, so that
        # batches gather what arrives meanwhile: a usage record dirties its subscriber's page of
        # the history's index whatever the batch holds, and a batch holding several records of a
        # subscriber writes that page once (the deployed SF: `sf_linger_seconds`, `sf_batch`).
        # How long: `linger_for`, in proportion to the rate records come in
        self.linger = linger
        # failing without progress for this long makes the SF stalled (readiness, metrics); a blip
        # of the database shorter than that only shows in the failure counter
        self.stall_after = stall_after
        self._failing_since: float | None = None
        self._delay = BACKOFF[0]
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
            else:
                continue
            batch.events.append((record, event))
        return batch

    async def _store(self, batch: _Batch) -> None:
        """Write, dead-letter, then commit the batch's offsets: only once the database has committed
        and the dead letters are on the bus."""
        refused = await asyncio.to_thread(self._write_batch, batch)
        poison = batch.poison + [_dead_letter(record, exc) for record, exc in refused]
        if poison:
            await self.bus.publish(poison)
            self.stats.dead_lettered += len(poison)
        await self.consumer.commit(batch.records)
        self.stats.batches += 1
        self._progress()
        if self.on_batch is not None:
            self.on_batch(len(batch.records), time.perf_counter() - batch.polled_at)

    def _write_batch(self, batch: _Batch) -> list[tuple[Record, BaseException]]:
        """Write the batch; if the database refuses its data, the records that fail on their own
        (returned with their errors) are left out and the rest is written."""
        try:
            self._write(batch.usage, batch.ledger)
            return []
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning(
                "sf: the database refused a batch's data; isolating the records at fault",
                extra={"records": len(batch.events), "error": _error_text(exc)[:200]},
            )
        mid = len(batch.events) // 2
        return self._isolate(batch.events[:mid]) + self._isolate(batch.events[mid:])

    def _isolate(self, items: list[tuple[Record, Event]]) -> list[tuple[Record, BaseException]]:
        """Bisect: log2(batch) writes for each record at fault; the writes are idempotent, so
        what an earlier attempt wrote is a no-op now."""
        if not items:
            return []
        try:
            self._write(
                [e for _, e in items if isinstance(e, UsageEvent)],
                [e for _, e in items if isinstance(e, LedgerEvent)],
            )
            return []
        except Exception as exc:
            if not is_data_error(exc):
                raise  # the database went away meanwhile: the whole batch again, later
            if len(items) == 1:
                record, event = items[0]
                log.warning(
                    "sf: record refused by the database, dead-lettered",
                    extra={
                        "event_id": event.event_id,
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "error": _error_text(exc)[:200],
                    },
                )
                return [(record, exc)]
        mid = len(items) // 2
        return self._isolate(items[:mid]) + self._isolate(items[mid:])

    # --- stalls ---------------------------------------------------------------------------------

    def stalled_for(self) -> float:
        """Seconds the SF has been failing without progress (0 when it is not)."""
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    def stalled(self) -> bool:
        return self._failing_since is not None and self.stalled_for() >= self.stall_after

    def _progress(self) -> None:
        """A batch committed, or the bus answered with nothing to do: not stalled."""
        self._delay = BACKOFF[0]
        if self._failing_since is not None:
            log.warning("sf: going again", extra={"stalled_seconds": round(self.stalled_for(), 1)})
            self._failing_since = None

    def _failed(self, exc: BaseException) -> float:
        """A failed batch: counted, logged once per stall (not once per retry); returns how long
        to wait before the next try."""
        self.stats.failures += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "sf: writing to the system of record failed; retrying until it goes through"
                " (logged again when it does)",
                extra={"error": _error_text(exc)[:500]},
                exc_info=exc,
            )
        else:
            log.debug("sf: still failing", extra={"error": _error_text(exc)[:200]})
        delay = self._delay
        self._delay = min(delay * 2, BACKOFF[1])
        return delay

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
            self._progress()
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
        last_poll: float | None = None  # when the poll before came back (monotonic): the rate

        def done() -> bool:
            return self._stop.is_set() or (until is not None and until())

        try:
            while not done():
                polled = await self.consumer.poll(self.batch, timeout)
                now = time.monotonic()
                since, last_poll = (None if last_poll is None else now - last_poll), now
                batch = self._decode(polled) if polled else None
                if storing is not None:
                    task, storing = storing, None
                    await task  # raises if that batch failed: nothing after it is committed
                if batch is None:
                    self._progress()  # the bus answered and nothing is left unwritten
                    self._refresh_lag(idle=True)
                    continue
                storing = asyncio.create_task(self._store(batch))
                self._refresh_lag(idle=False)
                wait = linger_for(len(polled), since, self.batch, self.linger)
                if wait > 0:
                    with contextlib.suppress(TimeoutError):  # a stop ends it at once
                        await asyncio.wait_for(self._stop.wait(), wait)
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
            try:
                await self.sync()  # returns only when stopped, or by raising
            except Exception as exc:  # noqa: BLE001 - retried whole: see the module docstring
                return self._failed(exc)
            return 0.0

        await run_until_stopped(step, self._stop, name="sf", backoff=BACKOFF)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)
        await self.consumer.close()


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def linger_for(polled: int, since: float | None, batch: int, linger: float) -> float:
    """How long to wait for more after a poll of `polled` records, `since` seconds after the one
    before (None: the first). Waiting buys fewer, larger writes and costs the record's freshness:
    - at most `linger`, and no longer than records coming at this rate take to fill a batch (past
      that the wait only leaves a backlog);
    - in proportion to the rate below the one at which a whole linger fills a batch: a quiet
      system's record stays current, and a few records a second cost little CPU however small
      their batches.
    A full poll does not wait: more is already there."""
    if linger <= 0 or polled <= 0 or polled >= batch:
        return 0.0
    if since is None or since <= 0:
        return linger * polled / batch  # no rate yet: what this poll alone says
    rate = polled / since
    return min(linger, linger * rate * linger / batch, batch / rate)


def _dead_letter(record: Record, exc: BaseException) -> Outgoing:
    envelope = {
        "schema": 1,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "error": _error_text(exc)[:MAX_ERROR_TEXT],
        "value": record.value.decode("utf-8", errors="replace"),
    }
    return Outgoing(DEAD_LETTER, record.key, orjson.dumps(envelope))
