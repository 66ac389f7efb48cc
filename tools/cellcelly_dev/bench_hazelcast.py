"""Lookups per second on the Hazelcast cache, with and without the client's near cache, and on an
event loop (`lookup_nowait`, what the DGW calls per CCR) with and without the in-process front.

1,000 MSISDNs are loaded once (every one a miss), then 20,000 gets over them are timed: with the
near cache they are answered in this process, without it each one is a round trip to the member.

    PYTHONPATH=tools .venv/bin/python -m cellcelly_dev.bench_hazelcast 127.0.0.1:5701
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from cellcelly.adapters.cache_hazelcast import HazelcastCache
from cellcelly.ports.cache import SubscriberInfo
from cellcelly_dev.benchstats import summarise


def bench_cache(
    members: Sequence[str], *, msisdns: int = 1_000, gets: int = 20_000, cluster_name: str = "cellcelly"
) -> list[dict[str, Any]]:
    numbers = [f"90532{n:07d}" for n in range(msisdns)]
    known = {m: SubscriberInfo(m, "active") for m in numbers[: msisdns * 9 // 10]}  # 10 % unknown
    order = random.Random(7).choices(numbers, k=gets)
    rows = []
    for near_cache in (True, False):
        map_name = f"cellcelly-bench-{uuid.uuid4().hex[:8]}"
        cache = HazelcastCache(
            known.get,
            members=members,
            cluster_name=cluster_name,
            map_name=map_name,
            negative_ttl=300,
            near_cache=near_cache,
        )
        try:
            for m in numbers:  # load every entry into the map (a miss: the loader, then set)
                cache.get(m)
            for m in numbers:  # read each back once: fills the near cache (set invalidated it), warms up
                cache.get(m)
            errors = 0
            latencies: list[int] = []
            began = time.perf_counter()
            for m in order:
                t0 = time.perf_counter_ns()
                if cache.get(m) != known.get(m):
                    errors += 1
                latencies.append(time.perf_counter_ns() - t0)
            seconds = time.perf_counter() - began
            name = f"hazelcast get, near cache {'on' if near_cache else 'off'}"
            rows.append(summarise(name, gets, seconds, latencies, errors))
        finally:
            try:
                cache.client.get_map(map_name).blocking().destroy()
            finally:
                cache.close()
    return rows


def bench_lookup(
    members: Sequence[str], *, msisdns: int = 1_000, gets: int = 20_000, cluster_name: str = "cellcelly"
) -> list[dict[str, Any]]:
    """`lookup_nowait` hits on a loop, the front on (a dict) and off (the near cache)."""
    numbers = [f"90532{n:07d}" for n in range(msisdns)]
    order = random.Random(7).choices(numbers, k=gets)

    async def load(msisdn: str) -> SubscriberInfo | None:
        return SubscriberInfo(msisdn, "active")

    async def run(front: bool) -> dict[str, Any]:
        map_name = f"cellcelly-bench-{uuid.uuid4().hex[:8]}"
        cache = HazelcastCache(
            lambda m: SubscriberInfo(m, "active"),
            aloader=load,
            members=members,
            cluster_name=cluster_name,
            map_name=map_name,
            front=front,
        )
        try:
            for _ in range(2):  # loaded, then read back into the near cache (the set invalidated it)
                await asyncio.gather(*(cache.lookup(m) for m in numbers))
                await asyncio.sleep(0.5)
            errors = 0
            latencies: list[int] = []
            began = time.perf_counter()
            for m in order:
                t0 = time.perf_counter_ns()
                if isinstance(cache.lookup_nowait(m), asyncio.Future):  # a hit must not be one
                    errors += 1
                latencies.append(time.perf_counter_ns() - t0)
            seconds = time.perf_counter() - began
            return summarise(
                f"hazelcast lookup_nowait on a loop, front {'on' if front else 'off'}",
                gets,
                seconds,
                latencies,
                errors,
            )
        finally:
            try:
                cache.client.get_map(map_name).blocking().destroy()
            finally:
                cache.close()

    async def both() -> list[dict[str, Any]]:
        return [await run(True), await run(False)]

    return asyncio.run(both())


if __name__ == "__main__":
    members = sys.argv[1:] or ["127.0.0.1:5701"]
    for row in bench_cache(members) + bench_lookup(members):
        sys.stdout.write(json.dumps(row) + "\n")
