"""The notifier's "told once" fact lives in the record: two replicas on one record, a restart on a
fresh data dir, and the crash window between the claim and the send, on SQLite and PostgreSQL.

The channel here records what it is asked to send (SMTP itself is proven in test_notifier.py); the
record, the claims and the bus are the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.adapters.sql import SqlNoticeLedger, SqlRecords
from cellcelly.codec import event_to_dict
from cellcelly.domain.charging import NotificationEvent
from cellcelly.notifier.service import NoticeHeld, Notifier
from cellcelly.ports.event_bus import NOTIFICATIONS, Outgoing
from cellcelly.ports.notices import Claim
from cellcelly.ports.records import SubscriberRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
MSISDN = "5361112233"
NOW = 1_790_000_000


class Recorder:
    """A channel that keeps what it was asked to send; `fail` makes the next sends raise."""

    def __init__(self, told: list[str]) -> None:
        self.told = told
        self.fail = False

    async def send(self, to: SubscriberRecord, subject: str, text: str) -> None:
        await asyncio.sleep(0.001)  # a send takes time: the other replica runs meanwhile
        if self.fail:
            raise OSError("channel down")
        self.told.append(text)


def notices(n: int) -> list[NotificationEvent]:
    return [NotificationEvent(f"wallet-low#{i}", MSISDN, "wallet-low", NOW, wallet=i * 100) for i in range(n)]


async def bus_with(path: Path, events: list[NotificationEvent]) -> EmbeddedBus:
    bus = EmbeddedBus(path)
    await bus.publish([Outgoing(NOTIFICATIONS, e.msisdn, orjson.dumps(event_to_dict(e))) for e in events])
    return bus


async def drain(notifier: Notifier) -> None:
    """Poll until the topic is done; a notice another replica is telling is asked again later."""
    while True:
        try:
            if not await notifier.notify_once(timeout=0.05):
                return
        except NoticeHeld:
            await asyncio.sleep(0.01)


@pytest.fixture
def replica(db_url: str, records: SqlRecords) -> Iterator[SqlRecords]:
    """A second process's view of the same record: its own engine and pool."""
    records.add_subscriber(SubscriberRecord(MSISDN, "Ilgın", "Öz", "ilgin@example.com", "active", ""))
    other = SqlRecords(db_url)
    try:
        yield other
    finally:
        other.close()


async def test_two_replicas_with_the_same_events_tell_each_notice_once(
    tmp_path: Path, records: SqlRecords, replica: SqlRecords
) -> None:
    """Both replicas get every event (as after a rebalance or a replay): each is told once."""
    events = notices(20)
    told: list[str] = []
    a = Notifier(
        await bus_with(tmp_path / "a", events), records, Recorder(told), SqlNoticeLedger(records.engine)
    )
    b = Notifier(
        await bus_with(tmp_path / "b", events), replica, Recorder(told), SqlNoticeLedger(replica.engine)
    )
    await asyncio.gather(drain(a), drain(b))
    assert sorted(told) == sorted(set(told)) and len(told) == 20
    assert a.stats.sent + b.stats.sent == 20
    assert a.stats.duplicates + b.stats.duplicates >= 20  # a batch held up is polled again
    await a.close()
    await b.close()


async def test_a_restart_on_a_fresh_data_dir_tells_nothing_again(
    tmp_path: Path, records: SqlRecords, replica: SqlRecords
) -> None:
    """The events come again (offsets not committed before a crash) to a process with nothing on
    disk: the record says they were told."""
    events = notices(5)
    told: list[str] = []
    first = Notifier(
        await bus_with(tmp_path / "one", events), records, Recorder(told), SqlNoticeLedger(records.engine)
    )
    await drain(first)
    await first.close()
    assert len(told) == 5
    restarted = Notifier(
        await bus_with(tmp_path / "fresh", events), replica, Recorder(told), SqlNoticeLedger(replica.engine)
    )
    await drain(restarted)
    assert len(told) == 5 and restarted.stats.sent == 0 and restarted.stats.duplicates == 5
    await restarted.close()


async def test_the_crash_window_between_claim_and_send_is_retaken_after_the_lease(
    tmp_path: Path, records: SqlRecords, replica: SqlRecords
) -> None:
    """A replica claimed a notice and died before telling it: nobody tells it while its lease runs
    (it may be sending), and the batch stays uncommitted; after the lease one replica tells it
    (at-least-once: it is counted as retaken). A send that fails releases its claim at once."""
    events = notices(2)
    dead = SqlNoticeLedger(replica.engine)
    assert dead.claim_notice(events[0].event_id, "dead-replica", NOW, 120) is Claim.NEW
    now = [NOW + 60]
    told: list[str] = []
    channel = Recorder(told)
    notifier = Notifier(
        await bus_with(tmp_path / "bus", events),
        records,
        channel,
        SqlNoticeLedger(records.engine),
        lease=120,
        clock=lambda: now[0],
    )
    with pytest.raises(NoticeHeld):
        await notifier.notify_once(timeout=0.05)
    assert told == [] and await notifier.consumer.lag() == 2  # nothing told, nothing committed
    now[0] = NOW + 121
    channel.fail = True
    with pytest.raises(OSError):
        await notifier.notify_once(timeout=0.05)  # retaken, then the send fails: released
    assert told == [] and await notifier.consumer.lag() == 2
    channel.fail = False
    now[0] += 1  # well inside a lease: only a released claim can be taken now
    await drain(notifier)
    assert len(told) == 2 and notifier.stats.retaken == 1
    assert dead.claim_notice(events[0].event_id, "dead-replica", now[0] + 10_000, 120) is Claim.DONE
    await notifier.close()


