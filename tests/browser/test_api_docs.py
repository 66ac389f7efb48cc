"""The API docs pages of the MW (/api/docs, under its Content-Security-Policy) and the OCS (/docs)
list their operations in Chromium with no request leaving the machine: every request to another
host is aborted, as it would fail offline, and a CSP violation fails the test."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from webui_helpers import Stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]


def operations(browser: Any, base: str, path: str) -> tuple[set[str], list[str]]:
    """The operation paths Swagger UI shows at base+path, and what went wrong on the way (requests
    elsewhere, CSP violations, console errors)."""
    context = browser.new_context(base_url=base)
    context.set_default_timeout(15_000)
    wrong: list[str] = []
    here = urlsplit(base).netloc

    def only_here(route: Any) -> None:
        if urlsplit(route.request.url).netloc != here:
            wrong.append(f"request elsewhere: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    try:
        context.route("**/*", only_here)
        page = context.new_page()
        page.on(
            "console", lambda m: wrong.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        page.on("pageerror", lambda exc: wrong.append(f"page error: {exc}"))
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation',"
            " e => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))"
        )
        page.goto(path)
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)
        shown = {
            text.strip().replace("\u200b", "")
            for text in page.locator(".opblock-summary-path").all_inner_texts()
        }
        return shown, wrong
    finally:
        context.close()


def documented(base: str, openapi: str) -> set[str]:
    return set(httpx.get(base + openapi, timeout=10).json()["paths"])


def test_the_mw_docs_list_every_operation_under_its_csp(stack: Stack, browser: Any) -> None:
    answer = httpx.get(stack.base_url + "/api/docs", timeout=10)
    assert "script-src 'self'" in answer.headers["content-security-policy"]  # the policy is on the page
    shown, wrong = operations(browser, stack.base_url, "/api/docs")
    assert not wrong
    paths = documented(stack.base_url, "/api/openapi.json")
    assert "/api/v1/auth/login" in paths
    assert shown == paths


def test_the_ocs_docs_list_every_operation_offline(stack: Stack, browser: Any) -> None:
    shown, wrong = operations(browser, stack.ocs_url, "/docs")
    assert not wrong
    paths = documented(stack.ocs_url, "/openapi.json")
    assert "/nchf-convergedcharging/v3/chargingdata" in paths
    assert shown == paths


def test_the_docs_files_come_from_the_service(stack: Stack) -> None:
    page = httpx.get(stack.ocs_url + "/docs", timeout=10).text
    assert "cdn" not in page.lower() and "<script>" not in page  # no CDN, no inline script
    script = httpx.get(stack.ocs_url + "/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    start = httpx.get(stack.ocs_url + "/docs/start.js", timeout=10).text
    assert '"/openapi.json"' in start
