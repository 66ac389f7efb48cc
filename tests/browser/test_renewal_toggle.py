"""Package renewal in real Chromium against the real stack: a subscriber turns automatic renewal
on and off on the packages page (a switch on each package held), and the MW's own list
(GET /api/v1/me/renewals, with the same subscriber's token) follows; a refused change leaves the
switch as the server has it and says why, in Turkish and English."""

from __future__ import annotations

import json
from typing import Any

import pytest
from webui_helpers import Stack, fresh_subscriber, get_json, login_ui, register_api, token

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]

TEXTS = {
    "tr": {
        "label": "Otomatik yenile",
        "hint": "Süresi bitince bakiyenizden yenilenir",
        "held": "Hattınızda tanımlı",
        "on": "Ankara paketi süresi bitince bakiyenizden otomatik yenilenecek.",
        "off": "Ankara paketi artık otomatik yenilenmeyecek.",
        "unknown": "Bu paket artık satışta değil.",
        "failed": "Otomatik yenileme ayarı kaydedilemedi. Lütfen tekrar deneyin.",
    },
    "en": {
        "label": "Renew automatically",
        "hint": "Renewed from your balance when it ends",
        "held": "On your line",
        "on": "The Ankara package will be renewed from your balance automatically when it ends.",
        "off": "The Ankara package will no longer be renewed automatically.",
        "unknown": "This package is no longer on sale.",
        "failed": "The automatic renewal setting could not be saved. Please try again.",
    },
}


def renewals(stack: Stack, access: str) -> list[str]:
    return list(get_json(stack.api, "/api/v1/me/renewals", access)["items"])


def open_packages(page: Any) -> None:
    page.goto("/#/packages")
    page.wait_for_selector(".shop[data-loaded][data-renewals=loaded]")


def switch_codes(page: Any) -> list[str]:
    return list(page.locator("[data-renew]").evaluate_all("els => els.map(e => e.dataset.renew)"))


def note(page: Any, code: str, kind: str) -> str:
    return str(page.locator(f"[data-testid=renew-note-{code}].{kind}").inner_text())


def check_texts(page: Any, lang: str) -> None:
    texts = TEXTS[lang]
    assert page.inner_text("label[for=renew-ANKARA]") == texts["label"]
    assert page.inner_text("#renew-ANKARA-hint") == texts["hint"]
    assert page.inner_text("[data-held=ANKARA]") == texts["held"]
    # the hint is the switch's description, the package's name part of its name
    described = str(page.get_attribute("#renew-ANKARA", "aria-describedby")).split()
    assert "renew-ANKARA-hint" in described
    assert page.get_by_role("switch", name=f"{texts['label']} Ankara").count() == 1


def test_a_subscriber_turns_renewal_on_and_off(stack: Stack, new_page: Any, screenshot: Any) -> None:
    sub = fresh_subscriber()  # signs up with ANKARA, the one package held
    register_api(stack.api, sub)
    access = token(stack.api, sub.msisdn, sub.password)
    assert get_json(stack.api, "/api/v1/me/balance", access)["packages"] == ["ANKARA"]
    assert renewals(stack, access) == []

    page = new_page("desktop")
    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    open_packages(page)
    assert switch_codes(page) == ["ANKARA"]  # only the package held has a switch
    assert page.is_hidden("[data-held=BURSA]") and page.is_visible("[data-held=ANKARA]")
    check_texts(page, "tr")
    switch = page.locator("#renew-ANKARA")
    assert not switch.is_checked()

    switch.check()
    page.wait_for_selector("[data-testid=renew-note-ANKARA].success")
    assert note(page, "ANKARA", "success") == TEXTS["tr"]["on"]
    assert renewals(stack, access) == ["ANKARA"]

    page.reload()
    open_packages(page)
    assert page.locator("#renew-ANKARA").is_checked()  # drawn from GET /me/renewals
    screenshot(page, "renewal-on", "desktop")

    page.click("#lang")
    page.wait_for_selector("html[lang=en]")
    check_texts(page, "en")
    # off by the keyboard alone; the focus stays on the switch while it saves
    page.focus("#renew-ANKARA")
    page.keyboard.press("Space")
    page.wait_for_selector("[data-testid=renew-note-ANKARA].success")
    assert note(page, "ANKARA", "success") == TEXTS["en"]["off"]
    assert page.evaluate("document.activeElement.id") == "renew-ANKARA"
    assert not page.locator("#renew-ANKARA").is_checked()
    assert renewals(stack, access) == []

    page.reload()
    open_packages(page)
    assert not page.locator("#renew-ANKARA").is_checked()


def test_a_refused_change_is_said_and_the_switch_keeps_the_servers_state(
    stack: Stack, new_page: Any, screenshot: Any
) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    access = token(stack.api, sub.msisdn, sub.password)
    # no service worker: its own fetch would pass the answers below by
    page = new_page("phone", service_workers="block")
    answers = [
        (422, {"status": 422, "title": "Unknown package", "cause": "UNKNOWN_PACKAGE"}),
        (500, {"status": 500, "title": "Internal error"}),
    ]

    def refuse(route: Any) -> None:
        if route.request.method != "PUT" or not answers:
            route.fallback()
            return
        status, problem = answers.pop(0)
        route.fulfill(status=status, content_type="application/problem+json", body=json.dumps(problem))

    page.route("**/api/v1/me/renewals/ANKARA", refuse)
    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    open_packages(page)

    page.locator("#renew-ANKARA").click()
    page.wait_for_selector("[data-testid=renew-note-ANKARA].error")
    assert note(page, "ANKARA", "error") == TEXTS["tr"]["unknown"]
    assert not page.locator("#renew-ANKARA").is_checked()  # back to what the server holds
    page.click("#lang")  # the message re-translates
    page.wait_for_selector("html[lang=en]")
    assert note(page, "ANKARA", "error") == TEXTS["en"]["unknown"]

    page.locator("#renew-ANKARA").click()
    page.wait_for_selector(f"[data-testid=renew-note-ANKARA].error:text-is('{TEXTS['en']['failed']}')")
    assert not page.locator("#renew-ANKARA").is_checked()
    screenshot(page, "renewal-refused", "phone")
    assert renewals(stack, access) == []  # neither reached the MW

    # a package bought on the page gets its switch at once, and that one goes through
    page.click("[data-buy=BURSA]")
    page.wait_for_selector("[data-renew=BURSA]")
    assert switch_codes(page) == ["ANKARA", "BURSA"]
    assert page.is_visible("[data-held=BURSA]")
    page.locator("#renew-BURSA").check()
    page.wait_for_selector("[data-testid=renew-note-BURSA].success")
    assert renewals(stack, access) == ["BURSA"]
