"""ServiceMonitors (Prometheus Operator) for the OCS, SF and DGW, and a Grafana dashboard of the
charging figures.

Metric names are those of cellcelly.ocs.metrics, cellcelly.sf.metrics and cellcelly.dgw.metrics
(counters get `_total`).
"""

from __future__ import annotations

import json
from typing import Any

from cellcelly_operator.labels import Manifest, metadata, selector
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import config_map

P50 = "histogram_quantile(0.5, sum by (le) (rate(cellcelly_charging_seconds_bucket[5m])))"
SCRAPED = {"ocs": "http", "sf": "metrics", "dgw": "metrics"}

PANELS: list[tuple[str, str, str]] = [
    (
        "Charging rate by result (req/s)",
        "sum by (result) (rate(cellcelly_charging_requests_total[1m]))",
        "reqps",
    ),
    (
        "Charging latency p50 / p99 (s)",
        "histogram_quantile(0.99, sum by (le) (rate(cellcelly_charging_seconds_bucket[5m])))",
        "s",
    ),
    ("Outbox pending events", "sum(cellcelly_outbox_pending)", "short"),
    ("SF lag (records)", "sum(cellcelly_sf_lag_records)", "short"),
    (
        "Gateway: new sessions refused while overloaded (3004 DIAMETER_TOO_BUSY)",
        "sum(rate(cellcelly_dgw_too_busy_total[1m]))",
        "reqps",
    ),
    (
        "Gateway: reduction asked of DOIC clients (%)",
        "max(cellcelly_dgw_doic_reduction_percent)",
        "percent",
    ),
    (
        "Requests refused before charging",
        "sum by (status) (rate(cellcelly_http_rejected_total[5m]))",
        "reqps",
    ),
]


def service_monitor(stack: Stack, component: str, port: str) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(stack, component),
        "spec": {
            "selector": {"matchLabels": selector(stack, component)},
            "namespaceSelector": {"matchNames": [stack.namespace]},
            "endpoints": [{"port": port, "path": "/metrics", "interval": "15s"}],
        },
    }


def dashboard(stack: Stack) -> dict[str, Any]:
    panels = []
    for i, (title, expr, unit) in enumerate(PANELS):
        targets = [{"expr": expr, "refId": "A"}]
        if "p50 / p99" in title:
            targets.append(
                {
                    "expr": P50,
                    "refId": "B",
                }
            )
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": targets,
            }
        )
    return {
        "title": f"CellCelly charging ({stack.namespace}/{stack.name})",
        "uid": f"cellcelly-{stack.uid[:8]}",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def dashboard_config_map(stack: Stack) -> Manifest:
    return config_map(
        stack,
        "grafana",
        f"{stack.name}-grafana-dashboard",
        {"cellcelly-charging.json": json.dumps(dashboard(stack), indent=2, sort_keys=True)},
        labels={"grafana_dashboard": "1"},  # the Grafana sidecar's default discovery label
    )


def build(stack: Stack) -> list[Manifest]:
    mon = stack.spec.monitoring
    if not mon.enabled:
        return []
    out = [
        service_monitor(stack, c, p) for c, p in SCRAPED.items() if stack.spec.services.get(c).replicas > 0
    ]
    if mon.grafana_dashboard:
        out.append(dashboard_config_map(stack))
    return out
