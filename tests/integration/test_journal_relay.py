"""The embedded store's journal relay (`deploy.journal_relay`): a process of its own publishes what
the journal holds, the parent acknowledges; nothing is lost when the child dies, the journal
rotates or the relay starts with an outbox left from before, and each subscriber's events reach
the bus in commit order."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.balance_files import JournalMark, JournalMoved, JournalTail
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.deploy import ocs
from cellcelly.deploy.backends import open_backends
from cellcelly.deploy.journal_relay import JournalRelay
from cellcelly.domain.account import Account
from cellcelly.domain.provisioning import open_account, top_up
from cellcelly.ports.balance_store import Commit
from cellcelly.ports.event_bus import LEDGER
from cellcelly.settings import DEFAULT_CATALOGUE, Settings
from cellcelly_testing import EPHEMERAL_PORTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SUBSCRIBERS = ("5320000001", "5320000002", "5320000003")
NOW = 1_800_000_000
CATALOGUE = CatalogueHolder.from_file(DEFAULT_CATALOGUE).current


def open_all(store: EmbeddedBalanceStore) -> None:
    for msisdn in SUBSCRIBERS:

        def opened(account: Account | None, msisdn: str = msisdn) -> tuple[None, Commit]:
            change = open_account(msisdn, CATALOGUE, "ANKARA", NOW)
            return None, Commit(change.account, events=change.events)

        store.transact(msisdn, opened)


def credit(store: EmbeddedBalanceStore, msisdn: str, ref: str) -> None:
    def fn(account: Account | None) -> tuple[None, Commit]:
        assert account is not None
        change = top_up(account, 1, ref, CATALOGUE.policy, NOW)
        return None, Commit(change.account, events=change.events)

    store.transact(msisdn, fn)


def top_ups_on_the_bus(directory: Path) -> dict[str, list[str]]:
    """Each subscriber's top-up references as the ledger topic holds them, in order (a partition
    keeps one subscriber's order), each once: a second copy is what an idempotent consumer skips."""
    bus = EmbeddedBus(directory)
    found: dict[str, list[str]] = {}
    for partition in range(bus.partitions):
        path = directory / f"{LEDGER}-{partition}.log"
        if not path.exists():
            continue
        data, at = path.read_bytes(), 0
        while at < len(data):
            klen = int.from_bytes(data[at : at + 4], "big")
            vlen = int.from_bytes(data[at + 4 + klen : at + 8 + klen], "big")
            event = orjson.loads(data[at + 8 + klen : at + 8 + klen + vlen])
            at += 8 + klen + vlen
            refs = found.setdefault(event["msisdn"], [])
            if event["kind"] == "topup" and event["reference"] not in refs:
                refs.append(event["reference"])
    return found


@contextmanager
def store_in(directory: Path, **options: object) -> Iterator[EmbeddedBalanceStore]:
    store = EmbeddedBalanceStore(directory, **options)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        store.close()


async def until(condition: object, within: float, what: str) -> None:
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - began < within, f"not within {within} s: {what}"
        await asyncio.sleep(0.02)


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"CELLCELLY_DATA_DIR": str(tmp_path), "CELLCELLY_EVENT_BUS": "embedded"}


async def relaying(
    tmp_path: Path, store: EmbeddedBalanceStore, commits: int, *, every: float = 0.05, between: object = None
) -> tuple[JournalRelay, dict[str, list[str]]]:
    """Commit `commits` top-ups round the subscribers while a relay runs; wait until the outbox is
    empty; stop it. The relay, and what the bus holds."""
    bus = EmbeddedBus(tmp_path / "bus")
    relay = JournalRelay(store, bus, env_for(tmp_path), every=every, backoff=(0.05, 0.2))
    task = asyncio.create_task(relay.run())
    try:
        for n in range(commits):
            credit(store, SUBSCRIBERS[n % len(SUBSCRIBERS)], f"r{n}")
            if between is not None:
                await between(n, relay)  # type: ignore[operator]
            elif n % 10 == 0:
                await asyncio.sleep(0.01)
        await until(lambda: store.outbox_size() == 0, 30, "the outbox acknowledged")
    finally:
        relay.stop()
        await task
        await bus.close()
    return relay, top_ups_on_the_bus(tmp_path / "bus")


def expected(commits: int, before: int = 0) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {m: [] for m in SUBSCRIBERS}
    for n in range(before):
        refs[SUBSCRIBERS[n % len(SUBSCRIBERS)]].append(f"b{n}")
    for n in range(commits):
        refs[SUBSCRIBERS[n % len(SUBSCRIBERS)]].append(f"r{n}")
    return refs


