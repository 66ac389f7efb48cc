"""The SF's figures as Prometheus metrics, read from `SyncStats` when scraped (nothing is counted
twice, and a scrape never waits on the bus: the lag is the one the SF measured last)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cellcelly.sf.sync import SyncFunction
from cellcelly.web import metrics_app as serving


class SfCollector(Collector):
    def __init__(self, sf: SyncFunction) -> None:
        self.sf = sf

    def check_ready(self) -> None:
        """Raises while the SF is stalled: usage is not reaching the record."""
        if self.sf.stalled():
            raise RuntimeError(f"sf stalled for {self.sf.stalled_for():.0f} s: batches fail and are retried")

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.sf.stats
        yield GaugeMetricFamily(
            "cellcelly_sf_lag_records",
            "Usage and ledger records on the bus not yet written and committed by the SF's group",
            value=stats.lag,
        )
        yield CounterMetricFamily(
            "cellcelly_sf_batches", "Batches written and committed", value=stats.batches
        )
        written = CounterMetricFamily(
            "cellcelly_sf_written", "Rows new in the system of record", labels=["kind"]
        )
        written.add_metric(["usage"], stats.usage_written)
        written.add_metric(["ledger"], stats.ledger_written)
        yield written
        yield CounterMetricFamily(
            "cellcelly_sf_duplicates",
            "Events seen again and ignored (idempotent by event id)",
            value=stats.duplicates,
        )
        yield CounterMetricFamily(
            "cellcelly_sf_dead_letters",
            "Records sent to the dead-letter topic: undecodable, or refused by the database on their own",
            value=stats.dead_lettered,
        )
        yield CounterMetricFamily(
            "cellcelly_sf_failures",
            "Batches that failed (database or bus unavailable) and are retried whole",
            value=stats.failures,
        )
        yield GaugeMetricFamily(
            "cellcelly_sf_stalled_seconds",
            "Seconds the SF has been failing without writing anything (0 when it is not)",
            value=self.sf.stalled_for(),
        )
        yield GaugeMetricFamily(
            "cellcelly_sf_stalled",
            "1 while the SF has been failing for its stall threshold (not ready), else 0",
            value=1 if self.sf.stalled() else 0,
        )


def metrics_app(sf: SyncFunction) -> FastAPI:
    """/metrics, /healthz and /readyz of a stand-alone SF (`cellcelly sf`)."""
    collector = SfCollector(sf)

    async def probe() -> dict[str, int]:
        collector.check_ready()  # stalled: usage is not reaching the record
        return {"lag": sf.stats.lag}

    return serving("CellCelly SF", [collector], probe)
