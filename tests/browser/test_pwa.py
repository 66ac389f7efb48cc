"""The PWA: a valid manifest with real PNG icons, Chromium's installability check passes, the
service worker controls the page, the shell loads offline, and no personal API answer is cached."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from webui_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEVICES,
    Stack,
    fresh_subscriber,
    login_ui,
    register_api,
    wait_true,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_manifest_is_reachable_and_valid(stack: Stack, new_page: Any) -> None:
    r = stack.api.get("/manifest.webmanifest")
    assert r.status_code == 200
    assert "json" in r.headers["content-type"]
    manifest = r.json()
    assert manifest["name"] == "CellCelly Self Servis" and manifest["short_name"] == "CellCelly"
    assert manifest["display"] == "standalone"
    assert manifest["start_url"].startswith("/") and manifest["scope"] == "/"
    assert manifest["theme_color"].startswith("#") and manifest["background_color"].startswith("#")
    purposes: dict[str, set[str]] = {}
    for icon in manifest["icons"]:
        got = stack.api.get(icon["src"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png", icon
        w, h = png_size(got.content)
        assert f"{w}x{h}" == icon["sizes"], icon
        purposes.setdefault(icon["sizes"], set()).add(icon["purpose"])
    assert {"any", "maskable"} <= purposes["512x512"]
    assert "any" in purposes["192x192"]
    page = new_page("desktop")
    page.goto("/")
    assert page.get_attribute("link[rel=manifest]", "href") == "/manifest.webmanifest"


def wait_controlled(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector("body[data-ready]")
    wait_true(page, "navigator.serviceWorker.controller !== null")


def test_chromium_finds_the_app_installable(stack: Stack, browser: Any, tmp_path: Path) -> None:
    # a persistent profile: Playwright's ordinary contexts are incognito, where nothing installs
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        base_url=stack.base_url,
        **DEVICES["phone"],
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        wait_controlled(page)
        cdp = context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["errors"] == [], manifest["errors"]
        assert manifest["url"] == f"{stack.base_url}/manifest.webmanifest"
        installability = cdp.send("Page.getInstallabilityErrors")
        assert installability["installabilityErrors"] == [], installability
    finally:
        context.close()


def test_service_worker_controls_the_page_and_the_shell_loads_offline(
    stack: Stack, new_page: Any, screenshot: Any
) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    page = new_page("phone")
    wait_controlled(page)
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then(r => r.scope)")
    assert scope == f"{stack.base_url}/"
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL") == f"{stack.base_url}/sw.js"

    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    page.click("nav a[href='#/usage']")
    page.wait_for_selector("[data-testid=usage-empty], [data-testid=usage-table]")
    page.goto("/#/register")
    page.wait_for_selector(".pkg-card")
    cached = page.evaluate(
        """async () => {
          const urls = [];
          for (const name of await caches.keys()) {
            for (const req of await (await caches.open(name)).keys()) urls.push(new URL(req.url).pathname);
          }
          return urls;
        }"""
    )
    assert "/" in cached and "/js/app.js" in cached and "/icons/icon-512.png" in cached
    api_cached = sorted(u for u in cached if u.startswith("/api/"))
    assert api_cached == ["/api/v1/packages"], f"personal API answers cached: {api_cached}"

    page.context.set_offline(True)
    try:
        page.goto("/?offline=1#/login")  # a full load (not a hash change), served by the worker
        page.wait_for_selector("body[data-ready]")
        assert page.is_visible("input[name=msisdn]")
        assert page.is_visible("#offline")
        screenshot(page, "offline-login", "phone")
        page.goto("/?offline=2#/dashboard")  # the session is in sessionStorage; the API is out of reach
        page.wait_for_selector("[data-testid=form-message].error")
        assert "İnternet bağlantısı yok" in page.inner_text("[data-testid=form-message]")
        page.goto("/?offline=3#/register")  # the public catalogue is the one API answer kept for offline use
        page.wait_for_selector(".pkg-card")
    finally:
        page.context.set_offline(False)
    page.goto("/?online=1#/dashboard")
    page.wait_for_selector(".dash-body[data-loaded]")  # back online: the same session works
    assert page.is_hidden("#offline")
