"""The SF's lag and counts as Prometheus metrics: on a stand-alone SF's own /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_events_flow import SUBSCRIBERS, charge_traffic, world  # noqa: F401 - the fixture is used by name

from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.relay import OutboxRelay
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.sf.metrics import metrics_app
from cellcelly.sf.sync import SyncFunction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(sf: SyncFunction) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = metrics_app(sf)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sf") as client:
        response = await client.get("/metrics")
        assert (await client.get("/readyz")).status_code == 200
    assert response.status_code == 200
    return samples(response.text)


async def test_lag_falls_to_zero_as_the_sf_writes(world, records: SqlRecords, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    store, charging, bus = world
    charge_traffic(charging, 30)
    relay = OutboxRelay(store, bus)
    while await relay.relay_once():
        pass
    sf = SyncFunction(bus, records, batch=10, lag_every=0.0)  # measured after every batch
    assert await sf.sync_once(timeout=0.2) == 10  # one batch of 10; the rest waits on the bus
    assert sf._lag_task is not None
    await sf._lag_task  # the lag is measured in the background
    before = await scrape(sf)
    assert before[("cellcelly_sf_lag_records", ())] > 0
    while await sf.sync_once(timeout=0.2):
        pass
    after = await scrape(sf)
    assert after[("cellcelly_sf_lag_records", ())] == 0
    in_record = sum(len(records.usage_for(m, 1000)) for m in SUBSCRIBERS)
    assert in_record > 0 and after[("cellcelly_sf_written_total", (("kind", "usage"),))] == in_record
    assert after[("cellcelly_sf_batches_total", ())] >= 2
    assert after[("cellcelly_sf_dead_letters_total", ())] == 0
    await sf.close()


async def test_after_a_small_batch_the_sf_waits_for_more(world, records: SqlRecords) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """`linger`: what comes while it waits is one batch, not a batch a poll; a stop ends the wait.
    How long it waits is `linger_for`'s (tests/unit/test_sf_linger.py): after the first poll, with
    no rate yet, the linger times that poll's share of a batch; after the second, in proportion to
    the rate its records came at."""
    store, charging, bus = world
    relay = OutboxRelay(store, bus)
    texts = iter(range(1_000))

    async def texted(subscribers: int) -> None:
        """An SMS from each of the first `subscribers`, on the bus."""
        for msisdn in SUBSCRIBERS[:subscribers]:
            sms = (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),)
            req = ChargeRequest(f"linger-{next(texts)}", RequestType.EVENT, 0, msisdn, sms)
            answer = charging.charge(req)
            assert answer.result_code is ResultCode.SUCCESS
        while await relay.relay_once():
            pass

    await texted(len(SUBSCRIBERS))
    sf = SyncFunction(bus, records, batch=10_000, linger=3.0)
    pending = await sf.consumer.lag()
    assert pending >= 15, pending
    # the first poll takes everything and is not full: it waits 3 s x pending / (pending + 1),
    # ample for the publishes below
    sf.batch = pending + 1
    sizes: list[int] = []
    sf.on_batch = lambda n, _seconds: sizes.append(n)
    running = asyncio.create_task(sf.sync())
    while not sizes:
        await asyncio.sleep(0.01)
    for _ in range(5):  # five publishes while it waits: without the wait, a batch each
        await texted(3)
        await asyncio.sleep(0.05)
    while len(sizes) < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # no third batch: nothing came after
    assert sizes == [pending, 15], sizes
    assert sum(len(records.usage_for(m, 1000)) for m in SUBSCRIBERS) == len(SUBSCRIBERS) + 15
    stopped = time.monotonic()
    sf.stop()
    await asyncio.wait_for(running, 5)
    # within the second wait: 15 records in ~2.9 s, 3 s x 5.2/s x 3 s / (pending + 1) = ~1.1 s at 40
    assert time.monotonic() - stopped < 0.5
    await sf.close()
