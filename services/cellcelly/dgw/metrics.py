"""The DGW's figures as Prometheus metrics, read from `Gateway.stats` when scraped: a CCR pays
nothing for them (the OCS's labelled children cost ~1 µs a charge), and nothing is counted twice.

Served on a port of its own (`CELLCELLY_DGW_METRICS_PORT`), never beside Diameter: the Diameter
port is what the network reaches (a LoadBalancer on Kubernetes)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import WireOcs
from cellcelly.web import metrics_app as serving

Family = CounterMetricFamily | GaugeMetricFamily


class DgwCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Family]:
        gateway, stats = self.gateway, self.gateway.stats
        yield CounterMetricFamily("cellcelly_dgw_ccr", "CCRs received", value=stats.ccr)
        answered = CounterMetricFamily(
            "cellcelly_dgw_answers",
            "CCAs of charges the OCS answered, by Result-Code (2001 success, 4012 credit limit, ...)",
            labels=["result_code"],
        )
        for code, count in sorted(stats.results.items()):
            answered.add_metric([str(code)], count)
        yield answered
        counters = (
            ("too_busy", "New sessions and events answered 3004 DIAMETER_TOO_BUSY while overloaded"),
            ("ocs_unavailable", "CCRs answered 3002: no OCS endpoint answered in time"),
            ("replayed", "Retransmissions answered with the answer kept for them"),
            ("joined_in_flight", "Retransmissions that joined their original while it was charged"),
            ("rejected", "Requests answered with a protocol error (malformed, unsupported, missing AVP)"),
            ("cache_failed", "Subscriber lookups that failed (charged through the OCS anyway)"),
        )
        for name, help_text in counters:
            yield CounterMetricFamily(f"cellcelly_dgw_{name}", help_text, value=getattr(stats, name))
        told = CounterMetricFamily(
            "cellcelly_dgw_server_initiated", "Requests the gateway sent to its peers", labels=["command"]
        )
        told.add_metric(["RAR"], stats.rar_sent)
        told.add_metric(["ASR"], stats.asr_sent)
        yield told
        if isinstance(gateway.ocs, WireOcs):
            yield CounterMetricFamily(
                "cellcelly_dgw_ocs_failovers",
                "Requests sent on to another OCS endpoint after one failed",
                value=gateway.ocs.failovers,
            )
        yield GaugeMetricFamily(
            "cellcelly_dgw_overloaded",
            "1 while new sessions are refused (dgw/overload.py), else 0",
            value=1 if gateway.overload.overloaded else 0,
        )
        yield GaugeMetricFamily(
            "cellcelly_dgw_doic_reduction_percent",
            "The reduction the gateway's DOIC overload report asks of the clients that take it (RFC 7683)",
            value=gateway.overload.reduction,
        )
        yield GaugeMetricFamily(
            "cellcelly_dgw_in_flight", "CCRs sent to the OCS and not answered yet", value=gateway.in_flight
        )
        yield GaugeMetricFamily(
            "cellcelly_dgw_sessions",
            "Charging sessions the gateway holds (for RAR and ASR)",
            value=len(gateway.sessions),
        )


def metrics_app(gateway: Gateway) -> FastAPI:
    """/metrics (with the process's CPU and memory), /healthz and /readyz of a stand-alone DGW."""

    async def probe() -> dict[str, int]:
        return {"sessions": len(gateway.sessions), "in_flight": gateway.in_flight}

    return serving("CellCelly DGW", [DgwCollector(gateway), ProcessCollector(registry=None)], probe)
