"""The figures every benchmark reports, in one shape (kept apart so light modules can use it)."""

from __future__ import annotations

import math
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
