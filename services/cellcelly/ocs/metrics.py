"""Prometheus metrics of the OCS (a registry per app, so several apps can live in one process).

The charging counts and latencies are plain numbers, bumped on each charge and read by a collector
when scraped (as the DGW's are): prometheus_client's labelled children take a lock and a value
object a call, ~2 µs a charge alone and 6-7 µs in the HTTP path's loop (cache misses), where a
charge's whole budget over `/noop` is ~20 µs (issue 16).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# seconds: the upper bounds of `cellcelly_charging_seconds`'s buckets (+Inf after them)
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class OcsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        # (type, result) -> requests answered; type -> [count a bucket..., +Inf, sum of seconds]
        self.counts: dict[tuple[str, int], int] = {}
        self.latencies: dict[str, list[float]] = {}
        self.registry.register(_ChargingCollector(self))

    def charged(self, kind: str, result: int, seconds: float) -> None:
        """One charging request of type `kind` answered `result` after `seconds` inside the OCS."""
        key = (kind, result)
        self.counts[key] = self.counts.get(key, 0) + 1
        latency = self.latencies.get(kind)
        if latency is None:
            latency = self.latencies[kind] = [0.0] * (len(BUCKETS) + 2)
        latency[bisect_left(BUCKETS, seconds)] += 1  # le: a bound is in its own bucket
        latency[-1] += seconds


class _ChargingCollector(Collector):
    def __init__(self, metrics: OcsMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        # copies first (each one step under the GIL): a scrape served from another thread must not
        # iterate a dict a charge is adding to
        counts = self.metrics.counts.copy()
        latencies = {kind: list(values) for kind, values in self.metrics.latencies.copy().items()}
        requests = CounterMetricFamily(
            "cellcelly_charging_requests",
            "Charging requests answered, by request type and command-level result code",
            labels=["type", "result"],
        )
        for (kind, result), count in sorted(counts.items()):
            requests.add_metric([kind, str(result)], count)
        yield requests
        latency = HistogramMetricFamily(
            "cellcelly_charging_seconds", "Time to charge one request inside the OCS", labels=["type"]
        )
        for kind, values in sorted(latencies.items()):
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip([*map(str, BUCKETS), "+Inf"], values[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            latency.add_metric([kind], buckets, sum_value=values[-1])
        yield latency
