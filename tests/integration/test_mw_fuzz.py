"""The self-care API fuzzed from its own OpenAPI document (schemathesis), and subscriber isolation
as a property (hypothesis): no input gets a 5xx, and no token reads another subscriber's data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mw_harness import PASSWORD, Outbox

from cellcelly.deploy import mw as mw_deploy
from cellcelly.deploy.backends import open_backends
from cellcelly.mw.app import create_app
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ADMIN = "z" * 40
PEOPLE = {
    "5321110001": ("Çağla", "Şen"),
    "5321110002": ("İlkay", "Güç"),
    "5321110003": ("Ömer", "Işık"),
}


class Api:
    """A migrated MW app on SQLite with three subscribers and tokens for each (and an admin)."""

    def __init__(self, root: Path) -> None:
        self.components = open_backends(
            Settings(
                data_dir=root / "data",
                mw_argon2_time_cost=1,
                mw_argon2_memory_kib=8192,
                mw_token_secret="s" * 40,
            )
        )
        self.selfcare = mw_deploy.selfcare(
            self.components.settings,
            self.components.accounts,
            self.components.credentials,
            email=self.components.email,
        )
        self.selfcare.send_code = Outbox()
        self.app = create_app(self.selfcare, admin_token=ADMIN, webui=None)
        self.tokens: dict[str, str] = {}
        asyncio.run(self._sign_up())

    async def _sign_up(self) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://mw") as c:
            for msisdn, (first, last) in PEOPLE.items():
                body = {
                    "firstName": first,
                    "lastName": last,
                    "msisdn": msisdn,
                    "email": f"{msisdn}@example.com",
                    "password": PASSWORD,
                    "securityKey": "anahtar",
                    "package": "ANKARA",
                }
                assert (await c.post("/api/v1/auth/register", json=body)).status_code == 201
                login = await c.post("/api/v1/auth/login", json={"msisdn": msisdn, "password": PASSWORD})
                self.tokens[msisdn] = login.json()["accessToken"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    made = Api(tmp_path_factory.mktemp("mw-fuzz"))
    yield made
    made.components.close()


def test_no_input_gets_a_server_error(api: Api) -> None:
    """Every operation of the OpenAPI document, with bodies, paths and queries generated from it
    (schemathesis' strategies driven by hypothesis), as a signed-in subscriber so the routes are
    fuzzed past their token check. (The schemathesis pytest plugin does not run on this pytest.)"""
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api.app)
    auth = {"Authorization": f"Bearer {api.tokens['5321110001']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    seen: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call(headers=auth)
            label = f"{case.method} {case.path}"
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, (
                label,
                case.body,
                case.query,
                response.status_code,
                response.text,
            )
            if response.status_code >= 400:
                kind = response.headers.get("content-type")  # schemathesis keeps a list per header
                assert (kind[0] if isinstance(kind, list) else kind) == "application/problem+json", (
                    response.text
                )

        check()
    assert len(seen) == len(operations)
    # the fuzz got past validation somewhere, not only 400s
    assert any(code < 300 for codes in seen.values() for code in codes)


@pytest.mark.parametrize("who", ["anonymous", "subscriber"])
def test_admin_routes_refuse_non_admins(api: Api, who: str) -> None:
    headers = {} if who == "anonymous" else {"Authorization": f"Bearer {api.tokens['5321110002']}"}

    async def go() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://mw") as c:
            return [
                (await c.get("/api/v1/admin/subscribers", headers=headers)).status_code,
                (
                    await c.post("/api/v1/admin/vouchers", headers=headers, json={"amount": "10.00"})
                ).status_code,
                (
                    await c.put(
                        "/api/v1/admin/subscribers/5321110001/status",
                        headers=headers,
                        json={"status": "suspended"},
                    )
                ).status_code,
                (await c.get("/api/v1/admin/catalogue", headers=headers)).status_code,
            ]

    expected = 401 if who == "anonymous" else 403
    assert asyncio.run(go()) == [expected] * 4
    assert api.components.store.get("5321110001").status.value == "active"  # type: ignore[union-attr]


READS = ["/api/v1/me", "/api/v1/me/balance", "/api/v1/me/usage"]


@given(
    who=st.sampled_from(sorted(PEOPLE)),
    path=st.sampled_from(READS),
    # whatever a client adds to the request, the token alone says whose data it gets
    query=st.dictionaries(
        st.sampled_from(["msisdn", "subscriber", "id", "limit"]), st.sampled_from(sorted(PEOPLE))
    ),
)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_token_reads_only_its_own_subscriber(api: Api, who: str, path: str, query: dict[str, str]) -> None:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://mw") as c:
            return await c.get(path, params=query, headers={"Authorization": f"Bearer {api.tokens[who]}"})

    response = asyncio.run(go())
    assert response.status_code in (200, 400), response.text
    text = response.text
    for other, (first, last) in PEOPLE.items():
        if other != who:
            assert other not in text and first not in text and last not in text, (who, path, text)
    if response.status_code == 200 and path != "/api/v1/me/usage":
        assert response.json()["msisdn"] == who


def test_the_fuzzed_app_is_still_consistent(api: Api) -> None:
    """After the fuzzing (which changed passwords, bought packages...), every account is whole."""
    for msisdn in PEOPLE:
        account = api.components.store.get(msisdn)
        assert account is not None and account.wallet >= 0
        assert api.components.records.get_subscriber(msisdn) is not None
    assert time.time() > 0
