"""Self-care through the stack `make run` starts, over real sockets: the MW on HTTP, the SMS
gateway bound to a real SMSC simulator process, charging on the OCS API, usage through the SF."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from test_sms_gateway import reply

from cellcelly.deploy.backends import open_backends
from cellcelly.deploy.embedded import EmbeddedStack
from cellcelly.settings import Settings
from cellcelly_dev.devservers import free_port
from cellcelly_testing import EPHEMERAL_PORTS
from smsc import SmscProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MSISDN, E164 = "5321112233", "905321112233"
PASSWORD = "Gizli-Parola1"
OCS_KEY = "selfcare-stack-ocs-key-0123"  # CELLCELLY_OCS_API_KEY: charging on the OCS API needs it


@dataclass
class Running:
    stack: EmbeddedStack
    smsc: SmscProcess
    mw: httpx.AsyncClient
    ocs: httpx.AsyncClient


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    smsc = SmscProcess(free_port(), "cellcelly", "Sm5c!pw")
    smsc.start()
    settings = Settings(
        data_dir=tmp_path / "data",
        **{**EPHEMERAL_PORTS, "ivr_port": -1},
        smsc_host="127.0.0.1",
        smsc_port=smsc.port,
        smsc_password="Sm5c!pw",
        mw_argon2_time_cost=1,
        mw_argon2_memory_kib=8192,
        mw_token_secret="k" * 40,
        ocs_api_key=OCS_KEY,
    )
    components = open_backends(settings)
    stack = EmbeddedStack(components)
    await stack.start()
    assert stack.sms is not None
    await stack.sms.wait_bound(10)
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.mw_port}") as mw,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{stack.ocs_port}", headers={"Authorization": f"Bearer {OCS_KEY}"}
            ) as ocs,
        ):
            yield Running(stack, smsc, mw, ocs)
    finally:
        await stack.stop()
        await components.aclose()
        smsc.stop()


async def sign_up(mw: httpx.AsyncClient) -> dict[str, str]:
    body = {
        "firstName": "Gülşen",
        "lastName": "Çağlar",
        "msisdn": MSISDN,
        "email": "gulsen@example.com",
        "password": PASSWORD,
        "securityKey": "pamuk",
        "package": "DIYARBAKIR",
    }
    assert (await mw.post("/api/v1/auth/register", json=body)).status_code == 201
    login = await mw.post("/api/v1/auth/login", json={"msisdn": MSISDN, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['accessToken']}"}


async def test_signed_up_on_the_web_then_kalan_by_sms(running: Running):
    auth = await sign_up(running.mw)
    bought = await running.mw.post("/api/v1/me/packages", headers=auth, json={"package": "ANKARA"})
    assert bought.status_code == 201 and bought.json()["wallet"]["tl"] == "50.00"
    mark = running.smsc.mark
    await running.smsc.command(
        cmd="deliver", source_addr=E164, destination_addr="5555", text="kalan", data_coding=8
    )
    said, _ = await reply(running.smsc, E164, mark)
    assert said.startswith("CellCelly kalan haklarınız:\nBakiye: 50,00 TL\nDakika: 10000 dakika\n")
    assert "Diyarbakır" in said and "Ankara" in said


async def test_forgot_password_by_sms_then_reset(running: Running):
    await sign_up(running.mw)
    mark = running.smsc.mark
    forgot = await running.mw.post("/api/v1/auth/forgot", json={"msisdn": MSISDN, "channel": "sms"})
    assert forgot.status_code == 202
    said, _ = await reply(running.smsc, E164, mark)
    code = next(w.rstrip(".") for w in said.split() if w.rstrip(".").isdigit() and len(w.rstrip(".")) == 6)
    body = {"msisdn": MSISDN, "code": code, "securityKey": "pamuk", "newPassword": "Yepyeni-Şifre9"}
    assert (await running.mw.post("/api/v1/auth/reset", json=body)).status_code == 204
    login = await running.mw.post("/api/v1/auth/login", json={"msisdn": MSISDN, "password": "Yepyeni-Şifre9"})
    assert login.status_code == 200


async def test_a_call_shows_in_balances_at_once_and_in_usage_once_synced(running: Running):
    auth = await sign_up(running.mw)
    api = "/nchf-convergedcharging/v3/chargingdata"
    start = {
        "subscriberIdentifier": f"msisdn-{MSISDN}",
        "invocationSequenceNumber": 0,
        "sessionId": "call-1",
        "multipleUnitUsage": [
            {
                "ratingGroup": 1,
                "serviceType": "voice",
                "destination": "905551112233",
                "requestedUnit": {"time": 120},
            }
        ],
    }
    assert (await running.ocs.post(api, json=start)).status_code == 201
    end = {
        "subscriberIdentifier": f"msisdn-{MSISDN}",
        "invocationSequenceNumber": 1,
        "multipleUnitUsage": [
            {"ratingGroup": 1, "serviceType": "voice", "usedUnitContainer": [{"time": 95}]}
        ],
    }
    assert (await running.ocs.post(f"{api}/call-1/release", json=end)).status_code == 200
    balance = (await running.mw.get("/api/v1/me/balance", headers=auth)).json()
    voice = next(a for a in balance["allowances"] if a["service"] == "voice")
    assert voice["used"] == 95 and voice["remaining"] == 7000 * 60 - 95
    deadline = time.monotonic() + 20
    items: list[dict[str, object]] = []
    while not items and time.monotonic() < deadline:  # the relay and the SF run in the background
        items = (await running.mw.get("/api/v1/me/usage", headers=auth)).json()["items"]
        await asyncio.sleep(0.1)
    assert [(i["service"], i["units"], i["fromPackage"], i["chargedKurus"]) for i in items] == [
        ("voice", 95, True, 0)
    ]
    assert (items[0]["destination"], items[0]["packageUnits"], items[0]["walletUnits"]) == (
        "905551112233",
        95,
        0,
    )
    # a page at a time: `next` continues after the page's last record, null once there is no more
    first = (await running.mw.get("/api/v1/me/usage?limit=1", headers=auth)).json()
    assert first["items"] == items and first["next"]
    rest = (
        await running.mw.get("/api/v1/me/usage", params={"limit": 1, "before": first["next"]}, headers=auth)
    ).json()
    assert rest == {"items": [], "next": None}
    for wrong_cursor in ("yesterday", "9" * 30 + ":1:x", "1:" + "9" * 30 + ":x", "1:1:"):
        wrong = await running.mw.get("/api/v1/me/usage", params={"before": wrong_cursor}, headers=auth)
        assert wrong.status_code == 400 and wrong.json()["cause"] == "INVALID_INPUT", wrong_cursor
    # the SF runs in the stack's process: its figures are on the OCS's /metrics
    metrics = (await running.ocs.get("/metrics")).text
    assert 'cellcelly_sf_written_total{kind="usage"} 1.0' in metrics
    assert "cellcelly_sf_lag_records" in metrics


async def test_a_low_wallet_notice_goes_out_by_sms(running: Running):
    await sign_up(running.mw)
    api = "/nchf-convergedcharging/v3/chargingdata"
    ident = {"subscriberIdentifier": f"msisdn-{MSISDN}"}
    # 37 minutes to Germany at 2.50 TL/min, paid from the wallet: 100,00 TL -> 7,50 TL (below 10 TL)
    start = {
        **ident,
        "invocationSequenceNumber": 0,
        "sessionId": "abroad",
        "multipleUnitUsage": [
            {
                "ratingGroup": 1,
                "serviceType": "voice",
                "destination": "4915112345678",
                "requestedUnit": {"time": 2400},
            }
        ],
    }
    assert (await running.ocs.post(api, json=start)).status_code == 201
    end = {
        **ident,
        "invocationSequenceNumber": 1,
        "multipleUnitUsage": [
            {"ratingGroup": 1, "serviceType": "voice", "usedUnitContainer": [{"time": 37 * 60}]}
        ],
    }
    assert (await running.ocs.post(f"{api}/abroad/release", json=end)).status_code == 200
    mark = 0  # the notice goes out through the relay, the bus and the notifier, in the background
    said, _ = await reply(running.smsc, E164, mark)
    assert said.startswith("Merhaba Gülşen, Bakiyeniz 7,50 TL'ye düştü.")
