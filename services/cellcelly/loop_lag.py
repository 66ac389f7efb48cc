"""How late an event loop runs what is due: the stall every request waiting on it shares.

A task sleeps `interval` and records how much later than asked it woke up
(`cellcelly_event_loop_lag_seconds`). Whatever holds the loop (a batch of the outbox relay, a
collection, a long callback) delays everything due meanwhile. A process's CPU figures do not show
that; the tail latency of its requests does, and this says whether the loop is the cause. Issue 16
needed it: `make run`'s OCS process answered at 1,000 sessions/s with a p99 0.4-1.2 ms over the
stand-alone OCS's while spending the same CPU a charge. A throwaway probe like this one showed its
loop late more often (p99 0.92-1.19 ms against 0.81-0.84), and that the relay's look, the lead,
was not the cause (docs/performance-log.md). 20 wake-ups a second cost an idle process 0.4% of a
core (1.2% at 100; measured alone on uvloop), a busy one less: its loop is awake anyway.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

INTERVAL = 0.05  # seconds between samples: a random moment's lateness, which a request meets
# a loop turn is tens of µs; a request's budget is 10 ms
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class LoopLag:
    """Samples the running loop's lateness into a histogram of `registry` until stopped."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.histogram = Histogram(
            "cellcelly_event_loop_lag_seconds",
            "How much later than due this process's event loop woke a task sleeping"
            f" {interval * 1000:g} ms (sampled continuously): the stall requests share",
            buckets=BUCKETS,
            registry=registry,
        )
        self._stopped = False

    async def run(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds
        while not self._stopped:
            due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.histogram.observe(max(0.0, time.perf_counter() - due))

    def stop(self) -> None:
        """Ends `run` at its next wake-up (within `interval`)."""
        self._stopped = True
