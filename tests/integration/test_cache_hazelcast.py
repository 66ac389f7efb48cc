"""The Hazelcast lookup cache against a real Hazelcast 5.7 member on 127.0.0.1.

The member is `$CELLCELLY_TEST_HAZELCAST` (host:port) when set, otherwise one started for this
module by `scripts/hazelcast.sh` (the jar comes from Maven Central; needs Java and mvn).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gy_client import CLIENT, PEERS, voice_ccr
from stack_apart import Service, free_ports
from test_voltdb_off_loop import SlowLink, Ticker, provision

from cellcelly.adapters.cache_hazelcast import HazelcastCache
from cellcelly.ports.cache import SubscriberInfo
from cellcelly_dev.bench_hazelcast import bench_cache, bench_lookup
from cellcelly_dev.devservers import free_port
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "hazelcast.sh"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


_unavailable: list[str] = []  # why no member could be had (asked once per module, not once per test)


@pytest.fixture(scope="module")
def hazelcast_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a Hazelcast member with cluster name "cellcelly"."""
    given = os.environ.get("CELLCELLY_TEST_HAZELCAST")
    if given:
        yield given
        return
    if not _unavailable:
        missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
        if missing:
            tools = " and ".join(missing)
            _unavailable.append(f"{tools} not installed: the Hazelcast member needs Java and Maven")
        else:
            fetch = subprocess.run(
                ["bash", str(SCRIPT), "fetch"], capture_output=True, text=True, timeout=600
            )
            if fetch.returncode != 0:
                _unavailable.append(
                    f"scripts/hazelcast.sh fetch failed (Maven Central unreachable?):\n{_tail(fetch.stderr)}"
                )
    if _unavailable:
        require(False, _unavailable[0])
    directory = tmp_path_factory.mktemp("hazelcast")
    port = free_port()
    try:
        start = subprocess.run(
            ["bash", str(SCRIPT), "start", str(directory), str(port)],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if start.returncode != 0:
            pytest.fail(f"scripts/hazelcast.sh start failed:\n{_tail(start.stderr)}")
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(directory)], capture_output=True, timeout=30)


class Loader:
    """A subscriber table that counts how often the cache asks it; `load` is its awaitable form
    (the store's `get_async`), which waits for `gate` (a slow store)."""

    def __init__(self, rows: dict[str, str] | None = None) -> None:
        self.rows = dict(rows or {})
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    def __call__(self, msisdn: str) -> SubscriberInfo | None:
        self.calls.append(msisdn)
        status = self.rows.get(msisdn)
        return None if status is None else SubscriberInfo(msisdn, status)

    async def load(self, msisdn: str) -> SubscriberInfo | None:
        if self.gate is not None:
            await self.gate.wait()
        return self(msisdn)


@pytest.fixture
def map_name() -> str:
    return f"test-subscribers-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_cache(hazelcast_member: str, map_name: str) -> Iterator[Callable[..., HazelcastCache]]:
    caches: list[HazelcastCache] = []

    def make(loader: Loader, **options: Any) -> HazelcastCache:
        options.setdefault("map_name", map_name)
        options.setdefault("members", [hazelcast_member])
        cache = HazelcastCache(loader, connect_timeout=15, **options)
        caches.append(cache)
        return cache

    yield make
    try:
        if caches:
            caches[0].client.get_map(map_name).blocking().destroy()
    finally:
        for cache in caches:
            cache.close()


def _near_cache_stats(cache: HazelcastCache, map_name: str) -> dict[str, Any]:
    # The client keeps no public handle on its near caches; their statistics are the only way to
    # see them. Not `get_or_create_near_cache`: it takes an empty near cache for a missing one
    # (`if not near_cache` on an object with __len__) and replaces it under the map's feet.
    near = cache.client._near_cache_manager._caches[map_name]
    return dict(near.get_statistics())


