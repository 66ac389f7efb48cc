"""The outbox relay on a real VoltDB 10.1.1: it walks the outbox a partition at a time
(single-partition reads and acknowledgements) and still moves every event, each subscriber's in
commit order, at least once, while commits go on. Skipped on a machine without Java (with javac)
and Maven; a failure under CI=true.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
import uvloop

from cellcelly.adapters.balance_voltdb import VoltBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account
from cellcelly.domain.provisioning import open_account, top_up
from cellcelly.ports.balance_store import Commit
from cellcelly.ports.event_bus import LEDGER, SUBSCRIBER, Outgoing
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOW = 1_800_000_000
SUBSCRIBERS = [f"53400000{i:02d}" for i in range(24)]
TOP_UPS = 15  # per subscriber, committed while the relay runs
CATALOGUE = CatalogueHolder.from_file(DEFAULT_CATALOGUE)


def opened(acc: Account | None, msisdn: str) -> tuple[None, Commit]:
    change = open_account(msisdn, CATALOGUE.current, None, NOW)
    return None, Commit(change.account, events=change.events)


def topped_up(acc: Account | None, ref: str) -> tuple[None, Commit]:
    assert acc is not None
    change = top_up(acc, 1, ref, CATALOGUE.current.policy, NOW)
    return None, Commit(change.account, events=change.events)


def ledger_ids(bus: EmbeddedBus) -> list[str]:
    """Every ledger event id on the bus in bus order, read by a group of its own."""
    return [orjson.loads(r.value)["event_id"] for r in bus.consumer("inspector", [LEDGER])._take(10**6)]


class DownBus:
    """A bus whose broker is away: the send fails after the relay has read its batch."""

    async def send(self, batch: Sequence[Outgoing]) -> None:
        raise ConnectionError("broker down")

    async def flush(self) -> None:
        raise ConnectionError("broker down")


def test_the_relay_moves_every_partition_in_order_while_commits_go_on(voltdb: str, tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus")

    async def main() -> None:
        store = VoltBalanceStore(voltdb)
        try:
            parts = await store.outbox_parts_async()
            assert len(parts) == 2  # scripts/voltdb.sh starts two sites: the walk has something to walk
            for m in SUBSCRIBERS:
                await store.transact_async(m, lambda acc, m=m: opened(acc, m))

            # the bus down: the send fails after the read, so nothing is acknowledged
            down = OutboxRelay(store, DownBus())  # type: ignore[arg-type]
            with pytest.raises(ConnectionError):
                await down.relay_once()
            assert await store.outbox_size_async() == len(SUBSCRIBERS)  # one sign-up event each

            relay = OutboxRelay(store, bus, batch=7, idle=0.01, parts_every=0.05)  # small: many passes
            running = asyncio.get_running_loop().create_task(relay.run())

            async def commits(m: str) -> None:
                for n in range(TOP_UPS):
                    await store.transact_async(m, lambda acc, n=n: topped_up(acc, f"r{n:02d}"))
                    await asyncio.sleep(0)

            await asyncio.gather(*(commits(m) for m in SUBSCRIBERS))
            for _ in range(500):
                if await store.outbox_size_async() == 0:
                    break
                await asyncio.sleep(0.02)
            relay.stop()
            await running
            assert await store.outbox_size_async() == 0
            assert relay.stats.failures == 0
        finally:
            await store.leave_loop()
            store.close()

    uvloop.run(main())
    ids = ledger_ids(bus)
    assert len(ids) == len(set(ids)) == len(SUBSCRIBERS) * (1 + TOP_UPS)  # every one, once (no failure)
    for m in SUBSCRIBERS:  # each subscriber's in commit order
        assert [i for i in ids if i.startswith(m)] == [f"{m}#provisioned"] + [
            f"{m}#topup#r{n:02d}" for n in range(TOP_UPS)
        ]
    signups = [orjson.loads(r.value) for r in bus.consumer("lifecycle", [SUBSCRIBER])._take(10**6)]
    assert sorted(e["msisdn"] for e in signups) == sorted(SUBSCRIBERS)
