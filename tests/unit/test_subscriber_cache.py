"""The embedded subscriber cache on an event loop, and the gateway reading it (issue 14, item 1).

A hit is answered without a coroutine, a miss awaits the asynchronous loader (the store's
`get_async`), concurrent misses load once, an invalidation overtaking a load keeps its result out.
The Hazelcast adapter's side is tests/integration/test_cache_hazelcast.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cellcelly.adapters.cache_embedded import EmbeddedCache
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import Answered, NoopOcs
from cellcelly.diameter.ccr import build_ccr
from cellcelly.diameter.codec import Message, decode
from cellcelly.diameter.constants import RequestType, Result
from cellcelly.diameter.peer import LocalPeer, PeerConnection
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest
from cellcelly.ports.cache import SubscriberInfo

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

A, UNKNOWN = "5321112233", "5329990000"


class Loader:
    """A subscriber table behind an awaitable load that waits for `gate` (a slow store)."""

    def __init__(self, rows: dict[str, str]) -> None:
        self.rows = dict(rows)
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def sync(self, msisdn: str) -> SubscriberInfo | None:
        self.calls.append(msisdn)
        status = self.rows.get(msisdn)
        return None if status is None else SubscriberInfo(msisdn, status)

    async def __call__(self, msisdn: str) -> SubscriberInfo | None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.sync(msisdn)


def cache_over(loader: Loader, **options: Any) -> EmbeddedCache:
    return EmbeddedCache(loader.sync, aloader=loader, **options)


async def test_miss_loads_off_the_loop_then_hits_without_a_coroutine():
    loader = Loader({A: "active"})
    cache = cache_over(loader)
    first = cache.lookup_nowait(A)
    assert isinstance(first, asyncio.Future)  # a miss: awaited, never a blocking load
    assert await first == SubscriberInfo(A, "active")
    assert cache.lookup_nowait(A) == SubscriberInfo(A, "active")  # the value itself, no future
    assert await cache.lookup(A) == SubscriberInfo(A, "active")
    assert loader.calls == [A]
    assert (cache.hits, cache.misses) == (2, 1)


async def test_unknown_is_kept_for_negative_ttl_only():
    now = [1000.0]
    loader = Loader({})
    cache = cache_over(loader, negative_ttl=5, clock=lambda: now[0])
    assert await cache.lookup(UNKNOWN) is None
    assert cache.lookup_nowait(UNKNOWN) is None  # held: answered at once
    loader.rows[UNKNOWN] = "active"  # signs up; nobody invalidates
    now[0] += 5
    assert await cache.lookup(UNKNOWN) == SubscriberInfo(UNKNOWN, "active")
    assert loader.calls == [UNKNOWN, UNKNOWN]


async def test_concurrent_misses_load_once():
    loader = Loader({A: "active"})
    loader.gate.clear()
    cache = cache_over(loader)
    waiting = [asyncio.ensure_future(cache.lookup(A)) for _ in range(50)]
    await asyncio.sleep(0.01)
    loader.gate.set()
    assert await asyncio.gather(*waiting) == [SubscriberInfo(A, "active")] * 50
    assert loader.calls == [A]


async def test_one_caller_cancelled_does_not_cancel_the_others():
    loader = Loader({A: "active"})
    loader.gate.clear()
    cache = cache_over(loader)
    quitter, stayer = asyncio.ensure_future(cache.lookup(A)), asyncio.ensure_future(cache.lookup(A))
    await asyncio.sleep(0.01)
    quitter.cancel()
    loader.gate.set()
    assert await stayer == SubscriberInfo(A, "active")
    assert loader.calls == [A]


async def test_invalidate_forgets_and_a_load_it_overtook_is_not_kept():
    loader = Loader({A: "active"})
    cache = cache_over(loader)
    assert await cache.lookup(A) == SubscriberInfo(A, "active")
    loader.rows[A] = "suspended"
    cache.invalidate(A)
    assert await cache.lookup(A) == SubscriberInfo(A, "suspended")

    loader.gate.clear()  # a load in flight when the subscriber changes again
    cache.invalidate(A)
    loading = cache.lookup_nowait(A)
    assert isinstance(loading, asyncio.Future)
    cache.invalidate(A)
    loader.rows[A] = "active"
    loader.gate.set()
    await loading
    assert isinstance(cache.lookup_nowait(A), asyncio.Future)  # not kept: loaded afresh


async def test_a_failed_load_is_raised_to_its_callers_and_not_kept():
    loader = Loader({A: "active"})
    loader.fail = OSError("store down")
    cache = cache_over(loader)
    with pytest.raises(OSError, match="store down"):
        await cache.lookup(A)
    loader.fail = None
    assert await cache.lookup(A) == SubscriberInfo(A, "active")


async def test_a_slow_store_leaves_the_loop_running():
    """The loop ticks every 5 ms while a lookup waits 300 ms for its store; the blocking form
    (`get` over a sleeping loader) stalls it, so the measure can fail."""
    loader = Loader({A: "active"})

    async def slow(msisdn: str) -> SubscriberInfo | None:
        await asyncio.sleep(0.3)
        return loader.sync(msisdn)

    def slow_sync(msisdn: str) -> SubscriberInfo | None:
        time.sleep(0.3)
        return loader.sync(msisdn)

    async def worst_tick(work: Any) -> float:
        worst, last, done = 0.0, time.perf_counter(), asyncio.Event()

        async def tick() -> None:
            nonlocal worst, last
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0.02)
        await work()
        done.set()
        await ticker
        return worst

    cache = EmbeddedCache(slow_sync, aloader=slow)

    async def awaited() -> None:
        assert await cache.lookup(A) == SubscriberInfo(A, "active")

    async def blocking() -> None:
        assert EmbeddedCache(slow_sync).get(A) == SubscriberInfo(A, "active")

    assert await worst_tick(awaited) < 0.15
    assert await worst_tick(blocking) >= 0.25


# --- the gateway ---------------------------------------------------------------------------------

LOCAL = LocalPeer("dgw.test", "cellcelly.local")
CLIENT = LocalPeer("pgw.test", "client.realm")


def peer_conn() -> PeerConnection:
    """The client's connection as the gateway sees it after the capabilities exchange."""
    conn = PeerConnection(LOCAL)
    conn.remote_host, conn.remote_realm = CLIENT.origin_host, CLIENT.origin_realm
    return conn