def _wait_for_invalidations(cache: HazelcastCache, map_name: str, count: int, timeout: float = 2.0) -> None:
    """Let invalidations of a `set` arrive before near-cache hits are counted (see the callers).

    Not arriving is no failure: an event sent before this client's near-cache listener was
    registered never comes, and then cannot drop a copy later either."""
    deadline = time.monotonic() + timeout
    while _near_cache_stats(cache, map_name)["invalidation_requests"] < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_member_is_a_real_hazelcast_member(make_cache: Callable[..., HazelcastCache], hazelcast_member: str):
    cache = make_cache(Loader())
    members = cache.client.cluster_service.get_members()
    assert len(members) == 1
    host, port = hazelcast_member.rsplit(":", 1)
    assert members[0].address.port == int(port)
    assert members[0].address.host == host
    assert (members[0].version.major, members[0].version.minor) == (5, 7)
    assert cache.client.lifecycle_service.is_running()


def test_credentials_are_sent_and_an_open_source_member_refuses_them(
    hazelcast_member: str, caplog: pytest.LogCaptureFixture
):
    """What the operator sets from hazelcast.external.secretRef reaches the member's authentication:
    an open-source member (no security, that is Hazelcast Enterprise's) refuses any client login, so
    set them only for a member that checks them. A member that accepts them is not run here."""
    from hazelcast.errors import IllegalStateError  # imported by the adapter first (asyncore's warning)

    started = time.monotonic()
    with pytest.raises(IllegalStateError, match="Unable to connect"):
        HazelcastCache(
            Loader(), members=[hazelcast_member], connect_timeout=3, username="cellcelly", password="pw"
        )
    assert "Authentication failed" in caplog.text
    assert time.monotonic() - started < 30  # refused within the connect timeout, not hanging
    HazelcastCache(Loader(), members=[hazelcast_member], connect_timeout=15).close()  # without: fine


def test_miss_loads_once_then_hits(make_cache: Callable[..., HazelcastCache], map_name: str):
    loader = Loader({"905321112233": "active"})
    cache = make_cache(loader)
    assert cache.get("905321112233") == SubscriberInfo("905321112233", "active")
    assert loader.calls == ["905321112233"]
    # The cache's own `set` is invalidated twice: locally at once, and again when the member's
    # invalidation event for it comes back (asynchronously). Until that event is in, a near-cache
    # copy may still be dropped, so the gets counted below start after it.
    _wait_for_invalidations(cache, map_name, 2)
    before = _near_cache_stats(cache, map_name)["hits"]
    for _ in range(10):
        assert cache.get("905321112233") == SubscriberInfo("905321112233", "active")
    assert loader.calls == ["905321112233"]
    assert (cache.hits, cache.misses) == (10, 1)
    # the repeated gets were answered by the near cache (the first one fetches it from the member)
    assert _near_cache_stats(cache, map_name)["hits"] - before >= 9


def test_without_near_cache_still_shares_the_map(make_cache: Callable[..., HazelcastCache]):
    loader = Loader({"905321112233": "active"})
    first, second = make_cache(loader, near_cache=False), make_cache(loader, near_cache=False)
    assert first.get("905321112233") == SubscriberInfo("905321112233", "active")
    assert second.get("905321112233") == SubscriberInfo("905321112233", "active")
    assert loader.calls == ["905321112233"]


def test_unknown_msisdn_is_cached_for_negative_ttl_only(make_cache: Callable[..., HazelcastCache]):
    loader = Loader()
    cache = make_cache(loader, negative_ttl=1)
    assert cache.get("905329990000") is None
    assert cache.get("905329990000") is None
    assert loader.calls == ["905329990000"]
    loader.rows["905329990000"] = "active"  # signs up; nobody invalidates
    time.sleep(1.2)
    assert cache.get("905329990000") == SubscriberInfo("905329990000", "active")
    assert loader.calls == ["905329990000", "905329990000"]
    # a found subscriber keeps the long ttl
    time.sleep(1.2)
    assert cache.get("905329990000") == SubscriberInfo("905329990000", "active")
    assert len(loader.calls) == 2


def test_invalidate_on_one_client_reaches_the_near_cache_of_another(
    make_cache: Callable[..., HazelcastCache], map_name: str
):
    loader = Loader({"905321112233": "active"})
    first, second = make_cache(loader), make_cache(loader)
    assert first.get("905321112233") == SubscriberInfo("905321112233", "active")
    _wait_for_invalidations(second, map_name, 1)  # the first client's `set` reaches the second too
    for _ in range(3):  # the second client reads the shared entry, then from its near cache
        assert second.get("905321112233") == SubscriberInfo("905321112233", "active")
    assert loader.calls == ["905321112233"]
    assert _near_cache_stats(second, map_name)["hits"] >= 2

    loader.rows["905321112233"] = "suspended"
    first.invalidate("905321112233")
    deadline = time.monotonic() + 2.0
    seen = second.get("905321112233")
    while seen != SubscriberInfo("905321112233", "suspended") and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = second.get("905321112233")
    assert seen == SubscriberInfo("905321112233", "suspended")
    # and the first client sees it too (its own near cache was cleared by its own invalidate)
    assert first.get("905321112233") == SubscriberInfo("905321112233", "suspended")


