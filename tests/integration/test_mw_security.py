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
