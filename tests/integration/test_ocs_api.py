"""The OCS HTTP API: Nchf-style charging, bad input, admin catalogue changes, health and metrics.

Most tests go through the ASGI app in process (httpx); `test_real_server` starts uvicorn on
127.0.0.1 and talks to it over TCP.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.deploy.embedded import DEMO, seed_demo
from cellcelly.deploy.ocs import ocs_app
from cellcelly.domain.limits import MAX_SESSION_ID
from cellcelly.ocs.app import API
from cellcelly.settings import DEFAULT_CATALOGUE, Settings
from cellcelly_dev.devservers import free_port

pytestmark = pytest.mark.integration
TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
KEY = "test-ocs-api-key-0123456789"  # CELLCELLY_OCS_API_KEY: what lets a caller charge
CHARGER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(params=["fast-path", "fastapi-routes"])
async def ocs(
    data_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, Backends]]:
    """The app as it runs (fast path in front), and the FastAPI routes alone: both must agree."""
    settings = Settings(data_dir=data_dir, admin_token=TOKEN, ocs_api_key=KEY)
    components = open_backends(settings)
    seed_demo(components)
    app = ocs_app(settings, components, fast_path=request.param == "fast-path")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ocs", headers=CHARGER) as client:
        yield client, components
    components.close()


def voice(
    rg: int = 1, requested: int | None = 60, used: int | None = None, dest: str = "905551112233"
) -> dict[str, Any]:
    unit: dict[str, Any] = {"ratingGroup": rg, "destination": dest, "serviceType": "voice"}
    if requested is not None:
        unit["requestedUnit"] = {"time": requested}
    if used is not None:
        unit["usedUnitContainer"] = [{"time": used}]
    return unit


def body(seq: int, *units: dict[str, Any], session: str = "s-1", **extra: Any) -> dict[str, Any]:
    return {
        "subscriberIdentifier": f"msisdn-{DEMO.msisdn}",
        "invocationSequenceNumber": seq,
        "sessionId": session,
        "multipleUnitUsage": list(units),
        **extra,
    }


async def balance(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get(f"/admin/subscribers/{DEMO.msisdn}/balance", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def bucket(view: dict[str, Any], service: str) -> dict[str, Any]:
    return next(b for b in view["buckets"] if b["service"] == service)


async def test_session_create_update_release_moves_the_balance(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, _ = ocs
    before = bucket(await balance(client), "voice")["remaining"]
    r = await client.post(f"{API}/chargingdata", json=body(0, voice(requested=120)))
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/chargingdata/s-1")
    info = r.json()["multipleUnitInformation"][0]
    assert info["resultCode"] == "SUCCESS" and info["grantedUnit"] == {"time": 120}
    assert info["validityTime"] > 0
    assert bucket(await balance(client), "voice")["available"] == before - 120

    r = await client.post(f"{API}/chargingdata/s-1/update", json=body(1, voice(requested=60, used=100)))
    assert r.status_code == 200 and r.json()["invocationResult"]["diameterResultCode"] == 2001
    r = await client.post(f"{API}/chargingdata/s-1/release", json=body(2, voice(requested=None, used=30)))
    assert r.status_code == 200, r.text
    view = await balance(client)
    assert bucket(view, "voice")["remaining"] == before - 130
    assert bucket(view, "voice")["available"] == before - 130  # nothing held after release
    assert view["walletKurus"] == 10_000


async def test_retransmitted_create_gets_the_same_answer_and_changes_nothing(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, _ = ocs
    first = await client.post(f"{API}/chargingdata", json=body(0, voice(requested=300), session="rt"))
    view = await balance(client)
    again = await client.post(f"{API}/chargingdata", json=body(0, voice(requested=300), session="rt"))
    assert again.status_code == first.status_code
    assert again.json()["multipleUnitInformation"] == first.json()["multipleUnitInformation"]
    assert await balance(client) == view


async def test_sms_event_abroad_is_paid_from_the_wallet(ocs: tuple[httpx.AsyncClient, Backends]) -> None:
    client, _ = ocs
    sms = {
        "ratingGroup": 2,
        "serviceType": "sms",
        "destination": "4915112345678",
        "requestedUnit": {"serviceSpecificUnits": 1},
    }
    r = await client.post(
        f"{API}/chargingdata", json=body(0, sms, session="e-1", oneTimeEvent=True, oneTimeEventType="IEC")
    )
    assert r.status_code == 200, r.text
    assert r.json()["multipleUnitInformation"][0]["grantedUnit"] == {"serviceSpecificUnits": 1}
    assert (await balance(client))["walletKurus"] == 10_000 - 400  # sms-tr-out 4 TL


async def test_unknown_subscriber_session_and_rating(ocs: tuple[httpx.AsyncClient, Backends]) -> None:
    client, _ = ocs
    unknown = {**body(0, voice()), "subscriberIdentifier": "msisdn-5000000001"}
    r = await client.post(f"{API}/chargingdata", json=unknown)
    assert r.status_code == 404 and r.json()["invocationResult"]["diameterResultCode"] == 5030
    r = await client.post(f"{API}/chargingdata/nope/update", json=body(1, voice(), session="nope"))
    assert r.status_code == 404 and r.json()["invocationResult"]["diameterResultCode"] == 5002
    r = await client.post(f"{API}/chargingdata", json=body(0, voice(), session="fr", location="33"))
    assert r.status_code == 403 and r.json()["invocationResult"]["diameterResultCode"] == 5031


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"{not json", 400),
        (b'{"invocationSequenceNumber": 0}', 400),  # no subscriber
        (b'{"subscriberIdentifier": "msisdn-1234", "invocationSequenceNumber": 0}', 400),  # bad MSISDN
        (b'{"subscriberIdentifier": "msisdn-5321234567", "invocationSequenceNumber": -1}', 400),
        (b'{"subscriberIdentifier": "msisdn-5321234567", "invocationSequenceNumber": 0, "bogus": 1}', 400),
        (
            b'{"subscriberIdentifier": "msisdn-5321234567", "invocationSequenceNumber": 0,'
            b' "multipleUnitUsage": [{"ratingGroup": 1, "requestedUnit": {"time": -5}}]}',
            400,
        ),
        (
            b'{"subscriberIdentifier": "msisdn-5321234567", "invocationSequenceNumber": 0,'
            b' "multipleUnitUsage": [{"ratingGroup": 1}]}',
            400,
        ),  # no service, no units
        (b"[]", 400),
        (b"x" * (70 * 1024), 413),
    ],
)
async def test_bad_requests_get_clear_4xx_and_change_nothing(
    ocs: tuple[httpx.AsyncClient, Backends], payload: bytes, status: int
) -> None:
    client, components = ocs
    view = await balance(client)
    pending = len(components.store.outbox(limit=10**6))
    r = await client.post(
        f"{API}/chargingdata", content=payload, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status and r.json()["title"]
    assert await balance(client) == view
    assert len(components.store.outbox(limit=10**6)) == pending
    # and the service keeps serving
    assert (await client.get("/healthz")).status_code == 200


async def test_admin_needs_the_token(ocs: tuple[httpx.AsyncClient, Backends]) -> None:
    client, _ = ocs
    assert (await client.get("/admin/catalogue")).status_code == 401
    assert (
        await client.get("/admin/catalogue", headers={"Authorization": "Bearer wrong"})
    ).status_code == 401
    assert (await client.get("/admin/catalogue", headers=ADMIN)).status_code == 200


async def test_bad_catalogue_is_refused_and_the_old_one_stays(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, components = ocs
    old = components.catalogue.current.version
    bad = "version: '2099.1'\ntariffs:\n  - {id: x, service: teleport, price: '1.234'}\n"
    r = await client.put("/admin/catalogue", content=bad, headers=ADMIN)
    assert r.status_code == 422
    assert any("teleport" in p for p in r.json()["problems"])
    assert components.catalogue.current.version == old
    r = await client.post(f"{API}/chargingdata", json=body(0, voice(), session="after-bad"))
    assert r.status_code == 201  # still charging on the old catalogue


async def test_catalogue_change_at_run_time_applies_to_new_sessions(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, components = ocs
    text = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    new = text.replace('version: "2026-12-02.1"', 'version: "2026-12-02.2"').replace(
        'price: "4.00", per: 1 msg', 'price: "5.00", per: 1 msg'
    )
    r = await client.put("/admin/catalogue", content=new, headers=ADMIN)
    assert r.status_code == 200 and r.json()["version"] == "2026-12-02.2"
    sms = {"ratingGroup": 2, "serviceType": "sms", "destination": "4915112345678"}
    r = await client.post(f"{API}/chargingdata", json=body(0, sms, session="e-2", oneTimeEvent=True))
    assert r.status_code == 200
    assert (await balance(client))["walletKurus"] == 10_000 - 500
    # the file is the source of truth: it now holds the new version, and the record knows it
    assert "2026-12-02.2" in components.settings.catalogue_path().read_text(encoding="utf-8")
    latest = components.records.latest_catalogue()
    assert latest is not None and latest.version == "2026-12-02.2"


async def test_health_readiness_and_metrics(ocs: tuple[httpx.AsyncClient, Backends]) -> None:
    client, _ = ocs
    await client.post(f"{API}/chargingdata", json=body(0, voice(), session="m-1"))
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json()["status"] == "ready"
    text = (await client.get("/metrics")).text
    assert 'cellcelly_charging_requests_total{result="2001",type="INITIAL"} 1.0' in text
    assert "cellcelly_outbox_pending" in text


async def test_admin_subscriber_top_up_package_and_suspension(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, _ = ocs
    new = {
        "msisdn": "5339998877",
        "firstName": "Çağrı",
        "lastName": "Işıkgöz",
        "email": "cagri@example.com",
        "package": "BURSA",
    }
    r = await client.post("/admin/subscribers", json=new, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert (await client.post("/admin/subscribers", json=new, headers=ADMIN)).status_code == 409
    r = await client.post(
        "/admin/subscribers/5339998877/topup", json={"amount": "25.50", "reference": "v1"}, headers=ADMIN
    )
    assert r.json()["walletKurus"] == 12_550
    r = await client.post(
        "/admin/subscribers/5339998877/packages", json={"package": "RIZE", "reference": "p1"}, headers=ADMIN
    )
    assert r.json()["walletKurus"] == 12_550 - 9_500
    r = await client.post(
        "/admin/subscribers/5339998877/packages", json={"package": "RIZE", "reference": "p2"}, headers=ADMIN
    )
    assert r.status_code == 402
    r = await client.put("/admin/subscribers/5339998877/status", json={"status": "suspended"}, headers=ADMIN)
    assert r.json()["status"] == "suspended"
    start = {**body(0, voice(), session="susp"), "subscriberIdentifier": "905339998877"}
    r = await client.post(f"{API}/chargingdata", json=start)
    assert r.status_code == 403 and r.json()["invocationResult"]["diameterResultCode"] == 4010


async def charged_nothing(
    client: httpx.AsyncClient, components: Backends, view: dict[str, Any], pending: int
) -> None:
    assert await balance(client) == view
    assert len(components.store.outbox(limit=10**6)) == pending


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no key
        {"Authorization": "Bearer wrong-key-0123456789abc"},
        {"Authorization": f"Bearer {KEY}x"},  # the key and more
        {"Authorization": f"Bearer {KEY[:-1]}"},  # the key but its last character
        {"Authorization": f"Basic {KEY}"},  # the key under another scheme
        {"Authorization": f"Bearer {TOKEN}"},  # the admin token does not charge
        {"X-CellCelly-Key": KEY},  # not where the key goes
    ],
    ids=["none", "wrong", "longer", "shorter", "basic", "admin-token", "other-header"],
)
async def test_charging_without_the_key_is_401_and_charges_nothing(
    ocs: tuple[httpx.AsyncClient, Backends], headers: dict[str, str]
) -> None:
    client, components = ocs
    ok = await client.post(f"{API}/chargingdata", json=body(0, voice(requested=60), session="open"))
    assert ok.status_code == 201, ok.text
    view, pending = await balance(client), len(components.store.outbox(limit=10**6))
    sms = {"ratingGroup": 2, "serviceType": "sms", "destination": "4915112345678"}
    attempts = [
        (f"{API}/chargingdata", body(0, voice(requested=600), session="x-1")),
        (f"{API}/chargingdata", body(0, sms, session="x-2", oneTimeEvent=True)),
        (f"{API}/chargingdata/open/update", body(1, voice(requested=60, used=60), session="open")),
        (f"{API}/chargingdata/open/release", body(1, voice(requested=None, used=60), session="open")),
        (f"{API}/noop", body(0, voice(), session="x-3")),
    ]
    del client.headers["authorization"]  # this caller has only what the case gives it
    try:
        responses = [await client.post(path, json=payload, headers=headers) for path, payload in attempts]
    finally:
        client.headers.update(CHARGER)
    for (path, _), r in zip(attempts, responses, strict=True):
        assert r.status_code == 401, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["www-authenticate"].startswith("Bearer")
        problem = r.json()
        assert problem["status"] == 401 and problem["cause"] == "UNAUTHORIZED"
        assert KEY not in r.text
    await charged_nothing(client, components, view, pending)
    # the session opened with the key is untouched and still ends with it
    r = await client.post(
        f"{API}/chargingdata/open/release", json=body(1, voice(requested=None, used=60), session="open")
    )
    assert r.status_code == 200 and r.json()["invocationResult"]["diameterResultCode"] == 2001


async def test_an_ocs_without_a_key_charges_nobody(data_dir: Path) -> None:
    components = open_backends(Settings(data_dir=data_dir, admin_token=TOKEN))
    seed_demo(components)
    try:
        for app in (ocs_app(components.settings, components, fast_path=fast) for fast in (True, False)):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ocs"
            ) as client:
                before = await balance(client)
                for headers in ({}, CHARGER, {"Authorization": "Bearer "}):
                    r = await client.post(
                        f"{API}/chargingdata", json=body(0, voice(), session="k"), headers=headers
                    )
                    assert r.status_code == 503, r.text
                    assert "CELLCELLY_OCS_API_KEY" in r.json()["detail"]
                assert await balance(client) == before
    finally:
        components.close()


async def test_a_create_without_session_id_or_idempotency_key_is_refused(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    """Today's bug: the same request without sessionId got a made-up id each time, so a retry was
    debited again."""
    client, components = ocs
    view, pending = await balance(client), len(components.store.outbox(limit=10**6))
    sms = {"ratingGroup": 2, "serviceType": "sms", "destination": "4915112345678"}
    unnamed = [
        {k: v for k, v in body(0, sms, oneTimeEvent=True).items() if k != "sessionId"},
        {k: v for k, v in body(0, voice(requested=60)).items() if k != "sessionId"},
    ]
    for payload in unnamed:
        for _ in range(2):
            r = await client.post(f"{API}/chargingdata", json=payload)
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["cause"] == "MANDATORY_IE_MISSING"
            assert "Idempotency-Key" in r.json()["detail"]
    for bad in ("", "a b", "é".encode("latin-1"), "x" * (MAX_SESSION_ID + 1)):
        r = await client.post(f"{API}/chargingdata", json=unnamed[0], headers={"Idempotency-Key": bad})
        assert r.status_code == 400, (bad, r.text)
    await charged_nothing(client, components, view, pending)


async def test_a_repeated_idempotency_key_gets_the_stored_answer_and_is_charged_once(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, components = ocs
    sms = {"ratingGroup": 2, "serviceType": "sms", "destination": "4915112345678"}
    event = {
        k: v for k, v in body(0, sms, oneTimeEvent=True, oneTimeEventType="IEC").items() if k != "sessionId"
    }
    first = await client.post(f"{API}/chargingdata", json=event, headers={"Idempotency-Key": "evt-0001"})
    assert first.status_code == 200, first.text
    assert first.json()["chargingDataRef"] == "evt-0001"
    after_first = await balance(client)
    assert after_first["walletKurus"] == 10_000 - 400
    pending = len(components.store.outbox(limit=10**6))
    for _ in range(3):  # the client's retries
        again = await client.post(f"{API}/chargingdata", json=event, headers={"Idempotency-Key": "evt-0001"})
        assert again.status_code == first.status_code
        assert again.json()["multipleUnitInformation"] == first.json()["multipleUnitInformation"]
        assert again.json()["invocationResult"] == first.json()["invocationResult"]
    assert await balance(client) == after_first
    assert len(components.store.outbox(limit=10**6)) == pending  # no second usage event either
    # another key is another event; sessionId, when given, names the create instead of the key
    other = await client.post(f"{API}/chargingdata", json=event, headers={"Idempotency-Key": "evt-0002"})
    assert other.status_code == 200
    assert (await balance(client))["walletKurus"] == 10_000 - 800
    named = {**event, "sessionId": "evt-0002"}
    r = await client.post(f"{API}/chargingdata", json=named, headers={"Idempotency-Key": "evt-0003"})
    assert r.json()["chargingDataRef"] == "evt-0002"
    assert (await balance(client))["walletKurus"] == 10_000 - 800
    longest = "k" * MAX_SESSION_ID  # as long as a sessionId may be: charged
    r = await client.post(f"{API}/chargingdata", json=event, headers={"Idempotency-Key": longest})
    assert r.status_code == 200 and r.json()["chargingDataRef"] == longest
    assert (await balance(client))["walletKurus"] == 10_000 - 1200


@pytest.mark.timeout(60)
def test_real_server_over_tcp(tmp_path: Path) -> None:
    """`cellcelly run` as a newcomer starts it: a real process on 127.0.0.1, the demo subscriber in."""
    port = free_port()
    env = {
        "CELLCELLY_DATA_DIR": str(tmp_path),
        "CELLCELLY_OCS_PORT": str(port),
        "CELLCELLY_DGW_PORT": "0",
        "CELLCELLY_OCS_WIRE_PORT": "0",
        "CELLCELLY_MW_PORT": "0",
        "CELLCELLY_IVR_PORT": "0",
        "CELLCELLY_ADMIN_TOKEN": TOKEN,
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellcelly.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline and proc.poll() is None, "the OCS did not come up"
            time.sleep(0.2)
        key_file = tmp_path / "ocs-api-key"  # made by `cellcelly run`, owner-only
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        r = httpx.post(f"{base}{API}/chargingdata", json=body(0, voice(), session="tcp"))
        assert r.status_code == 401, r.text
        # as the README's curl does: -H "Authorization: Bearer $(cat data/ocs-api-key)"
        r = httpx.post(
            f"{base}{API}/chargingdata",
            json=body(0, voice(), session="tcp"),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
        r = httpx.get(f"{base}/admin/subscribers/{DEMO.msisdn}/balance", headers=ADMIN)
        assert r.json()["walletKurus"] == 10_000
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"demo subscriber   {DEMO.msisdn}" in out
    assert f"OCS API key       {key_file}" in out
    assert key not in out  # where it is, never the key itself
    assert f"http://127.0.0.1:{port}" in out


async def test_the_openapi_document_says_charging_needs_the_key(
    ocs: tuple[httpx.AsyncClient, Backends],
) -> None:
    client, _ = ocs
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["ocsApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "CELLCELLY_OCS_API_KEY (`make run` keeps it in data/ocs-api-key)",
    }
    create = doc["paths"][f"{API}/chargingdata"]["post"]
    assert create["security"] == [{"ocsApiKey": []}]
    assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]
    for op in ("update", "release"):
        assert doc["paths"][f"{API}/chargingdata/{{ref}}/{op}"]["post"]["security"] == [{"ocsApiKey": []}]
    assert "security" not in doc["paths"]["/admin/catalogue"]["get"]  # admin keeps its own token
