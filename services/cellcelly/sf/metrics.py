"""The SF's figures as Prometheus metrics, read from `SyncStats` when scraped (nothing is counted
twice, and a scrape never waits on the bus: the lag is the one the SF measured last)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cellcelly.sf.sync import SyncFunction
from cellcelly.web import add_health_routes


class SfCollector(Collector):
    def __init__(self, sf: SyncFunction) -> None:
        self.sf = sf

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
            "Undecodable records sent to the dead-letter topic",
            value=stats.dead_lettered,
        )


def metrics_app(sf: SyncFunction) -> FastAPI:
    """/metrics, /healthz and /readyz of a stand-alone SF (`cellcelly sf`)."""
    registry = CollectorRegistry()
    registry.register(SfCollector(sf))
    app = FastAPI(title="CellCelly SF", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def probe() -> dict[str, int]:
        return {"lag": sf.stats.lag}

    add_health_routes(app, probe)
    return app
