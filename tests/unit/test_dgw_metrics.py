"""The DGW's /metrics: `Gateway.stats` as Prometheus reads it, nothing counted on the CCR's path."""

from __future__ import annotations

import httpx
import pytest

from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.metrics import metrics_app
from cellcelly.dgw.ocs_client import NoopOcs, WireOcs
from cellcelly.diameter.peer import LocalPeer

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


async def scrape(gateway: Gateway) -> str:
    transport = httpx.ASGITransport(app=metrics_app(gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://dgw") as client:
        answer = await client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert (await client.get("/readyz")).status_code == 200
        return answer.text


async def test_the_gateways_figures_are_what_prometheus_reads() -> None:
    gateway = Gateway(LocalPeer("dgw.test", "cellcelly.local"), NoopOcs(), overload_delay=0.1)
    stats = gateway.stats
    stats.ccr, stats.too_busy, stats.ocs_unavailable, stats.replayed = 41, 3, 2, 5
    stats.rar_sent, stats.asr_sent = 7, 1
    stats.results = {2001: 30, 4012: 4}
    gateway.overload.overloaded, gateway.overload.reduction = True, 30
    text = await scrape(gateway)
    for line in (
        "cellcelly_dgw_ccr_total 41.0",
        'cellcelly_dgw_answers_total{result_code="2001"} 30.0',
        'cellcelly_dgw_answers_total{result_code="4012"} 4.0',
        "cellcelly_dgw_too_busy_total 3.0",
        "cellcelly_dgw_ocs_unavailable_total 2.0",
        "cellcelly_dgw_replayed_total 5.0",
        'cellcelly_dgw_server_initiated_total{command="RAR"} 7.0',
        'cellcelly_dgw_server_initiated_total{command="ASR"} 1.0',
        "cellcelly_dgw_overloaded 1.0",
        "cellcelly_dgw_doic_reduction_percent 30.0",
        "cellcelly_dgw_in_flight 0.0",
        "cellcelly_dgw_sessions 0.0",
    ):
        assert line in text.splitlines(), (line, text)
    assert "process_cpu_seconds_total" in text  # the process's own CPU and memory
    assert "cellcelly_dgw_ocs_failovers" not in text  # no OCS endpoints: the noop


async def test_a_gateway_charging_over_the_wire_shows_its_failovers() -> None:
    ocs = WireOcs([("127.0.0.1", 1)], api_key="k" * 32)
    ocs.failovers = 9
    gateway = Gateway(LocalPeer("dgw.test", "cellcelly.local"), ocs)
    assert "cellcelly_dgw_ocs_failovers_total 9.0" in (await scrape(gateway)).splitlines()
    await ocs.close()
