"""Access tokens are short-lived: on TOKEN_INVALID the page renews the token once through
/auth/refresh (one call even when several requests fail together) and carries on; when the
refresh token is dead too, it goes back to login and says why."""

from __future__ import annotations

import time
from typing import Any

import pytest
from webui_helpers import DEVICES, Stack, banner_text, fresh_subscriber, login_ui, register_api

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]


def test_expired_access_token_is_renewed_once_then_a_dead_session_goes_to_login(
    short_token_stack: Stack, browser: Any
) -> None:
    stack = short_token_stack
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    context = browser.new_context(base_url=stack.base_url, **DEVICES["desktop"])
    try:
        page = context.new_page()
        calls: list[tuple[str, int]] = []
        page.on(
            "response",
            lambda r: calls.append((r.url.split("/api/v1")[-1], r.status)) if "/api/v1/" in r.url else None,
        )
        login_ui(page, sub.msisdn, sub.password)
        page.wait_for_selector(".dash-body[data-loaded]")
        time.sleep(2 + 30 + 1.5)  # past expiry and the MW's 30 s leeway
        calls.clear()
        with page.expect_response(lambda r: r.url.endswith("/api/v1/me/balance") and r.status == 200):
            page.click(".toolbar button")
        page.wait_for_timeout(300)
        assert calls.count(("/auth/refresh", 200)) == 1, calls
        assert ("/me/balance", 401) in calls and ("/me", 200) in calls, calls
        assert page.locator("[data-testid=form-message].error").count() == 0

        # the refresh token is revoked elsewhere (logout); a reload has no access token in memory,
        # the renewal fails, and the session ends
        refresh = page.evaluate("sessionStorage.getItem('cc.refresh')")
        assert stack.api.post("/api/v1/auth/logout", json={"refreshToken": refresh}).status_code == 204
        page.reload()
        page.wait_for_selector("body[data-view=login]")
        assert banner_text(page, "error") == "Oturumunuzun süresi doldu. Lütfen yeniden giriş yapın."
        assert page.evaluate("sessionStorage.getItem('cc.refresh')") is None
    finally:
        context.close()
