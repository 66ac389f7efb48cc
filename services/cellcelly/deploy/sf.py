"""The SF: usage and ledger events from the bus into the system of record, with its /metrics
on an HTTP port of its own when it runs alone."""

from __future__ import annotations

from cellcelly.deploy.backends import Backends
from cellcelly.deploy.service import Alone, Group, HttpService, Service, Worker
from cellcelly.ports.event_bus import EventBus
from cellcelly.ports.records import SystemOfRecord
from cellcelly.settings import Settings
from cellcelly.sf.metrics import metrics_app
from cellcelly.sf.sync import SyncFunction


class Sf(Group):
    def __init__(self, settings: Settings, bus: EventBus, records: SystemOfRecord, metrics: bool) -> None:
        self.sf = SyncFunction(
            bus,
            records,
            batch=settings.sf_batch,
            linger=settings.sf_linger_seconds,
            group=settings.sf_group,
            stall_after=settings.sf_stall_seconds,
        )
        self.metrics: HttpService | None = None
        parts: list[Service] = [Worker("sf", self.sf.run, self.sf.stop, self.sf.close)]
        if metrics and settings.sf_metrics_port >= 0:
            self.metrics = HttpService(
                "sf metrics", metrics_app(self.sf), settings.sf_metrics_host, settings.sf_metrics_port
            )
            parts.append(self.metrics)
        super().__init__("sf", parts)


def build(settings: Settings, bus: EventBus, records: SystemOfRecord, *, metrics: bool = True) -> Sf:
    """`metrics=False` where another service shows the SF's figures (the embedded OCS's /metrics)."""
    return Sf(settings, bus, records, metrics)


def alone(settings: Settings, backends: Backends) -> Alone:
    """`cellcelly sf`, with its /metrics on a port of its own unless that port is -1."""
    service = build(settings, backends.bus, backends.records)
    metrics = ""
    if service.metrics is not None:
        metrics = f", metrics http://{settings.sf_metrics_host}:{settings.sf_metrics_port}/metrics"
    return Alone(
        service, lambda: f"SF: {settings.event_bus} event bus -> {settings.sor_url_shown()}{metrics}"
    )