class CountingOcs:
    """NoopOcs, counting what it is asked (wrapped, not subclassed: the services image compiles
    NoopOcs, and an interpreted class cannot inherit from a compiled one)."""

    def __init__(self) -> None:
        self.noop = NoopOcs()
        self.asked: list[str | None] = []

    async def charge(self, req: ChargeRequest) -> ChargeAnswer:
        self.asked.append(req.msisdn)
        return await self.noop.charge(req)

    def charge_soon(self, req: ChargeRequest, done: Answered) -> bool:
        return False  # as NoopOcs: every request through `charge`, counted

    async def close(self) -> None:
        return None


def ccr(session: str, msisdn: str) -> Message:
    return build_ccr(
        session_id=session,
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=RequestType.EVENT,
        request_number=0,
        msisdn=msisdn,
        service="sms",
        requested=1,
        destination="905551112233",
    )


async def answer_of(gateway: Gateway, msg: Message) -> Message:
    answer = gateway(peer_conn(), msg)
    if not isinstance(answer, Message):
        answer = await answer
    return answer if isinstance(answer, Message) else decode(answer)  # as sent: encoded


async def test_gateway_answers_an_unknown_subscriber_5030_without_the_ocs():
    ocs = CountingOcs()
    loader = Loader({})
    gateway = Gateway(LOCAL, ocs, cache_over(loader))
    first = await answer_of(gateway, ccr("s;1", A))  # a miss: awaited
    assert first.result_code == Result.USER_UNKNOWN
    second = gateway(peer_conn(), ccr("s;2", A))
    assert isinstance(second, Message), "an unknown held in the cache is answered at once"
    assert second.result_code == Result.USER_UNKNOWN
    assert ocs.asked == []
    assert len(loader.calls) == 1


async def test_gateway_charges_a_known_subscriber_and_a_failed_lookup_lets_the_ocs_decide():
    ocs = CountingOcs()
    loader = Loader({})
    gateway = Gateway(LOCAL, ocs, cache_over(loader))
    answer = await answer_of(gateway, ccr("s;1", A))
    assert answer.result_code == Result.USER_UNKNOWN
    msisdn = loader.calls[0]  # as the gateway names it
    gateway.account_changed("opened", msisdn)  # signs up: the follower tells the gateway
    loader.rows[msisdn] = "active"
    assert (await answer_of(gateway, ccr("s;2", A))).result_code == Result.SUCCESS
    assert (await answer_of(gateway, ccr("s;3", A))).result_code == Result.SUCCESS  # a hit
    assert len(loader.calls) == 2 and len(ocs.asked) == 2

    gateway.account_changed("suspended", msisdn)
    loader.fail = OSError("store down")
    assert (await answer_of(gateway, ccr("s;4", A))).result_code == Result.SUCCESS
    assert gateway.stats.cache_failed == 1 and len(ocs.asked) == 3
