"""The DGW's OCS client says once that an endpoint went out of rotation, with how many requests it failed
over, and once that it is back: an OCS killed with 300 requests in flight wrote 300 identical warnings
(seen in the stack-apart test), which buried everything else in the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from test_dgw import LateFor

from cellcelly.deploy.backends import open_backends
from cellcelly.deploy.embedded import DEMO, seed_demo
from cellcelly.dgw.ocs_client import WireOcs
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.ocs.auth import ApiKey
from cellcelly.ocs.wire import WireServerProtocol, serve_wire
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
KEY = "failover-log-key-0123456789abcdef"
IN_FLIGHT = 120


def soon(ocs: WireOcs, req: ChargeRequest) -> asyncio.Future[ChargeAnswer]:
    """`charge_soon` (the gateway's path: sent at once, answered from a callback) as a future."""
    fut: asyncio.Future[ChargeAnswer] = asyncio.get_running_loop().create_future()

    def done(answer: ChargeAnswer | None, exc: BaseException | None) -> None:
        if exc is not None:
            fut.set_exception(exc)
        else:
            assert answer is not None
            fut.set_result(answer)

    assert ocs.charge_soon(req, done)
    return fut


def initial(session: str) -> ChargeRequest:
    return ChargeRequest(
        session, RequestType.INITIAL, 0, DEMO.msisdn, (ServiceUsage(1, Service.DATA, None, 0),)
    )


@pytest.mark.parametrize("path", ["charge", "charge_soon"])
async def test_a_killed_endpoint_logs_one_line_out_and_one_back(
    data_dir: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    components = open_backends(Settings(data_dir=data_dir))
    seed_demo(components)
    loop = asyncio.get_running_loop()
    # the victim answers after a pause, so requests are in flight on it when it dies; its server-side
    # connections are kept to abort them as a killed process's kernel would (RST)
    slow = LateFor(components.charging, {}, pause=2.0)
    held: list[WireServerProtocol] = []

    def victim_protocol() -> WireServerProtocol:
        held.append(WireServerProtocol(slow, ApiKey(KEY)))  # type: ignore[arg-type]
        return held[-1]

    victim = await loop.create_server(victim_protocol, "127.0.0.1", 0)
    victim_port = victim.sockets[0].getsockname()[1]
    good = await serve_wire(components.charging, "127.0.0.1", 0, api_key=KEY)
    endpoints = [("127.0.0.1", victim_port), ("127.0.0.1", good.sockets[0].getsockname()[1])]
    ocs = WireOcs(endpoints, api_key=KEY, timeout=4.0, retry_after=0.5)
    caplog.set_level(logging.INFO, logger="cellcelly.dgw.ocs_client")
    try:
        await ocs.charge(initial("warm;0"))
        await ocs.charge(initial("warm;1"))  # round robin: both endpoints connected
        if path == "charge":
            calls = [asyncio.ensure_future(ocs.charge(initial(f"fo;{i}"))) for i in range(IN_FLIGHT)]
        else:  # the failed ones fail over from the callback
            calls = [soon(ocs, initial(f"fo;{i}")) for i in range(IN_FLIGHT)]
        await asyncio.sleep(0.2)
        on_victim = sum(len(p.pending) for p in [ocs.endpoints[0].conn] if p is not None)
        assert on_victim >= IN_FLIGHT // 3, on_victim
        victim.close()
        for protocol in held:
            assert protocol.transport is not None
            protocol.transport.abort()
        answers = await asyncio.gather(*calls)  # every one failed over and answered
        assert len(answers) == IN_FLIGHT and ocs.failovers >= on_victim
        assert {a.result_code for a in answers} == {ResultCode.SUCCESS}

        out = [r for r in caplog.records if r.getMessage() == "OCS endpoint out of rotation"]
        assert len(out) == 1, [r.__dict__.get("failed_over") for r in out]
        assert out[0].endpoint == f"127.0.0.1:{victim_port}" and out[0].failed_over == on_victim

        # back: an OCS on the same port again, tried once retry_after has passed
        victim = await serve_wire(components.charging, "127.0.0.1", victim_port, api_key=KEY)
        await asyncio.sleep(0.6)
        for i in range(4):
            await ocs.charge(initial(f"back;{i}"))
        back = [r for r in caplog.records if r.getMessage() == "OCS endpoint back in rotation"]
        assert len(back) == 1 and back[0].failed_over >= on_victim
        assert len([r for r in caplog.records if r.getMessage() == "OCS endpoint out of rotation"]) == 1
    finally:
        await ocs.close()
        for server in (victim, good):
            server.close()
            await server.wait_closed()
        components.close()
