"""Every main page at desktop (1280×800) and phone (375×667, 2×) size, screenshots saved under
test-artifacts/screenshots/; each page is checked to be fully translated in both languages."""

from __future__ import annotations

from typing import Any

import pytest
from webui_helpers import Stack, banner_text, fresh_subscriber, login_ui, register_api

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]

PUBLIC = {"login": "input[name=msisdn]", "register": ".pkg-card", "forgot": "form[data-step=ask]"}
PRIVATE = {
    "dashboard": ".dash-body[data-loaded]",
    "usage": "[data-testid=usage-empty], [data-testid=usage-table]",
    "packages": ".shop[data-loaded]",
    "topup": "input[name=voucher]",
    "password": "input[name=currentPassword]",
}


def strings(page: Any) -> dict[str, dict[str, str]]:
    return dict(page.evaluate("import('/js/i18n.js').then(m => m.strings)"))


def only_in(table: dict[str, dict[str, str]], lang: str, other: str) -> set[str]:
    """Texts of one language that the other does not share (the bits before any {placeholder})."""
    shared = set(table[other].values())
    found = set()
    for text in table[lang].values():
        if text in shared:
            continue
        for piece in text.split("{"):
            piece = piece.split("}")[-1].strip(" .:,")
            if len(piece) >= 6 and all(piece not in o for o in shared):
                found.add(piece)
    return found


def leftovers(page: Any, foreign: set[str]) -> list[str]:
    text = page.inner_text("body")
    return sorted(s for s in foreign if s in text)


def test_both_languages_have_the_same_keys(stack: Stack, new_page: Any) -> None:
    page = new_page("desktop")
    page.goto("/")
    table = strings(page)
    assert set(table) == {"tr", "en"}
    assert set(table["tr"]) == set(table["en"])
    turkish = "".join(table["tr"].values())
    assert all(letter in turkish for letter in "çğıİöşüÇÖŞÜ")  # Ğ never starts a Turkish word


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_screenshots_of_every_main_page_fully_translated(
    stack: Stack, new_page: Any, screenshot: Any, device: str
) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    page = new_page(device)
    page.goto("/")
    table = strings(page)
    english_only, turkish_only = only_in(table, "en", "tr"), only_in(table, "tr", "en")

    for name, ready in PUBLIC.items():
        page.goto(f"/#/{name}")
        page.wait_for_selector(ready)
        assert leftovers(page, english_only) == [], name
        screenshot(page, f"page-{name}", device)
    login_ui(page, sub.msisdn, sub.password)
    for name, ready in PRIVATE.items():
        page.goto(f"/#/{name}")
        page.wait_for_selector(ready)
        if name == "topup":
            page.fill("input[name=voucher]", "1234-5678-9012-3456")
            page.click("form button[type=submit]")
            page.wait_for_selector("[data-testid=form-message].error")
            assert banner_text(page, "error") == "Bu kupon kodu geçersiz."
        assert leftovers(page, english_only) == [], name
        if device == "phone":  # nothing sticks out sideways on a phone
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
        screenshot(page, f"page-{name}", device)

    page.click("#lang")
    page.wait_for_selector("html[lang=en]")
    for name, ready in PRIVATE.items():
        page.goto(f"/#/{name}")
        page.wait_for_selector(ready)
        assert leftovers(page, turkish_only) == [], name
        if name == "dashboard":
            screenshot(page, "page-dashboard-en", device)
    page.click("#logout")
    page.wait_for_selector("body[data-view=login]")
    for name, ready in PUBLIC.items():
        page.goto(f"/#/{name}")
        page.wait_for_selector(ready)
        assert leftovers(page, turkish_only) == [], name


def test_login_works_with_the_keyboard_alone(stack: Stack, new_page: Any) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    page = new_page("desktop")
    page.goto("/#/login")
    page.wait_for_selector("body[data-view=login]")
    assert page.evaluate("document.activeElement.tagName") == "H1"  # focus moves to the new page's heading
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "msisdn"
    page.keyboard.type(sub.msisdn)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "password"
    page.keyboard.type(sub.password)
    page.keyboard.press("Tab")  # the show-password button
    page.keyboard.press("Enter")
    assert page.get_attribute("input[name=password]", "type") == "text"
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert page.is_checked("#remember")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector(".dash-body[data-loaded]")
    assert page.evaluate("localStorage.getItem('cc.refresh')")  # remembered
