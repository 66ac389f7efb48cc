"""The charging path makes no reference cycles, on success and on its failures.

`runtime.tune_gc` freezes what outlives a young collection: a cycle among such objects is freed
only by a full collection, which comes when the process's memory has grown fourfold. This checks
the premise over the real wire (a Diameter client → DGW → OCS wire → embedded store) and over
HTTP: with the collector off, every object the path made and dropped must have been freed by its
reference count; what a collection then finds unreachable and is ours (a `cellcelly` class, an
asyncio task or future, a frame or coroutine of our code) is a cycle the path made.
"""

from __future__ import annotations

import asyncio
import gc
import struct
import types
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from gy_client import voice_ccr
from test_dgw import OVERLOAD_KEY, LateFor, ccr, gateway_before

from cellcelly.deploy.backends import open_backends
from cellcelly.deploy.embedded import DEMO, seed_demo
from cellcelly.diameter.codec import Message
from cellcelly.diameter.constants import Code, Result
from cellcelly.diameter.peer import PeerConnection
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _ours(obj: object) -> bool:
    if isinstance(obj, (asyncio.Future, asyncio.Handle)):
        return True
    if isinstance(obj, types.FrameType):
        return "/cellcelly/" in obj.f_code.co_filename
    if isinstance(obj, types.CoroutineType):
        return "/cellcelly/" in obj.cr_code.co_filename
    if isinstance(obj, types.GeneratorType):
        return "/cellcelly/" in obj.gi_code.co_filename
    return type(obj).__module__.startswith("cellcelly")


async def cycles_made_by(work: Callable[[], Awaitable[None]]) -> list[str]:
    """What `work` left in reference cycles: the names of our unreachable objects."""
    gc.collect()
    gc.disable()
    try:
        await work()
        await asyncio.sleep(0.05)  # callbacks already scheduled run, as they would
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return sorted({type(o).__qualname__ for o in gc.garbage if _ours(o)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_the_check_finds_a_cycle() -> None:
    """The check can fail: an object of ours in a cycle, dropped, is found."""
    from cellcelly.diameter.codec import Avp

    async def cyclic() -> None:
        avp = Avp.grouped(Code.SUBSCRIPTION_ID, [])
        avp.children.append(avp)

    assert asyncio.run(cycles_made_by(cyclic)) == ["Avp"]


async def test_charging_over_the_wire_makes_no_cycles(data_dir: Path) -> None:
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    slow = LateFor(components.charging, {"gw;late": 3.0}, pause=0.0)
    try:
        async with gateway_before(slow, OVERLOAD_KEY, timeout=0.5) as (conn, _):
            await conn.request(ccr("gw;warm", 1, 0))  # first-use caches are no request's

            async def traffic() -> None:
                await session(conn, "gw;c1")
                answers = await asyncio.gather(*(session(conn, f"gw;c{i}") for i in range(2, 12)))
                assert all(a == Result.SUCCESS for a in answers)
                sms = await conn.request(ccr("gw;unknown-sub", 1, 0, msisdn="5000000001"))
                assert sms.result_code == Result.USER_UNKNOWN
                assert (await conn.request(ccr("gw;never", 2, 3))).result_code == Result.UNKNOWN_SESSION_ID
                # a request the OCS answers too late: timed out, answered 3002
                assert (await conn.request(ccr("gw;late", 1, 0))).result_code == Result.UNABLE_TO_DELIVER
                # a client that gives up first (the traffic generator's timeout)
                with pytest.raises(TimeoutError):
                    await conn.request(ccr("gw;late", 1, 1), timeout=0.1)
                await asyncio.sleep(0.6)  # its answer comes, to nobody
                # malformed: a missing mandatory AVP, and bytes that are no AVP
                bad = ccr("gw;bad", 1, 0)
                bad.avps = [a for a in bad.avps if a.code != Code.CC_REQUEST_NUMBER]
                assert (await conn.request(bad)).result_code == Result.MISSING_AVP
                await garbled(conn)

            assert await cycles_made_by(traffic) == []
    finally:
        components.close()


async def session(conn: PeerConnection, sid: str) -> int:
    """A voice call: open, one update, end; the last answer's result."""
    await conn.request(ccr(sid, 1, 0))
    await conn.request(ccr(sid, 2, 1, time_used=30))
    answer = await conn.request(voice_ccr(sid, 3, 2, DEMO.msisdn, requested=None, used=20))
    return answer.result_code


async def garbled(conn: PeerConnection) -> None:
    raw = bytearray(ccr("gw;garbled", 1, 0).encode())
    struct.pack_into("!I", raw, 12, 0xC0C0A001)  # hop-by-hop
    struct.pack_into("!I", raw, 24, (0x40 << 24) | 4)  # the first AVP claims 4 bytes
    answered: asyncio.Future[Message] = conn._expect(0xC0C0A001)  # noqa: SLF001 - raw bytes on purpose
    assert conn.transport is not None
    conn.transport.write(bytes(raw))
    assert (await asyncio.wait_for(answered, 5)).result_code == Result.INVALID_AVP_LENGTH


async def test_charging_over_http_makes_no_cycles(data_dir: Path) -> None:
    """The OCS's JSON API as it serves (the fast path in front of FastAPI): charges, and the
    refusals of a wrong key, bad JSON and an oversize body."""
    import httpx
    from test_ocs_api import CHARGER, KEY, body, voice

    from cellcelly.deploy.ocs import ocs_app
    from cellcelly.ocs.app import API
    from cellcelly.web import MAX_BODY

    settings = Settings(data_dir=data_dir, admin_token="t", ocs_api_key=KEY)
    components = open_backends(settings)
    seed_demo(components)
    transport = httpx.ASGITransport(app=ocs_app(settings, components))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ocs", headers=CHARGER) as client:
            warm = await client.post(f"{API}/chargingdata", json=body(0, voice(), session="warm"))
            assert warm.status_code == 201

            async def traffic() -> None:
                created = await client.post(f"{API}/chargingdata", json=body(0, voice(), session="h1"))
                assert created.status_code == 201
                update = body(1, voice(used=30), session="h1")
                assert (await client.post(f"{API}/chargingdata/h1/update", json=update)).status_code == 200
                end = body(2, voice(requested=None, used=10), session="h1")
                assert (await client.post(f"{API}/chargingdata/h1/release", json=end)).status_code == 200
                stranger = {"Authorization": "Bearer wrong"}
                refused = await client.post(f"{API}/chargingdata", json=body(0, voice()), headers=stranger)
                assert refused.status_code == 401
                bad = await client.post(f"{API}/chargingdata", content=b"{not json")
                assert bad.status_code == 400
                huge = await client.post(f"{API}/chargingdata", content=b" " * (MAX_BODY + 1))
                assert huge.status_code == 413

            assert await cycles_made_by(traffic) == []
    finally:
        components.close()
