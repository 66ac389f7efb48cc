"""The JSON charging API refuses what the system of record cannot hold (`domain/limits.py`): at
each limit the request is charged, one past it is answered 400 ProblemDetails naming the field,
and nothing is charged. Both the fast path and the FastAPI routes (the `ocs` fixture)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_ocs_api import balance, body, ocs  # noqa: F401 - the fixture is used by name

from cellcelly.deploy.backends import Backends
from cellcelly.domain.limits import MAX_RATING_GROUP, MAX_REQUEST_NUMBER, MAX_SESSION_ID, MAX_UNITS
from cellcelly.ocs.app import API

pytestmark = pytest.mark.integration

Client = tuple[httpx.AsyncClient, Backends]
REPORT_ONLY = {"totalVolume": 0}  # no new quota: the wallet pays only for what was used


def data(*containers: dict[str, int], rg: int = 1, requested: dict[str, int] | None = None) -> dict[str, Any]:
    unit: dict[str, Any] = {"ratingGroup": rg, "serviceType": "data", "usedUnitContainer": list(containers)}
    if requested is not None:
        unit["requestedUnit"] = requested
    return unit


def refused(r: httpx.Response, param: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 400 and problem["cause"] == "INVALID_MSG_FORMAT"
    assert any(p["param"].startswith(param) for p in problem["invalidParams"]), problem


async def create(client: httpx.AsyncClient, session: str, seq: int = 0) -> httpx.Response:
    return await client.post(f"{API}/chargingdata", json=body(seq, data(requested={}), session=session))


async def update(client: httpx.AsyncClient, session: str, seq: int, *units: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{API}/chargingdata/{session}/update", json=body(seq, *units, session=session))


async def test_the_reported_two_to_the_63_octets_is_refused(ocs: Client) -> None:  # noqa: F811
    client, _ = ocs
    assert (await create(client, "j-issue")).status_code == 201
    before = await balance(client)
    refused(await update(client, "j-issue", 1, data({"totalVolume": 2**63})), "multipleUnitUsage")
    assert await balance(client) == before


@pytest.mark.parametrize(
    "units",
    [
        pytest.param(data({"totalVolume": MAX_UNITS + 1}), id="total"),
        pytest.param(data({"uplinkVolume": MAX_UNITS, "downlinkVolume": 1}), id="up+down"),
        pytest.param(data({"totalVolume": MAX_UNITS}, {"totalVolume": 1}), id="two containers"),
        pytest.param(data(requested={"totalVolume": MAX_UNITS + 1}), id="requested"),
    ],
)
async def test_units_one_past_the_limit_are_refused(ocs: Client, units: dict[str, Any]) -> None:  # noqa: F811
    client, _ = ocs
    assert (await create(client, "j-units")).status_code == 201
    before = await balance(client)
    refused(await update(client, "j-units", 1, units), "multipleUnitUsage")
    assert await balance(client) == before


async def test_at_the_limits_a_request_is_charged(ocs: Client) -> None:  # noqa: F811
    client, components = ocs
    sid = "j" * MAX_SESSION_ID
    assert (await create(client, sid)).status_code == 201
    r = await update(
        client,
        sid,
        1,
        data({"uplinkVolume": MAX_UNITS // 2, "downlinkVolume": MAX_UNITS // 2}, requested=REPORT_ONLY),
    )
    assert r.status_code == 200, r.text
    r = await update(
        client,
        sid,
        MAX_REQUEST_NUMBER,
        data({"totalVolume": MAX_UNITS // 2}, {"totalVolume": MAX_UNITS // 2}, requested=REPORT_ONLY),
    )
    assert r.status_code == 200, r.text
    events = [o.event for o in components.store.outbox(1000) if o.event.get("session_id") == sid]
    assert {(e["request_number"], e["units"]) for e in events} == {
        (1, MAX_UNITS),
        (MAX_REQUEST_NUMBER, MAX_UNITS),
    }


async def test_a_session_id_one_past_the_limit_is_refused(ocs: Client) -> None:  # noqa: F811
    client, _ = ocs
    long = "j" * (MAX_SESSION_ID + 1)
    refused(await create(client, long), "sessionId")
    # an update names its session in the path, which the body's schema does not see
    unnamed = {k: v for k, v in body(1, data({"totalVolume": 1})).items() if k != "sessionId"}
    refused(await client.post(f"{API}/chargingdata/{long}/update", json=unnamed), "chargingDataRef")


async def test_request_numbers_and_rating_groups_one_past_the_limit_are_refused(ocs: Client) -> None:  # noqa: F811
    client, _ = ocs
    refused(await create(client, "j-seq", MAX_REQUEST_NUMBER + 1), "invocationSequenceNumber")
    r = await client.post(f"{API}/chargingdata", json=body(0, data(rg=MAX_RATING_GROUP + 1), session="j-rg"))
    refused(r, "multipleUnitUsage")
    r = await client.post(f"{API}/chargingdata", json=body(0, data(rg=MAX_RATING_GROUP), session="j-rg"))
    assert r.status_code == 201, r.text
