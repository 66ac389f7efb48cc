"""The self-care API (MW) over a real system of record: SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from mw_harness import KEY, PASSWORD, Harness, harness

from cellcelly.domain.money import parse_tl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

A, B = "5321112233", "5339998877"


@pytest.fixture
async def mw(tmp_path: Path, db_url: str) -> AsyncIterator[Harness]:
    async with harness(tmp_path / "data", db_url, admin_token="a" * 40) as h:
        yield h


def causes(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [response.json()["cause"]]


def codes(response, param: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {p["code"] for p in response.json()["invalidParams"] if p["param"] == param}


# --- sign-up -----------------------------------------------------------------------------------


async def test_register_then_login_then_profile_and_balances(mw: Harness):
    response = await mw.register(A, firstName="Çağrı Şükrü", lastName="Öğüt-İğdır")
    assert response.status_code == 201 and response.json() == {"msisdn": A}
    auth = await mw.token(A)
    me = (await mw.client.get("/api/v1/me", headers=auth)).json()
    assert (me["msisdn"], me["firstName"], me["lastName"], me["package"]) == (
        A,
        "Çağrı Şükrü",
        "Öğüt-İğdır",
        "ANKARA",
    )
    assert me["role"] == "subscriber" and me["status"] == "active"
    balance = (await mw.client.get("/api/v1/me/balance", headers=auth)).json()
    catalogue = mw.components.catalogue.current
    ankara = catalogue.packages["ANKARA"]
    assert balance["wallet"] == {"kurus": catalogue.initial_wallet, "tl": "100.00"}
    by_service = {a["service"]: a for a in balance["allowances"]}
    assert [a["service"] for a in balance["allowances"]] == ["voice", "sms", "data"]
    for service, units in ankara.allowances.items():
        assert by_service[service.value]["remaining"] == units == by_service[service.value]["total"]
        assert by_service[service.value]["validUntil"] > balance["asOf"]
    assert balance["packages"] == ["ANKARA"]
    # the system of record has the subscriber and the credential holds a hash, not the password
    credential = mw.selfcare.credentials.credential(A)
    assert credential is not None and credential.password_hash.startswith("$argon2id$")
    assert PASSWORD not in credential.password_hash and KEY not in credential.security_key_hash


async def test_register_refuses_a_taken_number_and_unknown_package(mw: Harness):
    assert (await mw.register(A)).status_code == 201
    again = await mw.register(A, email="other@example.com")
    assert again.status_code == 409 and causes(again) == ["MSISDN_TAKEN"]
    unknown = await mw.register(B, package="YOKBÖYLE")
    assert unknown.status_code == 422 and causes(unknown) == ["UNKNOWN_PACKAGE"]
    assert mw.components.records.get_subscriber(B) is None and mw.components.store.get(B) is None


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("kısa1!", {"too_short", "needs_upper"}),
        ("hepsikucuk1!", {"needs_upper"}),
        ("HEPSIBUYUK1!", {"needs_lower"}),
        ("Harfrakam12", {"needs_special"}),
        ("şifre", {"too_short", "needs_upper", "needs_special"}),
    ],
)
async def test_weak_passwords_get_every_broken_rule(mw: Harness, password: str, expected: set[str]):
    response = await mw.register(A, password=password)
    assert response.status_code == 400 and causes(response) == ["INVALID_INPUT"]
    assert codes(response, "password") == expected
    assert mw.components.records.get_subscriber(A) is None


async def test_turkish_letters_count_as_upper_and_lower_case(mw: Harness):
    assert (await mw.register(A, password="ŞİRİNçiçek?")).status_code == 201
    assert (await mw.login(A, "ŞİRİNçiçek?")).status_code == 200


@pytest.mark.parametrize(
    "msisdn", ["0532111223", "532111223", "53211122334", "4321112233", "532-111-22", "５３２１１１２２３３"]
)
async def test_msisdn_must_be_ten_digits_starting_with_5(mw: Harness, msisdn: str):
    response = await mw.register(msisdn)
    assert response.status_code == 400 and codes(response, "msisdn") == {"msisdn_format"}


async def test_other_fields_are_checked_and_all_problems_come_at_once(mw: Harness):
    response = await mw.register(A, firstName="R2D2", email="yok", securityKey="ab", password="x")
    assert response.status_code == 400
    assert codes(response, "firstName") == {"name_format"}
    assert codes(response, "email") == {"email_format"}
    assert codes(response, "securityKey") == {"security_key_format"}
    assert {"too_short", "needs_upper", "needs_special"} <= codes(response, "password")
    missing = await mw.client.post("/api/v1/auth/register", json={"msisdn": A})
    assert missing.status_code == 400 and codes(missing, "password") == {"required"}


# --- login, lockout, tokens ---------------------------------------------------------------------


async def test_wrong_password_and_unknown_number_get_the_same_answer(mw: Harness):
    await mw.register(A)
    wrong, unknown = await mw.login(A, "Yanlis-Parola1"), await mw.login(B, "Yanlis-Parola1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_five_failures_lock_the_number_even_for_the_right_password(mw: Harness):
    await mw.register(A)
    for _ in range(4):
        assert (await mw.login(A, "Yanlis-Parola1")).status_code == 401
    locked = await mw.login(A, "Yanlis-Parola1")
    assert locked.status_code == 429 and causes(locked) == ["LOCKED"]
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert (await mw.login(A, PASSWORD)).status_code == 429
    mw.clock.advance(901)
    assert (await mw.login(A, PASSWORD)).status_code == 200


async def test_unknown_numbers_are_locked_alike(mw: Harness):
    answers = [(await mw.login(B, "Yanlis-Parola1")).status_code for _ in range(6)]
    assert answers == [401, 401, 401, 401, 429, 429]


async def test_a_success_clears_the_count(mw: Harness):
    await mw.register(A)
    for _ in range(4):
        await mw.login(A, "Yanlis-Parola1")
    assert (await mw.login(A)).status_code == 200
    for _ in range(4):
        assert (await mw.login(A, "Yanlis-Parola1")).status_code == 401


async def test_refresh_tokens_rotate_and_are_single_use(mw: Harness):
    await mw.register(A)
    first = (await mw.login(A, rememberMe=True)).json()
    assert first["refreshExpiresIn"] == 30 * 86400 and first["expiresIn"] == 900
    short = (await mw.login(A)).json()
    assert short["refreshExpiresIn"] == 12 * 3600
    second = await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200
    assert second.json()["refreshExpiresIn"] == 30 * 86400  # remember me survives the rotation
    replay = await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert replay.status_code == 401 and causes(replay) == ["TOKEN_INVALID"]
    auth = {"Authorization": f"Bearer {second.json()['accessToken']}"}
    assert (await mw.client.get("/api/v1/me", headers=auth)).status_code == 200
    await mw.client.post("/api/v1/auth/logout", json={"refreshToken": second.json()["refreshToken"]})
    gone = await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": second.json()["refreshToken"]})
    assert gone.status_code == 401


async def test_refresh_tokens_expire(mw: Harness):
    await mw.register(A)
    session = (await mw.login(A)).json()
    mw.clock.advance(12 * 3600 + 1)
    late = await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": session["refreshToken"]})
    assert late.status_code == 401


async def test_tokens_are_needed_checked_and_short_lived(mw: Harness):
    await mw.register(A)
    assert (await mw.client.get("/api/v1/me/balance")).status_code == 401
    bad = await mw.client.get("/api/v1/me/balance", headers={"Authorization": "Bearer abc.def.ghi"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")
    expired = mw.selfcare.tokens.issue(A, "subscriber", now=mw.clock() - 900 - mw.selfcare.tokens.leeway - 1)
    old = await mw.client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert old.status_code == 401 and causes(old) == ["TOKEN_INVALID"]


async def test_a_token_reads_only_its_own_subscriber(mw: Harness):
    auth_a = await mw.signed_up(A)
    auth_b = await mw.signed_up(B, email="b@example.com", package="RIZE")
    assert (await mw.client.get("/api/v1/me/balance", headers=auth_a)).json()["packages"] == ["ANKARA"]
    assert (await mw.client.get("/api/v1/me/balance", headers=auth_b)).json()["packages"] == ["RIZE"]
    # a token re-signed with another subscriber's number but not our key is refused
    import jwt

    forged = jwt.encode(
        {"sub": B, "role": "admin", "exp": 9_999_999_999, "iat": 1, "aud": "cellcelly-selfcare"}, "x" * 40
    )
    response = await mw.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    none_alg = jwt.encode(
        {"sub": B, "exp": 9_999_999_999, "iat": 1, "aud": "cellcelly-selfcare"}, None, algorithm="none"
    )
    assert (
        await mw.client.get("/api/v1/me", headers={"Authorization": f"Bearer {none_alg}"})
    ).status_code == 401
    # and subscribers are no admins
    admin = await mw.client.get("/api/v1/admin/subscribers", headers=auth_a)
    assert admin.status_code == 403 and causes(admin) == ["FORBIDDEN"]


# --- forgot / reset / change password ------------------------------------------------------------


async def _forgot(mw: Harness, msisdn: str) -> dict[str, str]:
    response = await mw.client.post("/api/v1/auth/forgot", json={"msisdn": msisdn, "channel": "sms"})
    assert response.status_code == 202
    for task in list(mw.selfcare._background):
        await task
    return response.json()


async def test_forgot_never_tells_whether_the_number_exists(mw: Harness):
    await mw.register(A)
    assert await _forgot(mw, A) == await _forgot(mw, B)
    assert [m for m, _, _ in mw.outbox.sent] == [A]


async def test_reset_with_code_and_security_key_then_the_code_is_spent(mw: Harness):
    await mw.register(A)
    await _forgot(mw, A)
    code = mw.outbox.last_code(A)
    body = {"msisdn": A, "code": code, "securityKey": KEY, "newPassword": "Yeni-Parola2"}
    wrong_key = await mw.client.post("/api/v1/auth/reset", json={**body, "securityKey": "başka anahtar"})
    assert wrong_key.status_code == 400 and causes(wrong_key) == ["INVALID_CODE"]
    assert (await mw.client.post("/api/v1/auth/reset", json=body)).status_code == 204
    again = await mw.client.post("/api/v1/auth/reset", json={**body, "newPassword": "Ucuncu-Parola3"})
    assert again.status_code == 400 and causes(again) == ["INVALID_CODE"]
    assert (await mw.login(A, PASSWORD)).status_code == 401
    assert (await mw.login(A, "Yeni-Parola2")).status_code == 200


async def test_reset_codes_expire(mw: Harness):
    await mw.register(A)
    await _forgot(mw, A)
    code = mw.outbox.last_code(A)
    mw.clock.advance(601)
    body = {"msisdn": A, "code": code, "securityKey": KEY, "newPassword": "Yeni-Parola2"}
    assert (await mw.client.post("/api/v1/auth/reset", json=body)).status_code == 400
    assert (await mw.login(A)).status_code == 200


async def test_wrong_codes_use_the_code_up_and_codes_are_not_resent_at_once(mw: Harness):
    await mw.register(A)
    await _forgot(mw, A)
    await _forgot(mw, A)  # within a minute: no second message
    assert len(mw.outbox.sent) == 1
    code = mw.outbox.last_code(A)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    body = {"msisdn": A, "code": wrong, "securityKey": KEY, "newPassword": "Yeni-Parola2"}
    for _ in range(5):
        assert (await mw.client.post("/api/v1/auth/reset", json=body)).status_code == 400
    right = await mw.client.post("/api/v1/auth/reset", json={**body, "code": code})
    assert right.status_code == 400  # five wrong tries and the code is gone


async def test_change_password(mw: Harness):
    auth = await mw.signed_up(A)
    refresh = (await mw.login(A)).json()["refreshToken"]
    body = {"currentPassword": "Yanlis-Parola1", "newPassword": "Yeni-Parola2"}
    wrong = await mw.client.post("/api/v1/me/password", headers=auth, json=body)
    assert wrong.status_code == 401 and causes(wrong) == ["INVALID_CREDENTIALS"]
    same = await mw.client.post(
        "/api/v1/me/password", headers=auth, json={"currentPassword": PASSWORD, "newPassword": PASSWORD}
    )
    assert same.status_code == 400 and codes(same, "newPassword") == {"same_password"}
    weak = await mw.client.post(
        "/api/v1/me/password", headers=auth, json={"currentPassword": PASSWORD, "newPassword": "zayif"}
    )
    assert weak.status_code == 400 and "needs_upper" in codes(weak, "newPassword")
    ok = await mw.client.post("/api/v1/me/password", headers=auth, json={**body, "currentPassword": PASSWORD})
    assert ok.status_code == 204
    assert (await mw.login(A)).status_code == 401 and (await mw.login(A, "Yeni-Parola2")).status_code == 200
    # sessions started with the old password end
    assert (await mw.client.post("/api/v1/auth/refresh", json={"refreshToken": refresh})).status_code == 401


# --- add-ons and top-ups -------------------------------------------------------------------------


async def test_buy_an_add_on_from_the_wallet(mw: Harness):
    auth = await mw.signed_up(A)
    rize = mw.components.catalogue.current.packages["RIZE"]
    before = (await mw.client.get("/api/v1/me/balance", headers=auth)).json()
    bought = await mw.client.post(
        "/api/v1/me/packages", headers=auth, json={"package": "RIZE", "requestId": "r-1"}
    )
    assert bought.status_code == 201
    after = bought.json()
    assert after["wallet"]["kurus"] == before["wallet"]["kurus"] - rize.price
    for old, new in zip(before["allowances"], after["allowances"], strict=True):
        from cellcelly.domain.units import Service

        assert new["remaining"] == old["remaining"] + rize.allowances[Service(new["service"])]
    repeat = await mw.client.post(
        "/api/v1/me/packages", headers=auth, json={"package": "RIZE", "requestId": "r-1"}
    )
    assert repeat.json()["wallet"] == after["wallet"]  # the same request twice is bought once
    # 100 TL - 95 TL leaves 5 TL: another RIZE cannot be paid
    poor = await mw.client.post("/api/v1/me/packages", headers=auth, json={"package": "RIZE"})
    assert poor.status_code == 402 and causes(poor) == ["INSUFFICIENT_FUNDS"]
    unknown = await mw.client.post("/api/v1/me/packages", headers=auth, json={"package": "NOPE"})
    assert unknown.status_code == 422 and causes(unknown) == ["UNKNOWN_PACKAGE"]
    final = (await mw.client.get("/api/v1/me/balance", headers=auth)).json()
    assert final["wallet"] == after["wallet"]


async def test_vouchers_top_up_once(mw: Harness):
    admin = {"Authorization": "Bearer " + "a" * 40}
    made = await mw.client.post("/api/v1/admin/vouchers", headers=admin, json={"amount": "25.50", "count": 3})
    assert made.status_code == 201
    first, second, third = (item["code"] for item in made.json()["items"])
    auth_a, auth_b = await mw.signed_up(A), await mw.signed_up(B, email="b@example.com")
    spaced = f"{first[:4]}-{first[4:8]} {first[8:12]}-{first[12:]}"
    topped = await mw.client.post("/api/v1/me/topup", headers=auth_a, json={"voucher": spaced})
    assert topped.status_code == 200 and topped.json()["wallet"]["kurus"] == parse_tl("100") + parse_tl(
        "25.50"
    )
    again = await mw.client.post("/api/v1/me/topup", headers=auth_a, json={"voucher": first})
    assert again.status_code == 409 and causes(again) == ["VOUCHER_USED"]
    stolen = await mw.client.post("/api/v1/me/topup", headers=auth_b, json={"voucher": first})
    assert stolen.status_code == 409
    assert (await mw.client.get("/api/v1/me/balance", headers=auth_b)).json()["wallet"]["kurus"] == parse_tl(
        "100"
    )
    assert (await mw.client.get("/api/v1/me/balance", headers=auth_a)).json()["wallet"]["kurus"] == 12_550
    bad = await mw.client.post("/api/v1/me/topup", headers=auth_b, json={"voucher": "1" * 16})
    assert bad.status_code == 404 and causes(bad) == ["INVALID_VOUCHER"]
    fmt = await mw.client.post("/api/v1/me/topup", headers=auth_b, json={"voucher": "12ab"})
    assert fmt.status_code == 400 and codes(fmt, "voucher") == {"voucher_format"}
    for _ in range(3):
        await mw.client.post("/api/v1/me/topup", headers=auth_b, json={"voucher": "2" * 16})
    blocked = await mw.client.post("/api/v1/me/topup", headers=auth_b, json={"voucher": second})
    assert blocked.status_code == 429  # five wrong codes: even a good one waits
    ok = await mw.client.post("/api/v1/me/topup", headers=auth_a, json={"voucher": third})
    assert ok.status_code == 200


async def test_admin_suspends_and_resumes(mw: Harness):
    auth = await mw.signed_up(A)
    admin = {"Authorization": "Bearer " + "a" * 40}
    put = await mw.client.put(
        f"/api/v1/admin/subscribers/{A}/status", headers=admin, json={"status": "suspended"}
    )
    assert put.status_code == 200 and put.json()["status"] == "suspended"
    assert mw.components.records.get_subscriber(A).status == "suspended"  # type: ignore[union-attr]
    refused = await mw.client.post("/api/v1/me/packages", headers=auth, json={"package": "RIZE"})
    assert refused.status_code == 403 and causes(refused) == ["SUSPENDED"]
    await mw.client.put(f"/api/v1/admin/subscribers/{A}/status", headers=admin, json={"status": "active"})
    assert (
        await mw.client.post("/api/v1/me/packages", headers=auth, json={"package": "RIZE"})
    ).status_code == 201
    # a subscriber made admin by role uses their own token
    role = await mw.client.put(f"/api/v1/admin/subscribers/{A}/role", headers=admin, json={"role": "admin"})
    assert role.status_code == 200
    listed = await mw.client.get("/api/v1/admin/subscribers", headers=await mw.token(A))
    assert listed.status_code == 200 and [s["msisdn"] for s in listed.json()["items"]] == [A]
    catalogue = await mw.client.get("/api/v1/admin/catalogue", headers=admin)
    assert {p["code"] for p in catalogue.json()["packages"]} >= {"ANKARA", "RIZE"}
    broken = await mw.client.put(
        "/api/v1/admin/catalogue", headers=admin, content="version: x\npackages: 3\n"
    )
    assert broken.status_code == 422 and broken.json()["problems"]


async def test_packages_are_public(mw: Harness):
    items = (await mw.client.get("/api/v1/packages")).json()["items"]
    diyarbakir = next(p for p in items if p["code"] == "DIYARBAKIR")
    assert diyarbakir["name"] == "Diyarbakır" and diyarbakir["price"] == {"kurus": 8000, "tl": "80.00"}
    assert diyarbakir["allowances"] == {"voice": 7000 * 60, "data": 7 * 1024**3, "sms": 7000}


# --- bad input ----------------------------------------------------------------------------------


async def test_bad_input_gets_problem_details_and_changes_nothing(mw: Harness):
    huge = await mw.client.post("/api/v1/auth/register", content=b"{" + b" " * 20_000 + b"}")
    assert huge.status_code == 413 and causes(huge) == ["PAYLOAD_TOO_LARGE"]
    broken = await mw.client.post(
        "/api/v1/auth/login", content=b'{"msisdn": "53', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and causes(broken) == ["INVALID_INPUT"]
    extra = await mw.client.post("/api/v1/auth/login", json={"msisdn": A, "password": "x", "admin": True})
    assert extra.status_code == 400
    assert (await mw.client.get("/api/v1/nothing")).status_code == 404
    assert (await mw.client.delete("/api/v1/me")).status_code == 405
    assert mw.components.records.list_subscribers() == []
    ok = await mw.client.get("/healthz")
    assert ok.status_code == 200 and ok.headers["x-content-type-options"] == "nosniff"
    assert (await mw.client.get("/api/v1/packages")).headers["cache-control"] == "no-store"


async def test_sign_up_and_suspension_are_subscriber_events_on_the_bus(mw: Harness, tmp_path: Path):
    from cellcelly.adapters.bus_embedded import EmbeddedBus
    from cellcelly.application.relay import OutboxRelay
    from cellcelly.ports.event_bus import SUBSCRIBER

    admin = {"Authorization": "Bearer " + "a" * 40}
    await mw.register(A)
    await mw.client.put(f"/api/v1/admin/subscribers/{A}/status", headers=admin, json={"status": "suspended"})
    await mw.client.put(f"/api/v1/admin/subscribers/{A}/status", headers=admin, json={"status": "active"})
    bus = EmbeddedBus(tmp_path / "bus")
    try:
        relay = OutboxRelay(mw.components.store, bus)
        while await relay.relay_once():
            pass
        reader = bus.consumer("inspector", [SUBSCRIBER])
        events = [orjson.loads(r.value) for r in await reader.poll(100, timeout=0.5)]
    finally:
        await bus.close()
    assert [(e["msisdn"], e["kind"]) for e in events] == [(A, "created"), (A, "suspended"), (A, "resumed")]
    assert events[0]["package"] == "ANKARA" and events[0]["schema"] == 1
    assert len({e["event_id"] for e in events}) == 3


async def test_the_spoken_balance_as_wav(tmp_path: Path):
    import io
    import wave

    from cellcelly.ivr.prompt import prompt_wav, tools_missing
    from cellcelly.mw.app import create_app
    from cellcelly_testing import require

    require(
        not tools_missing(), f"{' and '.join(tools_missing())} not installed: apt-get install espeak-ng sox"
    )
    async with harness(tmp_path / "data") as mw:
        auth = await mw.signed_up(A)
        app = create_app(mw.selfcare, prompt_wav=prompt_wav, webui=None)
        import httpx

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mw") as client:
            assert (await client.get("/api/v1/me/balance/prompt.wav")).status_code == 401
            response = await client.get("/api/v1/me/balance/prompt.wav", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (8000, 1)
        assert wav.getnframes() / 8000 > 3  # a few sentences of speech, not an empty file
