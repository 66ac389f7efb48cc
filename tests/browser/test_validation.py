"""Validation errors in Turkish and English: each broken rule named next to its field before
anything is sent, re-translated on a language switch; server causes shown in the current language."""

from __future__ import annotations

from typing import Any

import pytest
from webui_helpers import (
    Stack,
    banner_text,
    field_codes,
    field_errors,
    fill_register,
    fresh_subscriber,
    login_ui,
    register_api,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]

MESSAGES = {
    "tr": {
        "too_short": "Şifre en az 8 karakter olmalıdır.",
        "needs_upper": "En az bir büyük harf içermelidir.",
        "needs_lower": "En az bir küçük harf içermelidir.",
        "needs_special": "En az bir özel karakter (harf ya da rakam olmayan) içermelidir.",
        "msisdn_format": (
            "Numara 10 haneli olmalı, 5 ile başlamalı ve yalnızca rakam içermelidir (ör. 5321234567)."
        ),
        "mismatch": "Şifreler birbiriyle aynı değil.",
        "email_format": "Geçerli bir e-posta adresi girin (ör. ad@ornek.com).",
        "name_format": "Yalnızca harf, boşluk, - ve ' kullanılabilir (1–50 karakter).",
        "required": "Bu alan zorunludur.",
        "security_key_format": "Güvenlik anahtarı 4–32 karakter olmalıdır.",
        "form": "Formda düzeltilmesi gereken alanlar var.",
        "MSISDN_TAKEN": "Bu numara ile zaten bir hesap var.",
    },
    "en": {
        "too_short": "The password must be at least 8 characters long.",
        "needs_upper": "Must contain at least one upper-case letter.",
        "needs_lower": "Must contain at least one lower-case letter.",
        "needs_special": "Must contain at least one special character (not a letter or digit).",
        "msisdn_format": (
            "The number must be 10 digits, start with 5 and contain digits only (e.g. 5321234567)."
        ),
        "mismatch": "The passwords do not match.",
        "email_format": "Enter a valid e-mail address (e.g. name@example.com).",
        "name_format": "Only letters, spaces, - and ' are allowed (1–50 characters).",
        "required": "This field is required.",
        "security_key_format": "The security key must be 4–32 characters long.",
        "form": "Some fields need to be corrected.",
        "MSISDN_TAKEN": "An account with this number already exists.",
    },
}
OTHER = {"tr": "en", "en": "tr"}


