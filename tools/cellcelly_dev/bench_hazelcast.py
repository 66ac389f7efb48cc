"""Lookups per second on the Hazelcast cache, with and without the client's near cache.

1,000 MSISDNs are loaded once (every one a miss), then 20,000 gets over them are timed: with the
near cache they are answered in this process, without it each one is a round trip to the member.
"""

from __future__ import annotations

import random
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