async def test_the_sweep_forgets_only_notices_told_long_ago(tmp_path: Path, records: SqlRecords) -> None:
    """Told notices older than `keep_told` are pruned by the sweep; recent ones and unfinished
    claims stay, so nothing the bus can still deliver is told twice."""
    ledger = SqlNoticeLedger(records.engine)
    keep = 30 * 24 * 3600
    for event_id, told_at in (("old", NOW - keep - 1), ("recent", NOW - keep + 60)):
        assert ledger.claim_notice(event_id, "r", told_at, 120) is Claim.NEW
        ledger.notices_done([event_id], told_at)
    assert ledger.claim_notice("unfinished", "r", NOW - keep - 100, 120) is Claim.NEW
    notifier = Notifier(
        await bus_with(tmp_path / "bus", []), records, Recorder([]), ledger, keep_told=keep, clock=lambda: NOW
    )
    await notifier.sweep_expiring()
    assert ledger.claim_notice("old", "r", NOW, 120) is Claim.NEW  # forgotten
    assert ledger.claim_notice("recent", "r", NOW, 120) is Claim.DONE
    assert ledger.claim_notice("unfinished", "r", NOW - keep, 10**9) is Claim.HELD  # never pruned
    await notifier.close()


def test_a_batch_of_claims_decides_each_as_one_claim_does(records: SqlRecords) -> None:
    """NEW, DONE, HELD and RETAKEN in one `claim_notices`, as `claim_notice` would say them."""
    ledger = SqlNoticeLedger(records.engine)
    assert ledger.claim_notice("told", "r", NOW - 10, 120) is Claim.NEW
    ledger.notices_done(["told"], NOW - 5)
    assert ledger.claim_notice("held", "other", NOW - 60, 120) is Claim.NEW
    assert ledger.claim_notice("stale", "dead", NOW - 121, 120) is Claim.NEW
    ids = ["fresh", "told", "held", "stale", *(f"more-{i}" for i in range(600))]  # past one IN list
    claims = ledger.claim_notices(ids, "me", NOW, 120)
    assert claims["fresh"] is Claim.NEW and claims["told"] is Claim.DONE
    assert claims["held"] is Claim.HELD and claims["stale"] is Claim.RETAKEN
    assert all(claims[f"more-{i}"] is Claim.NEW for i in range(600)) and len(claims) == len(ids)
    ledger.notices_done(["fresh", "stale", *(f"more-{i}" for i in range(600))], NOW + 1)
    again = ledger.claim_notices(ids, "someone", NOW + 2, 120)
    assert {i: c for i, c in again.items() if c is not Claim.DONE} == {"held": Claim.HELD}


@pytest.mark.postgres
def test_a_batch_that_meets_a_concurrent_claim_claims_one_by_one(postgres_schema_url: str) -> None:
    """Another replica inserts one of the batch's ids while the batch is deciding (PostgreSQL; on
    SQLite BEGIN IMMEDIATE serialises writers): the batch's INSERT fails on the key, and each id is
    claimed on its own, the other replica's as held."""
    from sqlalchemy import text

    records = SqlRecords(postgres_schema_url)
    other = SqlRecords(postgres_schema_url)
    try:
        records.migrate()
        ledger = SqlNoticeLedger(records.engine)
        with other.engine.connect() as conn:
            conn.execute(
                text("INSERT INTO notices (event_id, owner, claimed_at) VALUES ('b', 'other', now())")
            )
            with ThreadPoolExecutor(1) as pool:  # its INSERT waits for ours to end
                batch = pool.submit(ledger.claim_notices, ["a", "b", "c"], "me", NOW, 120)
                time.sleep(0.5)
                assert not batch.done()
                conn.commit()
                claims = batch.result(20)
        assert claims == {"a": Claim.NEW, "b": Claim.HELD, "c": Claim.NEW}
    finally:
        records.close()
        other.close()


async def test_a_batch_is_claimed_and_told_in_one_transaction_each(
    tmp_path: Path, records: SqlRecords
) -> None:
    """Twenty notices: one `claim_notices`, one `notices_done`, no claim of its own each (two
    committed writes a notice took 5-7% of a core at 10,000 CCR/s, docs/performance-log.md)."""
    calls: list[str] = []

    class Counted(SqlNoticeLedger):
        def claim_notice(self, *args: Any) -> Claim:
            calls.append("claim_notice")
            return super().claim_notice(*args)

        def claim_notices(self, *args: Any) -> dict[str, Claim]:
            calls.append("claim_notices")
            return super().claim_notices(*args)

        def notices_done(self, *args: Any) -> None:
            calls.append("notices_done")
            super().notices_done(*args)

    records.add_subscriber(SubscriberRecord(MSISDN, "Ilgın", "Öz", "ilgin@example.com", "active", ""))
    events = notices(20)
    told: list[str] = []
    notifier = Notifier(
        await bus_with(tmp_path / "bus", [*events, events[3]]),
        records,
        Recorder(told),
        Counted(records.engine),
    )
    await drain(notifier)
    assert len(told) == 20 and notifier.stats.sent == 20 and notifier.stats.duplicates == 1
    assert calls == ["claim_notices", "notices_done"], calls
    await notifier.close()