def use_language(page: Any, lang: str) -> None:
    page.goto("/")
    page.wait_for_selector("body[data-ready]")
    if page.get_attribute("html", "lang") != lang:
        page.click("#lang")
    page.wait_for_selector(f"html[lang={lang}]")


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_register_shows_every_broken_rule_before_sending(
    stack: Stack, new_page: Any, screenshot: Any, lang: str
) -> None:
    page = new_page("desktop")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/auth/register" in r.url else None)
    use_language(page, lang)
    sub = fresh_subscriber()
    sub.first_name, sub.last_name, sub.email, sub.password = "Ali2", "", "ali@", "abc"
    sub.msisdn, sub.security_key = "05321234567", "abc"
    fill_register(page, sub, confirm="abd")
    # the live checklist already tells which rules are missing
    assert page.get_attribute("li[data-rule=too_short]", "class") == "unmet"
    assert page.get_attribute("li[data-rule=needs_upper]", "class") == "unmet"
    assert page.get_attribute("li[data-rule=needs_special]", "class") == "unmet"
    assert page.get_attribute("li[data-rule=needs_lower]", "class") == "met"
    page.click("form button[type=submit]")
    m = MESSAGES[lang]
    assert field_codes(page, "password") == ["too_short", "needs_upper", "needs_special"]
    assert field_errors(page, "password") == [m["too_short"], m["needs_upper"], m["needs_special"]]
    assert field_errors(page, "msisdn") == [m["msisdn_format"]]
    assert field_errors(page, "passwordConfirm") == [m["mismatch"]]
    assert field_errors(page, "email") == [m["email_format"]]
    assert field_errors(page, "firstName") == [m["name_format"]]
    assert field_errors(page, "lastName") == [m["required"]]
    assert field_errors(page, "securityKey") == [m["security_key_format"]]
    assert banner_text(page, "error") == m["form"]
    # accessible: the input is marked invalid and points at its error, which is a live region
    msisdn = page.locator("input[name=msisdn]")
    assert msisdn.get_attribute("aria-invalid") == "true"
    error_id = page.get_attribute("[data-error-for=msisdn]", "id")
    assert error_id in (msisdn.get_attribute("aria-describedby") or "").split()
    assert page.get_attribute("[data-error-for=msisdn]", "aria-live") == "polite"
    assert page.evaluate("document.activeElement.name") == "firstName"  # the first bad field has focus
    screenshot(page, f"register-errors-{lang}", "desktop")

    page.fill("input[name=msisdn]", "532123456")  # 9 digits
    page.click("form button[type=submit]")
    assert field_errors(page, "msisdn") == [m["msisdn_format"]]
    page.fill("input[name=msisdn]", "53212345a7")  # not digits only
    page.click("form button[type=submit]")
    assert field_errors(page, "msisdn") == [m["msisdn_format"]]
    page.fill("input[name=msisdn]", "5321234567")
    page.fill("input[name=password]", "Abcdefgh")  # only the special character is missing
    page.click("form button[type=submit]")
    assert field_errors(page, "msisdn") == []
    assert field_codes(page, "password") == ["needs_special"]
    assert sent == [], "invalid forms must not be sent"

    # the messages follow a language switch
    page.click("#lang")
    page.wait_for_selector(f"html[lang={OTHER[lang]}]")
    assert field_errors(page, "password") == [MESSAGES[OTHER[lang]]["needs_special"]]
    assert field_errors(page, "passwordConfirm") == [MESSAGES[OTHER[lang]]["mismatch"]]


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_server_causes_and_login_checks_in_the_current_language(
    stack: Stack, new_page: Any, lang: str
) -> None:
    taken = fresh_subscriber()
    register_api(stack.api, taken)
    page = new_page("desktop")
    use_language(page, lang)
    fill_register(page, taken)
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=form-message].error")
    assert banner_text(page, "error") == MESSAGES[lang]["MSISDN_TAKEN"]

    login_ui(page, "0532123456", "x")
    assert field_errors(page, "msisdn") == [MESSAGES[lang]["msisdn_format"]]
    page.reload()  # the language choice is remembered
    page.wait_for_selector(f"html[lang={lang}]")
    assert page.locator("#lang").inner_text() == ("English" if lang == "tr" else "Türkçe")


def test_reset_and_change_password_forms_check_their_fields(stack: Stack, new_page: Any) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    page = new_page("desktop")
    page.goto("/#/forgot")
    page.fill("input[name=msisdn]", "0532 123 45 67")
    page.click("form[data-step=ask] button[type=submit]")
    assert field_codes(page, "msisdn") == ["msisdn_format"]
    page.fill("input[name=msisdn]", sub.msisdn)
    page.click("form[data-step=ask] button[type=submit]")
    page.wait_for_selector("form[data-step=reset]:not([hidden])")
    page.fill("input[name=code]", "12345")
    page.fill("input[name=newPassword]", "Yeni-Şifre1")
    page.fill("input[name=newPasswordConfirm]", "Yeni-Şifre2")
    page.click("form[data-step=reset] button[type=submit]")
    assert field_codes(page, "code") == ["code_format"]
    assert field_codes(page, "securityKey") == ["required"]
    assert field_codes(page, "newPasswordConfirm") == ["mismatch"]

    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    page.click("nav a[href='#/password']")
    page.fill("input[name=currentPassword]", sub.password)
    page.fill("input[name=newPassword]", sub.password)
    page.fill("input[name=newPasswordConfirm]", sub.password)
    page.click("form button[type=submit]")
    assert field_codes(page, "newPassword") == ["same_password"]
    page.fill("input[name=currentPassword]", "Yanlış-Şifre1")
    page.fill("input[name=newPassword]", "Yeni-Şifre3")
    page.fill("input[name=newPasswordConfirm]", "Yeni-Şifre3")
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=form-message].error")
    assert banner_text(page, "error") == "Mevcut şifre hatalı."
    page.fill("input[name=currentPassword]", sub.password)
    page.fill("input[name=newPassword]", "Yeni-Şifre3")
    page.fill("input[name=newPasswordConfirm]", "Yeni-Şifre3")
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=form-message].success")
    assert banner_text(page, "success") == "Şifreniz değiştirildi."
    ok = stack.api.post(
        "/api/v1/auth/login", json={"msisdn": sub.msisdn, "password": "Yeni-Şifre3", "rememberMe": False}
    )
    assert ok.status_code == 200, ok.text
