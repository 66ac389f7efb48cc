"""The outbox relay sends what is new every look and flushes now and then (application/relay.py).
Whatever fails where (a send, a flush that loses what was not yet durable), every event reaches the
bus, none leaves the outbox before the bus has it durably, and each subscriber's events first reach
the bus in commit order. A bus in a list stands in for a real one: failing it at chosen calls is the
point; the file bus's own flush is tested in tests/contract/test_bus_embedded.py."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account
from cellcelly.domain.provisioning import open_account, top_up
from cellcelly.ports.balance_store import Commit
from cellcelly.ports.event_bus import SUBSCRIBER, Outgoing
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit

CATALOGUE = CatalogueHolder.from_file(DEFAULT_CATALOGUE).current
NOW = 1_800_000_000
SUBSCRIBERS = ("5320000001", "5320000002", "5320000003")


class ListBus:
    """Sent records in a list; `durable` of them survive. A failing flush loses the rest, as a
    crash of the file bus's host before its fsync would."""

    def __init__(self, failing: set[tuple[str, int]]) -> None:
        self.sent: list[Outgoing] = []
        self.durable = 0
        self.failing = failing
        self.calls = {"send": 0, "flush": 0}

    async def send(self, batch: Sequence[Outgoing]) -> None:
        self.calls["send"] += 1
        if ("send", self.calls["send"]) in self.failing:
            raise ConnectionError("send")
        self.sent.extend(batch)

    async def flush(self) -> None:
        self.calls["flush"] += 1
        if ("flush", self.calls["flush"]) in self.failing:
            del self.sent[self.durable :]
            raise ConnectionError("flush")
        self.durable = len(self.sent)

    def durable_ids(self) -> list[str]:
        return [orjson.loads(o.value)["event_id"] for o in self.sent[: self.durable] if o.topic != SUBSCRIBER]


def commit(store: EmbeddedBalanceStore, msisdn: str, ref: str) -> list[str]:
    def fn(account: Account | None) -> tuple[list[str], Commit]:
        if account is None:
            change = open_account(msisdn, CATALOGUE, "ANKARA", NOW)
        else:
            change = top_up(account, 1, ref, CATALOGUE.policy, NOW)
        return [e.event_id for e in change.events], Commit(change.account, events=change.events)

    return store.transact(msisdn, fn)


steps = st.lists(st.one_of(st.sampled_from(SUBSCRIBERS), st.just("look")), min_size=1, max_size=40)
failures = st.sets(st.tuples(st.sampled_from(["send", "flush"]), st.integers(1, 12)), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps, failing=failures, flush_every=st.sampled_from([0.0, 1e9]), batch=st.integers(1, 4))
async def test_every_event_reaches_the_bus_durably_before_it_leaves_the_outbox(
    steps: list[str], failing: set[tuple[str, int]], flush_every: float, batch: int
) -> None:
    store = EmbeddedBalanceStore()
    bus = ListBus(failing)
    relay = OutboxRelay(store, bus, batch=batch, flush_every=flush_every)  # type: ignore[arg-type]
    committed: dict[str, list[str]] = {m: [] for m in SUBSCRIBERS}

    async def look() -> None:
        try:
            await relay.look()
        except ConnectionError:
            pass
        waiting = {e.event["event_id"] for e in store.outbox(limit=10**6)}
        gone = {i for ids in committed.values() for i in ids} - waiting
        assert gone <= set(bus.durable_ids()), "acknowledged before the bus had it durably"

    for n, step in enumerate(steps):
        if step == "look":
            await look()
        else:
            committed[step] += commit(store, step, f"r{n}")
    for _ in range(60):  # the failures are at chosen calls: a few looks more get past them
        await look()
        if not store.outbox(limit=1):
            break
    assert store.outbox(limit=1) == []
    on_bus = bus.durable_ids()
    assert set(on_bus) == {i for ids in committed.values() for i in ids}
    for ids in committed.values():
        firsts = sorted(set(ids), key=on_bus.index)
        assert firsts == ids, "a subscriber's events first reach the bus in commit order"


async def test_a_look_that_sends_defers_the_flush_and_the_next_empty_one_flushes() -> None:
    store = EmbeddedBalanceStore()
    bus = ListBus(set())
    relay = OutboxRelay(store, bus, flush_every=1e9)  # type: ignore[arg-type]
    ids = commit(store, SUBSCRIBERS[0], "r")
    assert await relay.look() == relay.busy  # sent, not yet flushed: back soon
    assert len(bus.sent) >= len(ids) and bus.durable == 0
    assert len(store.outbox(limit=10)) == len(ids)  # still waiting: not durable yet
    assert await relay.look() == relay.busy  # nothing new: flushes and acknowledges
    assert bus.durable == len(bus.sent) and store.outbox(limit=10) == []
    assert await relay.look() == relay.idle  # nothing sent, nothing to flush
    assert bus.calls == {"send": 1, "flush": 1}