def test_turkish_text_survives(make_cache: Callable[..., HazelcastCache]):
    status = "askıya alındı: Çağrı Şükrü Öğüt İğdır ığ — ÇĞİÖŞÜ çğıöşü"
    msisdn = "+90 (532) 111-22-33 Şişli"
    writer = make_cache(Loader({msisdn: status}))
    reader_loader = Loader()
    reader = make_cache(reader_loader, near_cache=False)  # straight from the member
    assert writer.get(msisdn) == SubscriberInfo(msisdn, status)
    assert reader.get(msisdn) == SubscriberInfo(msisdn, status)
    assert reader_loader.calls == []
    assert writer.get(msisdn) == SubscriberInfo(msisdn, status)  # from the near cache


def test_bench_cache_reports_both_modes(hazelcast_member: str):
    rows = bench_cache([hazelcast_member], msisdns=100, gets=2_000)
    assert [row["name"] for row in rows] == ["hazelcast get, near cache on", "hazelcast get, near cache off"]
    assert all(row["ops"] == 2_000 and row["errors"] == 0 and row["ops_per_s"] > 0 for row in rows)


def test_bench_lookup_reports_front_on_and_off(hazelcast_member: str):
    rows = bench_lookup([hazelcast_member], msisdns=100, gets=2_000)
    names = [row["name"] for row in rows]
    assert names == [f"hazelcast lookup_nowait on a loop, front {front}" for front in ("on", "off")]
    assert all(row["ops"] == 2_000 and row["errors"] == 0 and row["ops_per_s"] > 0 for row in rows)


# --- on an event loop: the non-blocking proxy (issue 14, item 1) ------------------------------------

A = "905321112233"


def on_loop(make_cache: Callable[..., HazelcastCache], loader: Loader, **options: Any) -> HazelcastCache:
    return make_cache(loader, aloader=loader.load, **options)


def _member_holds(cache: HazelcastCache, map_name: str, msisdn: str) -> str | None:
    value: str | None = cache.client.get_map(map_name).blocking().get(msisdn)
    return value


async def test_lookup_miss_goes_to_the_member_then_the_loader_and_a_hit_needs_no_await(
    make_cache: Callable[..., HazelcastCache], map_name: str
):
    loader = Loader({A: "active"})
    cache = on_loop(make_cache, loader, front=False)  # the near cache's own hits
    first = cache.lookup_nowait(A)
    assert isinstance(first, asyncio.Future)
    assert await first == SubscriberInfo(A, "active")
    assert loader.calls == [A]
    # the first caller is answered before the member has the value (the load goes on to store it
    # on this loop): a reader asking at once can miss it on a loaded machine (CI, once)
    deadline = time.monotonic() + 10
    while _member_holds(cache, map_name, A) is None:
        assert time.monotonic() < deadline, "the load never stored the value on the member"
        await asyncio.sleep(0.01)
    reader = make_cache(Loader(), near_cache=False)
    assert await reader.lookup(A) == SubscriberInfo(A, "active")  # from the member, no loader
    _wait_for_invalidations(cache, map_name, 2)  # the `set`'s own invalidation is in (see above)
    assert await cache.lookup(A) == SubscriberInfo(A, "active")  # fetched into the near cache
    # an invalidation later than that wait (a loaded machine: CI, once) can still drop the near
    # cache's copy: fetch it again until a lookup answers with the value itself
    deadline = time.monotonic() + 10
    while isinstance(found := cache.lookup_nowait(A), asyncio.Future):
        assert time.monotonic() < deadline, "the near cache never kept the value"
        assert await found == SubscriberInfo(A, "active")
        await asyncio.sleep(0.05)
    assert found == SubscriberInfo(A, "active")
    before = _near_cache_stats(cache, map_name)["hits"]
    for _ in range(10):
        assert cache.lookup_nowait(A) == SubscriberInfo(A, "active")  # the value: no future, no await
    assert _near_cache_stats(cache, map_name)["hits"] - before == 10
    assert loader.calls == [A]


