"""Secrets never reach a log, and the stored hashes are argon2id with the configured cost."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mw_harness import KEY, PASSWORD, harness

from cellcelly.logs import JsonFormatter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

A = "5321112233"


async def test_no_password_code_or_token_appears_in_any_log(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, KEY]
    async with harness(tmp_path / "data", admin_token="a" * 40) as mw:
        assert (await mw.register(A)).status_code == 201
        for _ in range(6):  # failures up to a lock, all logged
            await mw.login(A, "Yanlis-Parola1")
        secrets.append("Yanlis-Parola1")
        mw.clock.advance(901)
        session = (await mw.login(A, rememberMe=True)).json()
        secrets += [session["accessToken"], session["refreshToken"]]
        auth = {"Authorization": f"Bearer {session['accessToken']}"}
        await mw.client.post("/api/v1/auth/forgot", json={"msisdn": A, "channel": "email"})
        for task in list(mw.selfcare._background):
            await task
        code = mw.outbox.last_code(A)
        secrets.append(code)
        await mw.client.post(
            "/api/v1/auth/reset",
            json={"msisdn": A, "code": "000000", "securityKey": KEY, "newPassword": "Yeni-Parola2"},
        )
        reset = await mw.client.post(
            "/api/v1/auth/reset",
            json={"msisdn": A, "code": code, "securityKey": KEY, "newPassword": "Yeni-Parola2"},
        )
        assert reset.status_code == 204
        secrets.append("Yeni-Parola2")
        auth = await mw.token(A, "Yeni-Parola2")
        changed = await mw.client.post(
            "/api/v1/me/password",
            headers=auth,
            json={"currentPassword": "Yeni-Parola2", "newPassword": "Son-Parola3"},
        )
        assert changed.status_code == 204
        secrets.append("Son-Parola3")
        made = await mw.client.post(
            "/api/v1/admin/vouchers", headers={"Authorization": "Bearer " + "a" * 40}, json={"amount": "10"}
        )
        voucher = made.json()["items"][0]["code"]
        secrets.append(voucher)
        assert (
            await mw.client.post("/api/v1/me/topup", headers=auth, json={"voucher": voucher})
        ).status_code == 200
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any("password reset" in line for line in lines)  # the flows did log
    assert any("login locked" in line for line in lines)
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"a secret in the log: {line}"


async def test_hashes_are_argon2id_with_the_configured_cost(tmp_path: Path):
    async with harness(tmp_path / "data", mw_argon2_time_cost=2, mw_argon2_memory_kib=19456) as mw:
        await mw.register(A)
        credential = mw.selfcare.credentials.credential(A)
        assert credential is not None
        assert credential.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert credential.security_key_hash.startswith("$argon2id$")
        # salted: the same password twice gives two hashes
        assert await mw.selfcare.passwords.hash(PASSWORD) != await mw.selfcare.passwords.hash(PASSWORD)


def _problem(response, status: int, cause: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    assert body["status"] == status and body["cause"] == cause and body["title"], body
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_chunked_body_over_the_limit_gets_413_problem_details(tmp_path: Path):
    async def chunks():  # no Content-Length: the size is only known while reading
        for _ in range(40):
            yield b" " * 1024

    async with harness(tmp_path / "data", admin_token="a" * 40) as mw:
        for path in ("/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/refresh"):
            response = await mw.client.post(
                path, content=chunks(), headers={"content-type": "application/json"}
            )
            assert "content-length" not in response.request.headers
            _problem(response, 413, "PAYLOAD_TOO_LARGE")
        # a route that reads the raw body (the admin catalogue) too
        response = await mw.client.put(
            "/api/v1/admin/catalogue", content=chunks(), headers={"authorization": "Bearer " + "a" * 40}
        )
        _problem(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("depth", [1000, 5000])
async def test_json_nested_deep_gets_400_problem_details(tmp_path: Path, depth: int):
    async with harness(tmp_path / "data") as mw:
        for body in (b"[" * depth + b"]" * depth, b'{"msisdn":' * depth + b"1" + b"}" * depth):
            response = await mw.client.post(
                "/api/v1/auth/login", content=body[:16_000], headers={"content-type": "application/json"}
            )
            _problem(response, 400, "INVALID_INPUT")


async def test_every_error_path_answers_problem_details(tmp_path: Path):
    """The MW's own errors and the ones FastAPI/Starlette make themselves: never a bare {"detail"}."""
    json_type = {"content-type": "application/json"}
    async with harness(tmp_path / "data", admin_token="a" * 40) as mw:
        cases = [
            (
                await mw.client.post("/api/v1/auth/login", content=b"{", headers=json_type),
                400,
                "INVALID_INPUT",
            ),
            (
                await mw.client.post("/api/v1/auth/login", content=b"\xff\xfe", headers=json_type),
                400,
                "INVALID_INPUT",
            ),
            (
                await mw.client.post("/api/v1/auth/login", content=b'"x"', headers=json_type),
                400,
                "INVALID_INPUT",
            ),
            (await mw.client.post("/api/v1/auth/login", json={"msisdn": A}), 400, "INVALID_INPUT"),
            (await mw.client.post("/api/v1/auth/login", content=b"x" * 20_000), 413, "PAYLOAD_TOO_LARGE"),
            (
                await mw.client.post("/api/v1/auth/login", content=b"{}", headers={"content-length": "x"}),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (await mw.client.get("/api/v1/me"), 401, "TOKEN_INVALID"),
            (
                await mw.client.get("/api/v1/me/usage?limit=0", headers={"authorization": "Bearer x"}),
                401,
                "TOKEN_INVALID",
            ),
            (await mw.client.get("/api/v1/admin/subscribers"), 401, "TOKEN_INVALID"),
            (
                await mw.client.get(
                    "/api/v1/admin/subscribers?limit=-1", headers={"authorization": "Bearer " + "a" * 40}
                ),
                400,
                "INVALID_INPUT",
            ),
            (await mw.client.get("/api/v1/nothing"), 404, "NOT_FOUND"),
            (await mw.client.get("/nothing-either"), 404, "NOT_FOUND"),
            (await mw.client.patch("/api/v1/auth/login", json={}), 405, "METHOD_NOT_ALLOWED"),
            (
                await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": "nope"}),
                401,
                "TOKEN_INVALID",
            ),
        ]
        for response, status, cause in cases:
            _problem(response, status, cause)


async def test_a_crash_in_a_route_is_a_500_problem_without_internals(tmp_path: Path):
    async with harness(tmp_path / "data") as mw:

        async def broken(msisdn: str) -> None:
            raise RuntimeError("secret internals")

        mw.selfcare.profile = broken  # type: ignore[method-assign,assignment]
        auth = await mw.signed_up(A)
        response = await mw.client.get("/api/v1/me", headers=auth)
        _problem(response, 500, "SYSTEM_FAILURE")
        assert "secret internals" not in response.text
