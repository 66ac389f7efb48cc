"""The OCS wire port charges only a gateway that shows the shared key (issue 12 §5).

Raw sockets play the stranger (no key, a wrong one, silence, a flood before the key); `WireOcs` plays
the DGW. After every refusal the demo subscriber's account is exactly what it was.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.deploy.embedded import DEMO, seed_demo
from cellcelly.dgw.ocs_client import OcsUnavailable, WireOcs
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.ocs import wire
from cellcelly.ocs.wire import frame, request_to_list, serve_wire
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
KEY = "wire-test-key-0123456789abcdef"


def sms(session: str) -> ChargeRequest:
    """An SMS abroad: 4 TL from the wallet, charged at once."""
    return ChargeRequest(
        session,
        RequestType.EVENT,
        0,
        DEMO.msisdn,
        (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),),
        "90",
    )


@pytest.fixture
async def ocs(data_dir: Path) -> AsyncIterator[tuple[Backends, int]]:
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    server = await serve_wire(components.charging, "127.0.0.1", 0, api_key=KEY)
    yield components, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    components.close()


def account(components: Backends) -> Any:
    found = components.store.get(DEMO.msisdn)
    assert found is not None
    return found.wallet, {b.id: b.remaining for b in found.buckets.values()}, len(found.sessions)


async def read_frames(reader: asyncio.StreamReader) -> list[Any]:
    """Every frame until the OCS closes the connection (the test's timeout if it never does)."""
    frames = []
    while True:
        try:
            head = await reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b""
            return frames
        (length,) = struct.unpack("!I", head)
        frames.append(orjson.loads(await reader.readexactly(length)))


@pytest.mark.parametrize(
    "first",
    [
        frame([1, request_to_list(sms("w-1"))]),  # straight to charging, no key
        frame({"auth": "wrong-key-0123456789abcdef"}),
        frame({"auth": KEY + "x"}),
        frame({"auth": KEY[:-1]}),
        frame({"auth": None}),
        frame({"key": KEY}),  # the key, but not as the auth frame
        frame("hello"),
        struct.pack("!I", 3) + b"{{{",  # not JSON
    ],
    ids=["no-auth-frame", "wrong", "longer", "shorter", "null", "other-field", "string", "garbage"],
)
async def test_a_connection_without_the_key_is_refused_and_charges_nothing(
    ocs: tuple[Backends, int], first: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    components, port = ocs
    before = account(components)
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # what a stranger would send next: charging requests, pipelined behind the first frame
    writer.write(first + frame([2, request_to_list(sms("w-2"))]) + frame([3, request_to_list(sms("w-3"))]))
    await writer.drain()
    frames = await read_frames(reader)  # ends when the OCS closes
    writer.close()
    assert frames == [{"error": "unauthorized", "detail": frames[0]["detail"]}]
    assert "CELLCELLY_OCS_API_KEY" in frames[0]["detail"]
    assert account(components) == before
    refused = [r for r in caplog.records if r.getMessage() == "OCS wire connection refused"]
    assert len(refused) == 1 and refused[0].peer.startswith("127.0.0.1:")  # type: ignore[attr-defined]
    assert KEY not in caplog.text and "wrong-key" not in caplog.text  # no key, right or wrong, in the log


async def test_the_right_key_charges_on_the_same_connection(ocs: tuple[Backends, int]) -> None:
    components, port = ocs
    wallet = account(components)[0]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame({"auth": KEY}))
    assert orjson.loads((await reader.readexactly(4 + 11))[4:]) == {"ok": True}
    writer.write(frame([7, request_to_list(sms("w-ok"))]))
    (length,) = struct.unpack("!I", await reader.readexactly(4))
    rid, answer = orjson.loads(await reader.readexactly(length))
    writer.close()
    assert rid == 7 and answer[3] == int(ResultCode.SUCCESS)
    assert account(components)[0] == wallet - 400


async def test_a_silent_connection_is_closed_and_a_flood_before_the_key_is_cut(
    ocs: tuple[Backends, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    components, port = ocs
    before = account(components)
    monkeypatch.setattr(wire, "AUTH_TIMEOUT", 0.3)
    server = await serve_wire(components.charging, "127.0.0.1", 0, api_key=KEY)
    silent_port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", silent_port)
        frames = await asyncio.wait_for(read_frames(reader), 5)  # closed by the OCS, not by us
        writer.close()
        assert frames[0]["error"] == "unauthorized" and "time" in frames[0]["detail"]
    finally:
        server.close()
        await server.wait_closed()
    # a frame announced past the pre-key limit: the connection is dropped, nothing buffered
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack("!I", wire.AUTH_MAX_FRAME + 1) + b"x" * 1000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert account(components) == before


async def test_an_ocs_without_a_key_refuses_every_gateway(data_dir: Path) -> None:
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    before = account(components)
    server = await serve_wire(components.charging, "127.0.0.1", 0, api_key=None)
    client = WireOcs([("127.0.0.1", server.sockets[0].getsockname()[1])], api_key=KEY, timeout=2.0)
    try:
        with pytest.raises(OcsUnavailable):
            await client.charge(sms("nokey"))
        assert account(components) == before
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
        components.close()


async def test_the_gateway_client_with_the_right_key_charges_and_with_a_wrong_one_cannot(
    ocs: tuple[Backends, int], caplog: pytest.LogCaptureFixture
) -> None:
    components, port = ocs
    wallet = account(components)[0]
    good = WireOcs([("127.0.0.1", port)], api_key=KEY)
    bad = WireOcs([("127.0.0.1", port)], api_key="not-the-key-0123456789abcdef", retry_after=30)
    try:
        answer = await good.charge(sms("gw-good"))
        assert answer.result_code is ResultCode.SUCCESS
        assert account(components)[0] == wallet - 400
        before = account(components)
        for i in range(3):
            with pytest.raises(OcsUnavailable):
                await bad.charge(sms(f"gw-bad-{i}"))
        assert account(components) == before
        assert any(r.getMessage() == "OCS refused this gateway's key" for r in caplog.records)
        assert "not-the-key" not in caplog.text and KEY not in caplog.text
        # the good gateway's connection was never disturbed
        assert (await good.charge(sms("gw-good-2"))).result_code is ResultCode.SUCCESS
    finally:
        await good.close()
        await bad.close()


async def test_the_wire_on_a_unix_socket_charges_with_the_key_only(data_dir: Path, tmp_path: Path) -> None:
    """`make run`'s DGW child reaches its parent's OCS on a Unix socket: the same protocol and key,
    the socket only its user's; one left behind by an earlier process is replaced."""
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    path = tmp_path / "ocs-wire.sock"
    stale = await asyncio.get_running_loop().create_unix_server(asyncio.Protocol, str(path))
    stale.close()  # a socket file an earlier process left
    await stale.wait_closed()
    assert path.is_socket()
    server = await wire.serve_wire_unix(components.charging, str(path), api_key=KEY)
    endpoints = Settings(dgw_ocs_endpoints=f" {path} ,10.0.0.7:8082").ocs_endpoints()
    assert endpoints == [(str(path), 0), ("10.0.0.7", 8082)]
    good = WireOcs(endpoints[:1], api_key=KEY)
    bad = WireOcs(endpoints[:1], api_key="not-the-key-0123456789abcdef", retry_after=30)
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        wallet = account(components)[0]
        assert (await good.charge(sms("unix-good"))).result_code is ResultCode.SUCCESS
        assert account(components)[0] == wallet - 400
        assert good.endpoints[0].name == str(path)
        before = account(components)
        with pytest.raises(OcsUnavailable):
            await bad.charge(sms("unix-bad"))
        assert account(components) == before
    finally:
        await good.close()
        await bad.close()
        server.close()
        await server.wait_closed()
        components.close()
