"""Sessions under attack, on SQLite and PostgreSQL: refresh-token families, admin rights that end
when taken away, and the "at most N" rules (login attempts, reset codes) under parallel requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mw_harness import KEY, PASSWORD, Harness, harness

from cellcelly.security import Passwords

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

A, B = "5321112233", "5339998877"
ADMIN = {"Authorization": "Bearer " + "a" * 40}
WRONG = "Yanlis-Parola1"


@pytest.fixture
async def mw(tmp_path: Path, db_url: str) -> AsyncIterator[Harness]:
    async with harness(tmp_path / "data", db_url, admin_token="a" * 40) as h:
        yield h


class CountingPasswords:
    """The real hasher, counting verifications: what a guesser actually gets tried."""

    def __init__(self, inner: Passwords) -> None:
        self.inner, self.verified = inner, 0

    async def hash(self, secret: str) -> str:
        return await self.inner.hash(secret)

    async def verify(self, stored: str | None, secret: str) -> bool:
        # None is the refusal that takes as long as a guess (no live code to judge against): a
        # guess that came after the code was spent, which a loaded machine's ordering lets happen
        if stored is not None:
            self.verified += 1
        return await self.inner.verify(stored, secret)


def cause(response) -> str:  # type: ignore[no-untyped-def]
    assert response.headers["content-type"] == "application/problem+json", response.text
    return str(response.json()["cause"])


async def refresh(mw: Harness, token: str):  # type: ignore[no-untyped-def]
    return await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": token})


# --- refresh-token families ---------------------------------------------------------------------


async def test_a_replayed_refresh_token_revokes_its_whole_family(mw: Harness):
    await mw.register(A)
    r1 = (await mw.login(A)).json()["refreshToken"]
    elsewhere = (await mw.login(A)).json()["refreshToken"]  # another login: another family
    rotated = await refresh(mw, r1)
    assert rotated.status_code == 200
    r2 = rotated.json()["refreshToken"]
    replay = await refresh(mw, r1)  # r1 was stolen: the thief (or the owner) presents it again
    assert replay.status_code == 401 and cause(replay) == "TOKEN_INVALID"
    after = await refresh(mw, r2)  # so nobody keeps the session r1 began
    assert after.status_code == 401 and cause(after) == "TOKEN_INVALID"
    ok = await refresh(mw, elsewhere)
    assert ok.status_code == 200  # the other login's session lives on
    # and its own rotation goes on as before
    assert (await refresh(mw, ok.json()["refreshToken"])).status_code == 200


async def test_a_family_survives_many_rotations_and_dies_from_any_old_member(mw: Harness):
    await mw.register(A)
    tokens = [(await mw.login(A, rememberMe=True)).json()["refreshToken"]]
    for _ in range(4):
        rotated = await refresh(mw, tokens[-1])
        assert rotated.status_code == 200 and rotated.json()["refreshExpiresIn"] == 30 * 86400
        tokens.append(rotated.json()["refreshToken"])
    assert (await refresh(mw, tokens[1])).status_code == 401
    assert (await refresh(mw, tokens[-1])).status_code == 401


# --- admin rights end when taken away ------------------------------------------------------------


async def _admin_session(mw: Harness, msisdn: str = A) -> dict[str, str]:
    await mw.register(msisdn)
    made = await mw.client.put(
        f"/api/v1/admin/subscribers/{msisdn}/role", headers=ADMIN, json={"role": "admin"}
    )
    assert made.status_code == 200
    return await mw.token(msisdn)


async def test_a_demoted_admins_token_loses_admin_rights_at_once(mw: Harness):
    auth = await _admin_session(mw)
    assert (await mw.client.get("/api/v1/admin/subscribers", headers=auth)).status_code == 200
    demoted = await mw.client.put(
        f"/api/v1/admin/subscribers/{A}/role", headers=ADMIN, json={"role": "subscriber"}
    )
    assert demoted.status_code == 200
    mw.clock.advance(1)  # well inside the token's 15 minutes
    listed = await mw.client.get("/api/v1/admin/subscribers", headers=auth)
    assert listed.status_code == 401 and cause(listed) == "TOKEN_INVALID"
    vouchers = await mw.client.post("/api/v1/admin/vouchers", headers=auth, json={"amount": "100"})
    assert vouchers.status_code == 401
    # a fresh token says what they are now
    again = await mw.token(A)
    refused = await mw.client.get("/api/v1/admin/subscribers", headers=again)
    assert refused.status_code == 403 and cause(refused) == "FORBIDDEN"
    # their own data still reads with the old token (subscriber routes check no version)
    assert (await mw.client.get("/api/v1/me", headers=auth)).status_code == 200


async def test_a_new_password_ends_admin_tokens_issued_before_it(mw: Harness):
    auth = await _admin_session(mw)
    changed = await mw.client.post(
        "/api/v1/me/password",
        headers=auth,
        json={"currentPassword": PASSWORD, "newPassword": "Yeni-Parola2"},
    )
    assert changed.status_code == 204
    stale = await mw.client.get("/api/v1/admin/catalogue", headers=auth)
    assert stale.status_code == 401 and cause(stale) == "TOKEN_INVALID"
    fresh = await mw.token(A, "Yeni-Parola2")
    assert (await mw.client.get("/api/v1/admin/catalogue", headers=fresh)).status_code == 200


async def test_an_admin_token_minted_without_a_version_is_not_enough(mw: Harness):
    await _admin_session(mw)
    # signed with our key (e.g. by a build from before versions), role admin, no version claim
    import jwt

    now = int(mw.clock())
    claims = {"sub": A, "role": "admin", "iat": now, "exp": now + 900, "aud": "cellcelly-selfcare"}
    legacy = jwt.encode(claims, "t" * 40, algorithm="HS256")
    refused = await mw.client.get("/api/v1/admin/subscribers", headers={"Authorization": f"Bearer {legacy}"})
    assert refused.status_code == 401


# --- lockout: attempts are reserved before argon2 runs --------------------------------------------


async def test_parallel_wrong_guesses_get_at_most_the_limit_of_verifications(mw: Harness):
    await mw.register(A)
    counting = CountingPasswords(mw.selfcare.passwords)
    mw.selfcare.passwords = counting  # type: ignore[assignment]
    limit = mw.selfcare.policy.max_failures
    answers = await asyncio.gather(*(mw.login(A, f"{WRONG}{i}") for i in range(4 * limit)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {401, 429} and statuses.count(429) >= 3 * limit, statuses
    assert counting.verified <= limit, f"{counting.verified} passwords verified in one lock window"
    # the number is locked now, even for the right password, and no more verifications happen
    locked = await mw.login(A, PASSWORD)
    assert locked.status_code == 429 and cause(locked) == "LOCKED"
    assert counting.verified <= limit
    mw.clock.advance(mw.selfcare.policy.lock_seconds + 1)
    assert (await mw.login(A, PASSWORD)).status_code == 200


async def test_a_success_among_guesses_resets_the_count(mw: Harness):
    await mw.register(A)
    limit = mw.selfcare.policy.max_failures
    for _ in range(limit - 1):
        assert (await mw.login(A, WRONG)).status_code == 401
    assert (await mw.login(A)).status_code == 200
    credential = mw.selfcare.credentials.credential(A)
    assert credential is not None and credential.failed_logins == 0
    for _ in range(limit - 1):
        assert (await mw.login(A, WRONG)).status_code == 401
    assert (await mw.login(A, WRONG)).status_code == 429


async def test_parallel_wrong_current_passwords_are_limited_alike(mw: Harness):
    auth = await mw.signed_up(A)
    counting = CountingPasswords(mw.selfcare.passwords)
    mw.selfcare.passwords = counting  # type: ignore[assignment]
    limit = mw.selfcare.policy.max_failures
    body = {"newPassword": "Yeni-Parola2"}
    answers = await asyncio.gather(
        *(
            mw.client.post(
                "/api/v1/me/password", headers=auth, json={**body, "currentPassword": f"{WRONG}{i}"}
            )
            for i in range(3 * limit)
        )
    )
    assert {r.status_code for r in answers} <= {401, 429}
    assert counting.verified <= limit


async def test_parallel_guesses_at_an_unknown_number_are_answered_alike(mw: Harness):
    counting = CountingPasswords(mw.selfcare.passwords)
    mw.selfcare.passwords = counting  # type: ignore[assignment]
    limit = mw.selfcare.policy.max_failures
    answers = await asyncio.gather(*(mw.login(B, f"{WRONG}{i}") for i in range(4 * limit)))
    assert sorted(r.status_code for r in answers).count(401) <= limit - 1
    assert counting.verified <= limit


# --- reset codes: one a minute, a few tries, decided by the store --------------------------------


async def _settle(mw: Harness) -> None:
    while mw.selfcare._background:
        await asyncio.gather(*list(mw.selfcare._background))


async def test_parallel_forgot_requests_send_exactly_one_code(mw: Harness):
    await mw.register(A)
    answers = await asyncio.gather(
        *(mw.client.post("/api/v1/auth/forgot", json={"msisdn": A, "channel": "sms"}) for _ in range(8))
    )
    assert {r.status_code for r in answers} == {202}
    await _settle(mw)
    assert [m for m, _, _ in mw.outbox.sent] == [A]
    # and the code sent is the one stored: it resets the password
    code = mw.outbox.last_code(A)
    body = {"msisdn": A, "code": code, "securityKey": KEY, "newPassword": "Yeni-Parola2"}
    assert (await mw.client.post("/api/v1/auth/reset", json=body)).status_code == 204
    # a minute later another may be asked for (and a fresh one replaces an unused old one)
    mw.clock.advance(61)
    await asyncio.gather(*(mw.selfcare._send_reset_code(A, "sms") for _ in range(4)))
    mw.clock.advance(61)
    await asyncio.gather(*(mw.selfcare._send_reset_code(A, "sms") for _ in range(4)))
    assert len(mw.outbox.sent) == 3
    newest = mw.outbox.last_code(A)
    body = {**body, "code": newest, "newPassword": "Ucuncu-Parola3"}
    assert (await mw.client.post("/api/v1/auth/reset", json=body)).status_code == 204


async def test_parallel_reset_guesses_get_no_more_than_the_allowed_tries(mw: Harness):
    await mw.register(A)
    await mw.client.post("/api/v1/auth/forgot", json={"msisdn": A, "channel": "sms"})
    await _settle(mw)
    code = mw.outbox.last_code(A)
    counting = CountingPasswords(mw.selfcare.passwords)
    mw.selfcare.passwords = counting  # type: ignore[assignment]
    tries = mw.selfcare.policy.reset_code_attempts
    wrong = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, 4 * tries + 1)]
    answers = await asyncio.gather(
        *(
            mw.client.post(
                "/api/v1/auth/reset",
                json={"msisdn": A, "code": c, "securityKey": KEY, "newPassword": "Yeni-Parola2"},
            )
            for c in wrong
        )
    )
    assert {r.status_code for r in answers} == {400}
    assert counting.verified <= tries, f"{counting.verified} guesses judged, {tries} allowed"
    # the right code after the tries are spent is refused too
    body = {"msisdn": A, "code": code, "securityKey": KEY, "newPassword": "Yeni-Parola2"}
    assert (await mw.client.post("/api/v1/auth/reset", json=body)).status_code == 400
