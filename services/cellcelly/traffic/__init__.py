"""Traffic generator: a Diameter Gy client that drives the gateway with realistic sessions."""

from cellcelly.traffic.generator import Snapshot, TrafficConfig, TrafficReport, run_traffic

__all__ = ["Snapshot", "TrafficConfig", "TrafficReport", "run_traffic"]
