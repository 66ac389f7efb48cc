"""Main self-care journeys in real headless Chromium against the real embedded stack:
register → login → balances → buy an add-on → balances change; forgot password by e-mail;
lockout; a Turkish name round trip; usage history newest first."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from webui_helpers import (
    Stack,
    Subscriber,
    amount_tr,
    banner_text,
    body_text,
    fill_register,
    fresh_subscriber,
    get_json,
    login_ui,
    money_tr,
    register_api,
    token,
)

from cellcelly.domain.turkish_numbers import MONTHS

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]


def date_tr(epoch: int) -> str:
    d = datetime.fromtimestamp(epoch)  # the browser runs in the machine's time zone too
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def assert_dashboard_shows(page: Any, balance: dict[str, Any], names: dict[str, str]) -> None:
    """Every figure on the dashboard equals GET /api/v1/me/balance (formatted for Turkish)."""
    page.wait_for_selector(".dash-body[data-loaded]")
    owned = page.inner_text("[data-testid=packages]")
    assert balance["packages"] and all(names[code] in owned for code in balance["packages"]), owned
    kurus = balance["wallet"]["kurus"]
    assert page.get_attribute("[data-testid=wallet]", "data-kurus") == str(kurus)
    assert page.inner_text("[data-testid=wallet-amount]") == money_tr(kurus)
    assert [a["service"] for a in balance["allowances"]] == ["voice", "sms", "data"]
    for a in balance["allowances"]:
        service = a["service"]
        card = f"[data-testid=allowance-{service}]"
        assert page.get_attribute(card, "data-remaining") == str(a["remaining"])
        assert page.get_attribute(card, "data-total") == str(a["total"])
        assert page.inner_text(f"[data-testid=remaining-{service}]") == amount_tr(service, a["remaining"])
        fraction = float(page.get_attribute(f"{card} svg.donut", "data-fraction") or "nan")
        assert fraction == pytest.approx(a["remaining"] / a["total"] if a["total"] else 0, abs=1e-4)
        if a["validUntil"]:
            assert date_tr(a["validUntil"]) in page.inner_text(f"[data-testid=valid-{service}]")


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_register_login_see_balances_buy_addon(
    stack: Stack, new_page: Any, screenshot: Any, device: str
) -> None:
    sub = fresh_subscriber()
    page = new_page(device)
    fill_register(page, sub)
    screenshot(page, "journey-register", device)
    page.click("form button[type=submit]")
    page.wait_for_selector("body[data-view=login]")
    assert "Kaydınız tamamlandı" in banner_text(page, "success")
    assert page.input_value("input[name=msisdn]") == sub.msisdn  # prefilled after sign-up
    screenshot(page, "journey-login", device)

    page.fill("input[name=password]", sub.password)
    page.click("form button[type=submit]")
    page.wait_for_selector("body[data-view=dashboard]")
    access = token(stack.api, sub.msisdn, sub.password)
    before = get_json(stack.api, "/api/v1/me/balance", access)
    catalogue = {p["code"]: p for p in stack.api.get("/api/v1/packages").json()["items"]}
    names = {code: p["name"] for code, p in catalogue.items()}
    assert_dashboard_shows(page, before, names)
    assert page.inner_text("[data-testid=hello]") == f"Merhaba {sub.first_name} {sub.last_name}"
    screenshot(page, "journey-dashboard", device)

    wallet = before["wallet"]["kurus"]
    affordable = min(catalogue.values(), key=lambda p: p["price"]["kurus"])
    assert affordable["price"]["kurus"] <= wallet, "the initial wallet should buy the cheapest add-on"
    page.click("nav a[href='#/packages']")
    page.wait_for_selector(".shop[data-loaded]")
    assert money_tr(wallet) in page.inner_text("[data-testid=packages-wallet]")
    page.click(f"[data-buy={affordable['code']}]")
    page.wait_for_selector("[data-testid=form-message].success")
    after = get_json(stack.api, "/api/v1/me/balance", access)
    assert after["wallet"]["kurus"] == wallet - affordable["price"]["kurus"]
    for old, new in zip(before["allowances"], after["allowances"], strict=True):
        added = affordable["allowances"][old["service"]]
        assert new["remaining"] == old["remaining"] + added, old["service"]
        assert new["total"] == old["total"] + added, old["service"]
    assert money_tr(after["wallet"]["kurus"]) in banner_text(page, "success")

    # a package dearer than what is left: a clear INSUFFICIENT_FUNDS message, nothing changes
    dear = max(catalogue.values(), key=lambda p: p["price"]["kurus"])
    assert dear["price"]["kurus"] > after["wallet"]["kurus"]
    page.click(f"[data-buy={dear['code']}]")
    page.wait_for_selector("[data-testid=form-message].error")
    message = banner_text(page, "error")
    assert "yeterli bakiye yok" in message
    assert money_tr(dear["price"]["kurus"]) in message and money_tr(after["wallet"]["kurus"]) in message
    screenshot(page, "journey-packages", device)
    unchanged = get_json(stack.api, "/api/v1/me/balance", access)
    assert (unchanged["wallet"], unchanged["allowances"]) == (after["wallet"], after["allowances"])

    page.click("nav a[href='#/dashboard']")
    assert_dashboard_shows(page, after, names)


def test_forgot_password_by_email_then_login_with_the_new_one(
    stack: Stack, new_page: Any, screenshot: Any
) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    page = new_page("desktop")
    page.goto("/#/login")
    page.click("a[href='#/forgot']")
    page.wait_for_selector("body[data-view=forgot]")
    page.fill("input[name=msisdn]", sub.msisdn)
    page.check("#channel-email")
    page.click("form[data-step=ask] button[type=submit]")
    page.wait_for_selector("form[data-step=reset]:not([hidden])")
    assert "10 dakika" in banner_text(page, "success")

    mail = stack.inbox.wait_for(sub.email)
    found = re.search(r"\b(\d{6})\b", body_text(mail))
    assert found, body_text(mail)
    code = found.group(1)
    assert code not in stack.log_path.read_text(errors="replace"), "the reset code appeared in the logs"

    new_password = "Yeni-Şifre9ğ"
    page.fill("input[name=code]", code)
    page.fill("input[name=securityKey]", sub.security_key)
    page.fill("input[name=newPassword]", new_password)
    page.fill("input[name=newPasswordConfirm]", new_password)
    screenshot(page, "journey-forgot", "desktop")
    page.click("form[data-step=reset] button[type=submit]")
    page.wait_for_selector("body[data-view=login]")
    assert "Şifreniz değiştirildi" in banner_text(page, "success")

    login_ui(page, sub.msisdn, sub.password)  # the old password is dead
    page.wait_for_selector("[data-testid=form-message].error")
    assert banner_text(page, "error") == "Numara ya da şifre hatalı."
    old = stack.api.post(
        "/api/v1/auth/login", json={"msisdn": sub.msisdn, "password": sub.password, "rememberMe": False}
    )
    assert old.status_code == 401 and old.json()["cause"] == "INVALID_CREDENTIALS"

    login_ui(page, sub.msisdn, new_password)
    page.wait_for_selector(".dash-body[data-loaded]")

    # the used code does not work a second time, and the page says so
    page.click("#logout")
    page.wait_for_selector("body[data-view=login]")
    page.goto("/#/forgot")
    page.fill("input[name=msisdn]", sub.msisdn)
    page.check("#channel-email")
    page.click("form[data-step=ask] button[type=submit]")
    page.wait_for_selector("form[data-step=reset]:not([hidden])")
    stack.inbox.wait_for(sub.email, count=2)
    page.fill("input[name=code]", code)
    page.fill("input[name=securityKey]", sub.security_key)
    page.fill("input[name=newPassword]", "Başka-Şifre7")
    page.fill("input[name=newPasswordConfirm]", "Başka-Şifre7")
    page.click("form[data-step=reset] button[type=submit]")
    page.wait_for_selector("[data-testid=form-message].error")
    assert "kodun süresi dolmuş veya kullanılmış" in banner_text(page, "error")


def test_repeated_wrong_passwords_lock_the_login_with_a_clear_message(stack: Stack, new_page: Any) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    page = new_page("desktop")
    seen = []
    for _ in range(6):
        login_ui(page, sub.msisdn, "Yanlış-Şifre1")
        page.wait_for_selector("[data-testid=form-message].error")
        seen.append(banner_text(page, "error"))
    assert seen[:4] == ["Numara ya da şifre hatalı."] * 4, seen
    locked = re.fullmatch(r"Çok fazla hatalı deneme yapıldı\. (\d+) dakika sonra tekrar deneyin\.", seen[-1])
    assert locked and 0 < int(locked.group(1)) <= 15, seen  # minutes, rounded up (test_selfcare_details)
    login_ui(page, sub.msisdn, sub.password)  # even the right password waits
    page.wait_for_selector("[data-testid=form-message].error")
    assert banner_text(page, "error").startswith("Çok fazla hatalı deneme")


def test_turkish_name_round_trips_to_the_dashboard_in_english_too(stack: Stack, new_page: Any) -> None:
    sub = fresh_subscriber()
    page = new_page("desktop")
    page.goto("/")
    page.click("#lang")
    page.wait_for_selector("html[lang=en]")
    fill_register(page, sub)
    page.click("form button[type=submit]")
    page.wait_for_selector("body[data-view=login]")
    login_ui(page, sub.msisdn, sub.password, remember=True)
    page.wait_for_selector(".dash-body[data-loaded]")
    assert page.inner_text("[data-testid=hello]") == "Hello Çağrı Şükrü Öğüt İğdır"
    me = get_json(stack.api, "/api/v1/me", token(stack.api, sub.msisdn, sub.password))
    assert (me["firstName"], me["lastName"]) == ("Çağrı Şükrü", "Öğüt İğdır")
    # "remember me": the refresh token survives in localStorage, so a reload stays logged in
    assert page.evaluate("localStorage.getItem('cc.refresh')") and not page.evaluate(
        "sessionStorage.getItem('cc.refresh')"
    )
    saved = page.evaluate("localStorage.getItem('cc.refresh')")
    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if r.url.endswith("/api/v1/auth/refresh") else None)
    page.reload()  # the access token lived in memory only: it is renewed with the refresh token
    page.wait_for_selector(".dash-body[data-loaded]")
    assert page.inner_text("[data-testid=hello]") == "Hello Çağrı Şükrü Öğüt İğdır"
    assert len(refreshes) == 1, refreshes
    assert page.evaluate("localStorage.getItem('cc.refresh')") not in (None, saved)  # rotated


def _charge_sms(stack: Stack, sub: Subscriber, session: str, destination: str) -> None:
    unit = {
        "ratingGroup": 2,
        "serviceType": "sms",
        "destination": destination,
        "requestedUnit": {"serviceSpecificUnits": 1},
    }
    r = httpx.post(
        f"{stack.ocs_url}/nchf-convergedcharging/v3/chargingdata",
        json={
            "subscriberIdentifier": f"msisdn-{sub.msisdn}",
            "invocationSequenceNumber": 0,
            "sessionId": session,
            "multipleUnitUsage": [unit],
            "oneTimeEvent": True,
            "oneTimeEventType": "IEC",
        },
        # the key `cellcelly run` keeps in its data directory, as the README's curl reads it
        headers={"Authorization": f"Bearer {(stack.log_path.parent / 'ocs-api-key').read_text().strip()}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_usage_history_lists_the_newest_first(stack: Stack, new_page: Any, screenshot: Any) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    _charge_sms(stack, sub, f"u1-{sub.msisdn}", "905551112233")
    time.sleep(1.1)  # occurredAt is in seconds: make the order visible
    _charge_sms(stack, sub, f"u2-{sub.msisdn}", "4915112345678")
    access = token(stack.api, sub.msisdn, sub.password)
    deadline = time.monotonic() + 30
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(items) < 2:
        items = get_json(stack.api, "/api/v1/me/usage?limit=50", access)["items"]
        time.sleep(0.3)
    assert len(items) == 2, items
    page = new_page("desktop")
    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    page.click("nav a[href='#/usage']")
    page.wait_for_selector("[data-testid=usage-table]")
    rows = page.locator("[data-testid=usage-table] tbody tr")
    assert rows.count() == 2
    occurred = [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.occurred)")]
    assert occurred == sorted(occurred, reverse=True) and occurred[0] > occurred[1]
    # the API's order (newest first) is the table's; the abroad SMS (sent last) was paid from the wallet
    assert [i["occurredAt"] for i in items] == occurred
    newest = items[0]
    assert newest["chargedKurus"] > 0 and not newest["fromPackage"]
    first = rows.nth(0).inner_text()
    assert "1 SMS" in first and money_tr(newest["chargedKurus"]) in first and "Cüzdandan" in first
    assert newest["destination"] == "4915112345678"
    assert "+49 151 123 456 78" in first  # the called number, grouped as people read it
    assert "Paketten" in rows.nth(1).inner_text()
    screenshot(page, "journey-usage", "desktop")


def test_top_up_by_voucher_once(stack: Stack, new_page: Any, screenshot: Any) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    made = stack.api.post(
        "/api/v1/admin/vouchers",
        json={"amount": "25.50", "count": 1},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert made.status_code == 201, made.text
    voucher = made.json()["items"][0]["code"]
    access = token(stack.api, sub.msisdn, sub.password)
    before = get_json(stack.api, "/api/v1/me/balance", access)["wallet"]["kurus"]
    page = new_page("phone")
    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    page.click("[data-testid=wallet] a[href='#/topup']")
    page.fill("input[name=voucher]", "1234-5678")
    page.click("form button[type=submit]")
    assert page.locator("[data-error-for=voucher] [data-code]").get_attribute("data-code") == "voucher_format"
    page.fill("input[name=voucher]", voucher)
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=form-message].success")
    after = get_json(stack.api, "/api/v1/me/balance", access)["wallet"]["kurus"]
    assert after == before + 2550
    assert banner_text(page, "success") == f"Yükleme başarılı. Yeni bakiyeniz: {money_tr(after)}"
    screenshot(page, "journey-topup", "phone")
    page.fill("input[name=voucher]", voucher)  # a second time: refused, the wallet stays
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=form-message].error")
    assert banner_text(page, "error") == "Bu kupon daha önce kullanılmış."
    assert get_json(stack.api, "/api/v1/me/balance", access)["wallet"]["kurus"] == after
