"""The OCS wire port takes requests that no schema checked (a gateway, or anyone with the key):
the charging engine refuses what the system of record cannot hold there too (5012, nothing
changed), and still charges a request at the limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.deploy.embedded import DEMO, seed_demo
from cellcelly.dgw.ocs_client import WireOcs
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.limits import MAX_REQUEST_NUMBER, MAX_SESSION_ID, MAX_UNITS
from cellcelly.domain.units import Service
from cellcelly.ocs.wire import serve_wire
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
KEY = "wire-limits-key-0123456789abcdef"


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[tuple[Backends, WireOcs]]:
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    server = await serve_wire(components.charging, "127.0.0.1", 0, api_key=KEY)
    ocs = WireOcs([("127.0.0.1", server.sockets[0].getsockname()[1])], api_key=KEY)
    yield components, ocs
    await ocs.close()
    server.close()
    await server.wait_closed()
    components.close()


def data(session: str, kind: RequestType, number: int, used: int = 0) -> ChargeRequest:
    requested = None if kind is RequestType.INITIAL else 0
    return ChargeRequest(
        session, kind, number, DEMO.msisdn, (ServiceUsage(1, Service.DATA, requested, used),)
    )


def account(components: Backends) -> Any:
    found = components.store.get(DEMO.msisdn)
    assert found is not None
    return found.wallet, {b.id: b.remaining for b in found.buckets.values()}, len(components.store.outbox())


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(data("w", RequestType.UPDATE, 1, 2**63), id="2^63 octets"),
        pytest.param(data("w", RequestType.UPDATE, 1, MAX_UNITS + 1), id="units"),
        pytest.param(data("w", RequestType.UPDATE, MAX_REQUEST_NUMBER + 1), id="request number"),
        pytest.param(data("w" * (MAX_SESSION_ID + 1), RequestType.INITIAL, 0), id="session id"),
    ],
)
async def test_past_the_limits_nothing_is_charged(
    client: tuple[Backends, WireOcs], request_: ChargeRequest
) -> None:
    components, ocs = client
    assert (await ocs.charge(data("w", RequestType.INITIAL, 0))).result_code is ResultCode.SUCCESS
    before = account(components)
    assert (await ocs.charge(request_)).result_code is ResultCode.UNABLE_TO_COMPLY
    assert account(components) == before


async def test_at_the_limits_it_is_charged(client: tuple[Backends, WireOcs]) -> None:
    components, ocs = client
    sid = "w" * MAX_SESSION_ID
    assert (await ocs.charge(data(sid, RequestType.INITIAL, 0))).result_code is ResultCode.SUCCESS
    answer = await ocs.charge(data(sid, RequestType.UPDATE, MAX_REQUEST_NUMBER, MAX_UNITS))
    assert answer.result_code is ResultCode.SUCCESS
    usage = [o.event for o in components.store.outbox() if o.event.get("type") == "usage"]
    assert [(e["request_number"], e["units"]) for e in usage] == [(MAX_REQUEST_NUMBER, MAX_UNITS)]
