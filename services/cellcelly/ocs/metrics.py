"""Prometheus metrics of the OCS (a registry per app, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OcsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cellcelly_charging_requests",
            "Charging requests answered, by request type and command-level result code",
            ["type", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cellcelly_charging_seconds",
            "Time to charge one request inside the OCS",
            ["type"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        self.rejected = Counter(
            "cellcelly_http_rejected",
            "Requests refused before charging, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.outbox = Gauge(
            "cellcelly_outbox_pending",
            "Usage and ledger events waiting in the outbox",
            registry=self.registry,
        )
        self.catalogue = Gauge(
            "cellcelly_catalogue_info", "The catalogue version in force", ["version"], registry=self.registry
        )
