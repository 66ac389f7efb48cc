"""`cellcelly_event_loop_lag_seconds`: a loop that nothing holds is sampled as on time; a callback
that holds it shows as one late sample of about its length; the sampler stops when told."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cellcelly.loop_lag import LoopLag

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def samples(registry: CollectorRegistry) -> dict[str, float]:
    """The histogram's series, by `le` (and `count`, `sum`)."""
    out: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("cellcelly_event_loop_lag_seconds_bucket"):
            out[line.split('le="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("cellcelly_event_loop_lag_seconds_count"):
            out["count"] = float(line.rsplit(" ", 1)[1])
    return out


async def test_a_held_loop_is_one_late_sample_of_about_the_hold() -> None:
    registry = CollectorRegistry()
    lag = LoopLag(registry, interval=0.002)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.1)
    quiet = samples(registry)
    assert quiet["count"] >= 10, quiet
    assert quiet["0.05"] == quiet["count"], quiet  # nothing held the loop 50 ms

    time.sleep(0.08)  # a callback that holds the loop 80 ms
    await asyncio.sleep(0.02)
    held = samples(registry)
    assert held["0.05"] == held["count"] - 1, held  # exactly one sample saw it...
    assert held["0.25"] == held["count"], held  # ...as about the hold, not as every sample after it

    lag.stop()
    await asyncio.wait_for(task, 1.0)  # ends at its next wake-up
    assert samples(registry)["count"] <= held["count"] + 1
