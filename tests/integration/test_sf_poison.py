"""The SF isolates a record the system of record refuses on its own, and waits out a database
that is down (issue 12 §2: one CCR of 2^63 octets made every batch fail, forever).

- a poison usage or ledger record inside a batch of good ones: the good ones land, the poison one
  is in the dead-letter topic with the database's error, the offsets are committed (SQLite and a
  real PostgreSQL);
- a PostgreSQL server stopped under the SF: the batch is retried, nothing is dead-lettered, the SF
  is stalled meanwhile (metric, /readyz 503, one log line), and everything lands once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from postgres import PostgresUnavailable, ThrowawayPostgres
from test_events_flow import SUBSCRIBERS, bus_events, charge_traffic, debits_in, drain, world  # noqa: F401
from test_sf_metrics import samples

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.deploy.backends import open_backends
from cellcelly.deploy.ocs import ocs_app
from cellcelly.ports.event_bus import DEAD_LETTER, LEDGER, USAGE, Outgoing
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE, Settings
from cellcelly.sf.metrics import SfCollector, metrics_app
from cellcelly.sf.sync import SyncFunction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOO_BIG = 2**63  # the CC-Total-Octets: one past a signed 64-bit column


def on_bus(bus: EmbeddedBus, topic: str) -> list[dict[str, Any]]:
    reader = bus.consumer(f"inspector-{topic}", [topic])
    return [orjson.loads(r.value) for r in reader._take(10**6)]  # noqa: SLF001


async def relay_all(relay: OutboxRelay) -> None:
    while await relay.relay_once():
        pass


async def dead_letters(bus: EmbeddedBus) -> list[dict[str, Any]]:
    dlq = bus.consumer("inspector-dlq", [DEAD_LETTER])
    letters = await dlq.poll(100, timeout=0.1)
    await dlq.close()
    return [orjson.loads(r.value) for r in letters]


async def test_a_poison_record_is_dead_lettered_and_the_rest_of_its_batch_lands(  # type: ignore[no-untyped-def]
    world,  # noqa: F811
    records: SqlRecords,
) -> None:
    store, charging, bus = world
    relay = OutboxRelay(store, bus)
    charge_traffic(charging, 6)
    await relay_all(relay)
    usage = {**on_bus(bus, USAGE)[0], "event_id": "poison#1#1", "units": TOO_BIG}
    ledger = {**on_bus(bus, LEDGER)[0], "event_id": "poison-ledger", "amount": TOO_BIG}
    await bus.publish(
        [
            Outgoing(USAGE, str(usage["msisdn"]), orjson.dumps(usage)),
            Outgoing(LEDGER, str(ledger["msisdn"]), orjson.dumps(ledger)),
        ]
    )
    charge_traffic(charging, 12)  # sessions 6-11: good records after the poison ones, in the same batch
    await relay_all(relay)
    sf = SyncFunction(bus, records)  # batches of 2000: everything above is one batch
    await drain(relay, sf)

    good = debits_in(bus_events(bus)) - {"poison#1#1"}
    written = {e.event_id for m in SUBSCRIBERS for e in records.usage_for(m, limit=1000)}
    assert written == good and len(good) == 20
    assert records.wallet_balance(str(ledger["msisdn"])) == store.get(str(ledger["msisdn"])).wallet  # type: ignore[union-attr]
    letters = await dead_letters(bus)
    assert {orjson.loads(letter["value"])["event_id"] for letter in letters} == {
        "poison#1#1",
        "poison-ledger",
    }
    for letter in letters:
        assert letter["source"]["topic"] in (USAGE, LEDGER) and letter["error"]  # what the database said
    assert sf.stats.dead_lettered == 2 and sf.stats.failures == 0
    assert await sf.consumer.lag() == 0  # committed past the poison: the stream goes on
    await sf.close()


@pytest.fixture
def stoppable_postgres() -> Iterator[tuple[ThrowawayPostgres, str]]:
    """A PostgreSQL server of this test's own, to stop and start again (the shared one stays up)."""
    try:
        server = ThrowawayPostgres()
        url = server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server, url
    finally:
        server.stop()


def pg_ctl(server: ThrowawayPostgres, action: str) -> None:
    options = f"-p {server.port} -k {server.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    server._run("pg_ctl", "-D", str(server.datadir), "-l", str(server.logfile), "-m", "fast", "-w",  # noqa: SLF001
                "-t", "60", "-o", options, action)  # fmt: skip