async def test_lookup_of_an_unknown_msisdn_is_held_on_the_member_for_negative_ttl(
    make_cache: Callable[..., HazelcastCache], map_name: str
):
    loader = Loader()
    cache = on_loop(make_cache, loader, negative_ttl=1)
    assert await cache.lookup("905329990000") is None
    assert (_member_holds(cache, map_name, "905329990000") or "").startswith("?")
    assert await cache.lookup("905329990000") is None
    assert loader.calls == ["905329990000"]
    loader.rows["905329990000"] = "active"
    await asyncio.sleep(1.2)
    assert await cache.lookup("905329990000") == SubscriberInfo("905329990000", "active")


async def test_concurrent_lookups_load_once(make_cache: Callable[..., HazelcastCache]):
    loader = Loader({A: "active"})
    loader.gate = asyncio.Event()
    cache = on_loop(make_cache, loader)
    waiting = [asyncio.ensure_future(cache.lookup(A)) for _ in range(50)]
    await asyncio.sleep(0.2)  # the member has answered "not here" to the one request sent
    loader.gate.set()
    assert await asyncio.gather(*waiting) == [SubscriberInfo(A, "active")] * 50
    assert loader.calls == [A]


async def test_invalidate_on_the_loop_reaches_another_client(
    make_cache: Callable[..., HazelcastCache], map_name: str
):
    loader = Loader({A: "active"})
    writer, reader = on_loop(make_cache, loader), on_loop(make_cache, loader, front=False)
    assert await writer.lookup(A) == SubscriberInfo(A, "active")
    _wait_for_invalidations(reader, map_name, 1)
    assert await reader.lookup(A) == SubscriberInfo(A, "active")
    loader.rows[A] = "suspended"
    writer.invalidate(A)  # returns at once: the delete goes out behind it
    assert await writer.lookup(A) == SubscriberInfo(A, "suspended")  # its own front forgot at once
    deadline = time.monotonic() + 2.0
    while (seen := await reader.lookup(A)) != SubscriberInfo(A, "suspended"):  # its near cache, told
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.02)


async def test_the_front_answers_without_the_near_cache_until_told_or_expired(
    make_cache: Callable[..., HazelcastCache], map_name: str
):
    """The front is forgotten by `invalidate` (a DGW's ledger follower calls it for every change
    made anywhere), not by the member: another process's change alone is seen at its ttl."""
    loader = Loader({A: "active"})
    now = [time.time()]
    writer = on_loop(make_cache, loader)
    reader = on_loop(make_cache, loader, ttl=60, clock=lambda: now[0])
    assert await writer.lookup(A) == SubscriberInfo(A, "active")
    await asyncio.sleep(0.2)  # its `set` is on the member (callers are answered before it is)
    assert await reader.lookup(A) == SubscriberInfo(A, "active")  # from the member, into the front
    near_hits = _near_cache_stats(reader, map_name)["hits"]
    for _ in range(10):
        assert reader.lookup_nowait(A) == SubscriberInfo(A, "active")
    assert _near_cache_stats(reader, map_name)["hits"] == near_hits  # the front answered
    loader.rows[A] = "suspended"
    writer.invalidate(A)
    await asyncio.sleep(0.5)
    assert reader.lookup_nowait(A) == SubscriberInfo(A, "active")  # not told yet
    reader.invalidate(A)  # what the follower does on the change
    assert await reader.lookup(A) == SubscriberInfo(A, "suspended")
    # its `set` is on the member before the next change (else the writer's delete may land first and
    # the member keep "suspended": a load that races a change is forgotten by the loader's own
    # follower, which this test does not model)
    await asyncio.sleep(0.2)
    loader.rows[A] = "active"
    writer.invalidate(A)
    await asyncio.sleep(0.5)  # the writer's delete is on the member
    now[0] += 61  # or its ttl ends
    assert await reader.lookup(A) == SubscriberInfo(A, "active")
    assert loader.calls == [A, A, A]


