"""The outbox relay's pace: soon again after a batch that moved events (small batches under load,
so no turn stalls the charges in flight for long), `idle` after one that found none."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.application.relay import BUSY, OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.deploy import ocs
from cellcelly.deploy.backends import open_backends
from cellcelly.domain.account import Account
from cellcelly.domain.provisioning import open_account, top_up
from cellcelly.ports.balance_store import Commit
from cellcelly.settings import DEFAULT_CATALOGUE, Settings
from cellcelly_testing import EPHEMERAL_PORTS, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

A = "5320000001"
NOW = 1_800_000_000
CATALOGUE = CatalogueHolder.from_file(DEFAULT_CATALOGUE).current


def credit(store: EmbeddedBalanceStore, ref: str) -> None:
    def fn(account: Account | None) -> tuple[None, Commit]:
        assert account is not None
        change = top_up(account, 1, ref, CATALOGUE.policy, NOW)
        return None, Commit(change.account, events=change.events)

    store.transact(A, fn)


def opened(account: Account | None) -> tuple[None, Commit]:
    change = open_account(A, CATALOGUE, "ANKARA", NOW)
    return None, Commit(change.account, events=change.events)


async def relayed(relay: OutboxRelay, count: int, within: float) -> float:
    began = time.monotonic()
    while relay.stats.relayed < count:
        assert time.monotonic() - began < within, f"{relay.stats.relayed} of {count} relayed in {within} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - began


async def test_soon_again_after_moving_events_and_idle_after_none(tmp_path: Path) -> None:
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    bus = EmbeddedBus(tmp_path / "bus")
    store.transact(A, opened)
    relay = OutboxRelay(store, bus, idle=60.0, busy=0.2)
    task = asyncio.create_task(relay.run())
    try:
        await relayed(relay, 1, within=5)
        credit(store, "during")  # before the relay's next look, `busy` after the one that moved
        assert await relayed(relay, 2, within=5) < 2  # with `idle` it would wait a minute
        await asyncio.sleep(1.0)  # the look after found nothing: now it waits `idle`
        credit(store, "after")
        await asyncio.sleep(1.5)
        assert relay.stats.relayed == 2
    finally:
        relay.stop()
        await task
        await bus.close()
        store.close()


async def test_the_stand_alone_ocs_comes_back_soon_and_the_embedded_stack_waits_idle(tmp_path: Path) -> None:
    """`relay.BUSY` where it was measured (`cellcelly ocs`, the deployed shape); the embedded stack,
    whose SF writes the record in the same process a batch at a time, keeps its `idle` pace."""
    settings = Settings(data_dir=tmp_path / "alone", **EPHEMERAL_PORTS)
    backends = open_backends(settings)
    try:
        relay = ocs.build(settings, backends).relay
        assert relay.busy == BUSY < relay.idle
    finally:
        await backends.aclose()
    async with running_stack(tmp_path / "stack") as stack:
        assert stack.relay is not None and stack.relay.busy == stack.relay.idle
