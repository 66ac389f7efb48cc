"""The figures every benchmark reports, in one shape (kept apart so light modules can use it)."""

from __future__ import annotations

import math
import time
from typing import Any


def percentile(sorted_ns: list[int], p: float) -> float:
    """Latency percentile in microseconds (nearest rank) of sorted nanosecond samples."""
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, max(0, math.ceil(p / 100 * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000


def summarise(name: str, ops: int, seconds: float, latencies: list[int], errors: int = 0) -> dict[str, Any]:
    latencies.sort()
    return {
        "name": name,
        "ops": ops,
        "seconds": round(seconds, 3),
        "ops_per_s": round(ops / seconds, 1) if seconds else 0.0,
        "p50_us": round(percentile(latencies, 50), 1),
        "p99_us": round(percentile(latencies, 99), 1),
        "errors": errors,
    }


def host_ticks() -> tuple[int, int]:
    """(steal, all) CPU ticks of the machine so far, from /proc/stat; (0, 0) where there is none.
    Steal is time the hypervisor gave this VM's CPUs to others: on this shared host, runs of the
    same build came out 2-4x apart, and the steal beside a row says which of them to believe."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return (0, 0)
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    return (fields[7] if len(fields) > 7 else 0, sum(fields[:8]))


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time the host took between two `host_ticks()`, in percent."""
    spent = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / spent, 1) if spent > 0 else 0.0


def machine_pace(rounds: int = 5) -> float:
    """µs this interpreter takes now for a fixed piece of pure-Python work (the best of `rounds`).
    On this shared host a row's own CPU per request doubled while the steal stayed under 10%: the
    other tenants slow the core without taking it. Taken before and after a group of rows, it says
    how fast the machine ran for them; compare runs only at a like pace."""
    best = math.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        total = 0
        for i in range(20_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return round(best * 1e6, 0)