async def test_a_member_that_holds_its_answers_leaves_the_loop_running(
    make_cache: Callable[..., HazelcastCache], hazelcast_member: str
):
    """A member behind a proxy that holds each answer 1 s: the loop ticks on while `lookup` waits
    for it; the blocking `get` stalls the same ticker (the measure can fail)."""
    delay = 1.0
    link = SlowLink(hazelcast_member)
    try:
        loader = Loader({A: "active"})
        cache = make_cache(loader, aloader=loader.load, members=[link.servers], smart_routing=False)
        link.delay = delay
        async with Ticker().running() as ticker:
            began = time.perf_counter()
            assert await cache.lookup(A) == SubscriberInfo(A, "active")  # get, then set: two answers
            took = time.perf_counter() - began
        assert took >= delay  # it waited for the member ...
        assert ticker.worst < delay / 2, f"the loop stalled {ticker.worst:.3f} s"  # ... off the loop

        cache.invalidate(A)
        async with Ticker().running() as blocked:
            await asyncio.sleep(0)
            assert cache.get(A) == SubscriberInfo(A, "active")
            await asyncio.sleep(0.01)  # the ticker sees the gap
        assert blocked.worst >= delay
    finally:
        link.delay = 0.0
        link.close()


# --- `cellcelly dgw` apart, configured as the operator configures it ---------------------------------

KNOWN, STRANGER = "5320000001", "5329990001"


@pytest.mark.timeout(180)
async def test_cellcelly_dgw_apart_answers_an_unknown_subscriber_from_the_hazelcast_cache(
    hazelcast_member: str, voltdb_servers: str, tmp_path: Path
):
    """CELLCELLY_CACHE=hazelcast and CELLCELLY_BALANCE_STORE=voltdb (what the operator sets): the DGW
    process dials the member and, on a miss, VoltDB. Its OCS endpoint has nobody listening, so a
    5030 can only come from the cache (asking the OCS answers 3002); the member holds both answers."""
    from cellcelly.diameter.constants import Result
    from cellcelly.diameter.peer import connect

    provision(voltdb_servers, KNOWN)
    dgw_port, dead_ocs = free_ports(2)
    dgw = Service(
        "dgw",
        ["dgw"],
        {
            "CELLCELLY_DATA_DIR": str(tmp_path / "dgw-data"),
            "CELLCELLY_BALANCE_STORE": "voltdb",
            "CELLCELLY_VOLTDB_SERVERS": voltdb_servers,
            "CELLCELLY_CACHE": "hazelcast",
            "CELLCELLY_HAZELCAST_MEMBERS": hazelcast_member,
            "CELLCELLY_DGW_HOST": "127.0.0.1",
            "CELLCELLY_DGW_PORT": str(dgw_port),
            "CELLCELLY_DGW_OCS_ENDPOINTS": f"127.0.0.1:{dead_ocs}",
            "CELLCELLY_OCS_API_KEY": "cache-apart-test-key-0123456789",
            "CELLCELLY_DGW_ALLOWED_PEERS": str(PEERS),
        },
        tmp_path / "dgw.log",
        ready_port=dgw_port,
    )
    watcher = HazelcastCache(Loader(), members=[hazelcast_member], connect_timeout=15, near_cache=False)
    subscribers = watcher.client.get_map("cellcelly-subscribers").blocking()
    try:
        subscribers.clear()
        await dgw.start(timeout=90)
        conn = await connect("127.0.0.1", dgw_port, CLIENT)
        try:
            unknown = await conn.request(voice_ccr("apart;1", 1, 0, STRANGER))
            assert unknown.result_code == Result.USER_UNKNOWN, dgw.tail()
            again = await conn.request(voice_ccr("apart;2", 1, 0, STRANGER))
            assert again.result_code == Result.USER_UNKNOWN
            known = await conn.request(voice_ccr("apart;3", 1, 0, KNOWN))
            assert known.result_code == Result.UNABLE_TO_DELIVER  # let through to the (absent) OCS
        finally:
            await conn.disconnect()
        held = {key: subscribers.get(key) for key in subscribers.key_set()}
        assert held.keys() == {STRANGER, KNOWN}, held
        assert held[STRANGER].startswith("?")  # unknown, for the negative ttl
        assert "active" in held[KNOWN]
        assert "subscriber cache hazelcast" in dgw.tail(200)
    finally:
        await dgw.stop()
        subscribers.clear()
        watcher.close()