async def probe(sf: SyncFunction) -> tuple[int, dict[Any, float]]:
    app = metrics_app(sf)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sf") as client:
        ready = (await client.get("/readyz")).status_code
        return ready, samples((await client.get("/metrics")).text)


async def wait_for(check: Any, seconds: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_a_stopped_database_is_waited_for_and_nothing_is_dead_lettered(
    tmp_path: Path, stoppable_postgres: tuple[ThrowawayPostgres, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = stoppable_postgres
    records = SqlRecords(url)
    records.migrate()
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    accounts = AccountService(store, records, catalogue)
    for msisdn in SUBSCRIBERS:
        accounts.open(SubscriberRecord(msisdn, "Şule", "Güneş", f"{msisdn}@example.com", "active", "ANKARA"))
    charging, bus = ChargingService(store, catalogue), EmbeddedBus(tmp_path / "bus")
    relay = OutboxRelay(store, bus)
    sf = SyncFunction(bus, records, batch=50, stall_after=0.5)
    running = asyncio.ensure_future(sf.run())
    try:
        await relay_all(relay)
        await wait_for(lambda: sf.stats.ledger_written == len(SUBSCRIBERS))
        assert await probe(sf) == (200, (await probe(sf))[1])
        pg_ctl(server, "stop")
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="cellcelly.sf.sync"):
            charge_traffic(charging, 30)
            await relay_all(relay)
            debits = debits_in(bus_events(bus))
            await wait_for(lambda: sf.stalled() and sf.stats.failures >= 3)
            ready, metrics = await probe(sf)
            assert ready == 503
            assert metrics[("cellcelly_sf_stalled", ())] == 1
            assert metrics[("cellcelly_sf_stalled_seconds", ())] >= 0.5
            assert metrics[("cellcelly_sf_failures_total", ())] >= 3
            pg_ctl(server, "start")
            await wait_for(lambda: sf.stats.usage_written == len(debits))
            await wait_for(lambda: not sf.stalled())
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len([m for m in warnings if "failed" in m]) == 1, warnings  # one line per stall
        assert len([m for m in warnings if "going again" in m]) == 1, warnings
        ready, metrics = await probe(sf)
        assert ready == 200 and metrics[("cellcelly_sf_stalled", ())] == 0
        assert sf.stats.dead_lettered == 0 and await dead_letters(bus) == []
        written = {e.event_id for m in SUBSCRIBERS for e in records.usage_for(m, limit=1000)}
        assert written == debits and len(debits) == 50
    finally:
        sf.stop()
        await running
        await sf.close()
        records.close()


class DownRecords:
    """The system of record refusing every connection until `up` is set."""

    def __init__(self, records: SqlRecords) -> None:
        self.records, self.up = records, False

    def apply_ledger(self, events: object) -> int:
        if not self.up:
            raise ConnectionError("database down")
        return self.records.apply_ledger(events)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.records, name)


async def test_make_runs_readyz_says_when_its_sf_is_stalled(data_dir: Path) -> None:
    """`make run` serves one /readyz (the OCS's) for the whole process, its SF included."""
    components = open_backends(Settings(data_dir=data_dir))
    bus = EmbeddedBus(data_dir / "bus")
    down = DownRecords(components.records)
    accounts = AccountService(components.store, components.records, components.catalogue)
    accounts.open(SubscriberRecord(SUBSCRIBERS[0], "Şule", "Güneş", "s@example.com", "active", "ANKARA"))
    await relay_all(OutboxRelay(components.store, bus))
    sf = SyncFunction(bus, down, stall_after=0.2)  # type: ignore[arg-type]
    app = ocs_app(components.settings, components, collectors=[SfCollector(sf)], fast_path=False)
    running = asyncio.ensure_future(sf.run())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ocs") as client:
            await wait_for(sf.stalled)
            r = await client.get("/readyz")
            assert r.status_code == 503 and "sf stalled" in r.json()["detail"]
            down.up = True
            await wait_for(lambda: not sf.stalled())
            assert (await client.get("/readyz")).status_code == 200
        assert sf.stats.ledger_written == 1 and sf.stats.dead_lettered == 0
    finally:
        sf.stop()
        await running
        await sf.close()
        components.close()