async def test_the_outbox_left_from_before_and_what_comes_after_reach_the_bus_in_order(
    tmp_path: Path,
) -> None:
    with store_in(tmp_path / "balances") as store:
        open_all(store)
        for n in range(7):  # waiting in the outbox before the relay starts: the parent's part
            credit(store, SUBSCRIBERS[n % len(SUBSCRIBERS)], f"b{n}")
        relay, found = await relaying(tmp_path, store, 60)
        assert found == expected(60, before=7)
        assert relay.stats.failures == 0
        # the sign-ups, the backlog and the 60: acknowledged once each
        assert relay.stats.relayed == store.journal_mark().seq
    with store_in(tmp_path / "balances") as again:  # the acknowledgements were journaled
        assert again.outbox_size() == 0


async def test_a_killed_child_is_started_again_and_nothing_is_lost(tmp_path: Path) -> None:
    killed: list[int] = []

    async def kill_once(n: int, relay: JournalRelay) -> None:
        if n == 20:
            await until(lambda: relay.pid is not None, 10, "the child started")
            await asyncio.sleep(0.2)
            assert relay.pid is not None
            killed.append(relay.pid)
            os.kill(relay.pid, signal.SIGKILL)
        await asyncio.sleep(0.005)

    with store_in(tmp_path / "balances") as store:
        open_all(store)
        relay, found = await relaying(tmp_path, store, 60, between=kill_once)
        assert killed and relay.stats.failures >= 1
        assert found == expected(60)


async def test_rotations_are_followed(tmp_path: Path) -> None:
    with store_in(tmp_path / "balances", compact_bytes=4096, snapshot_in="thread") as store:
        open_all(store)

        async def slowly(n: int, relay: JournalRelay) -> None:
            await asyncio.sleep(0.02)  # a rotation every few looks: a real one comes after 256 MiB

        relay, found = await relaying(tmp_path, store, 200, between=slowly)
        assert store.journal_mark().generation >= 4, "the journal rotated while the relay ran"
        assert found == expected(200)
        assert relay.stats.failures == 0


async def test_two_rotations_between_two_looks_start_the_child_again(tmp_path: Path) -> None:
    async def rotate_twice(n: int, relay: JournalRelay) -> None:
        if n == 10:
            await until(lambda: relay.stats.relayed > 0, 10, "the child published")
            store.compact()
            store.compact()  # the child never heard of the journal between
        await asyncio.sleep(0.005)

    with store_in(tmp_path / "balances", snapshot_in="thread") as store:
        open_all(store)
        relay, found = await relaying(tmp_path, store, 40, every=0.3, between=rotate_twice)
        assert relay.stats.failures >= 1
        assert found == expected(40)


def test_a_tail_reads_events_up_to_where_it_is_told_and_skips_the_rest(tmp_path: Path) -> None:
    with store_in(tmp_path / "balances") as store:
        start, fd = store.journal_at_mark()
        tail = JournalTail(start, fd)
        try:
            open_all(store)
            middle = store.journal_mark()
            credit(store, SUBSCRIBERS[0], "x")
            store.ack_upto(middle.seq)  # an acknowledgement between: not an event
            end = store.journal_mark()
            first = tail.read(middle)
            assert tail.seq == middle.seq and len(first) == middle.seq - start.seq
            rest = tail.read(end)
            assert tail.seq == end.seq and len(rest) == end.seq - middle.seq
            assert tail.read(end) == []  # nothing new
            store.compact()
            credit(store, SUBSCRIBERS[1], "y")
            rotated, fd = store.journal_at_mark()
            assert tail.read(rotated, fd) != [] and tail.seq == rotated.seq  # the next journal's
            store.compact()
            store.compact()
            skipped, fd = store.journal_at_mark()
            with pytest.raises(JournalMoved):
                tail.read(skipped, fd)
        finally:
            tail.close()


async def test_the_ocs_relays_by_a_journal_relay_unless_told_not_to(tmp_path: Path) -> None:
    for relay_process, kind in ((True, "JournalRelay"), (False, "OutboxRelay")):
        settings = Settings(
            data_dir=tmp_path / str(relay_process), relay_process=relay_process, **EPHEMERAL_PORTS
        )
        backends = open_backends(settings)
        try:
            assert type(ocs.build(settings, backends).relay).__name__ == kind
        finally:
            await backends.aclose()


def test_a_mark_names_the_live_journal(tmp_path: Path) -> None:
    with store_in(tmp_path / "balances") as store:
        mark = store.journal_mark()
        assert isinstance(mark, JournalMark)
        assert mark.inode == (tmp_path / "balances" / "journal.log").stat().st_ino
        store.compact()
        assert store.journal_mark().generation == mark.generation + 1
