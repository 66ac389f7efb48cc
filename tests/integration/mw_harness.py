"""A self-care API over a real system of record and embedded balance store, for the MW tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cellcelly.application.selfcare import SelfCare
from cellcelly.deploy import mw as mw_deploy
from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.mw.app import create_app
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly_testing import FakeClock

PASSWORD = "Gizli-Parola1"
KEY = "kedim Tekir"


@dataclass
class Outbox:
    """A code sender that keeps what it was asked to send (the SMS/e-mail tests use real servers)."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    async def __call__(self, to: SubscriberRecord, channel: str, text: str) -> None:
        self.sent.append((to.msisdn, channel, text))

    def last_code(self, msisdn: str) -> str:
        texts = [t for m, _, t in self.sent if m == msisdn]
        assert texts, f"no code sent to {msisdn}"
        return next(word.rstrip(".") for word in texts[-1].split() if word.rstrip(".").isdigit())


@dataclass
class Harness:
    components: Backends
    selfcare: SelfCare
    client: httpx.AsyncClient
    clock: FakeClock
    outbox: Outbox

    async def register(self, msisdn: str = "5321112233", **fields: Any) -> httpx.Response:
        body = {
            "firstName": "Çağrı",
            "lastName": "Öğüt",
            "msisdn": msisdn,
            "email": "cagri@example.com",
            "password": PASSWORD,
            "securityKey": KEY,
            "package": "ANKARA",
            **fields,
        }
        return await self.client.post("/api/v1/auth/register", json=body)

    async def login(self, msisdn: str = "5321112233", password: str = PASSWORD, **kw: Any) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"msisdn": msisdn, "password": password, **kw}
        )

    async def token(self, msisdn: str = "5321112233", password: str = PASSWORD) -> dict[str, str]:
        response = await self.login(msisdn, password)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['accessToken']}"}

    async def signed_up(self, msisdn: str = "5321112233", **fields: Any) -> dict[str, str]:
        response = await self.register(msisdn, **fields)
        assert response.status_code == 201, response.text
        return await self.token(msisdn)


@asynccontextmanager
async def harness(
    data_dir: Path, database_url: str = "", admin_token: str | None = None, **settings: Any
) -> AsyncIterator[Harness]:
    values = {"data_dir": data_dir, "database_url": database_url, "mw_argon2_time_cost": 1}
    values |= {"mw_argon2_memory_kib": 8192, "mw_token_secret": "t" * 40, **settings}
    components = open_backends(Settings(**values))
    clock = FakeClock(time.time())
    outbox = Outbox()
    selfcare = mw_deploy.selfcare(
        components.settings, components.accounts, components.credentials, email=components.email
    )
    # one clock, or a bucket starts "later" than a balance is read, or a token is issued in the future
    selfcare.clock = components.accounts.clock = selfcare.tokens.clock = clock
    selfcare.send_code = outbox
    app = create_app(selfcare, admin_token=admin_token, webui=None)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://mw") as client:
            yield Harness(components, selfcare, client, clock, outbox)
    finally:
        components.close()


__all__ = ["KEY", "PASSWORD", "Harness", "Outbox", "harness"]
