"""Browser-test fixtures: the real embedded stack (`cellcelly run`) in a subprocess with a real
SMTP server (aiosmtpd) catching its mail, and Debian Chromium driven by Python Playwright.

Playwright's own browser download fails on these machines, so Chromium is Debian's
(/usr/bin/chromium, `apt-get install chromium`); missing, the tests skip on a laptop and fail
under CI=true. One stack and one browser serve the whole session; each test gets fresh contexts.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from webui_helpers import CHROMIUM, CHROMIUM_ARGS, DEVICES, Inbox, Stack

from cellcelly_testing import require

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ADMIN_TOKEN = "browser-tests-admin-token"


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"cellcelly run exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy within {timeout}s:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    require(Path(CHROMIUM).exists(), "Chromium not installed: apt-get install chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        require(False, "Python playwright not installed: pip install playwright (never `playwright install`)")
    return CHROMIUM


@contextmanager
def run_stack(data_dir: Path, **extra_env: str) -> Iterator[Stack]:
    """`cellcelly run` on free ports with its own SMTP server; stopped (TERM, then KILL) on exit."""
    from aiosmtpd.controller import Controller

    from cellcelly_dev.devservers import free_port

    cli = Path(sys.executable).parent / "cellcelly"
    if not cli.exists():
        found = shutil.which("cellcelly")
        require(found is not None, "the cellcelly command is not installed (pip install -e .)")
        cli = Path(str(found))
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    mw_port, ocs_port = free_port(), free_port()
    env = {
        **os.environ,
        "CELLCELLY_DATA_DIR": str(data_dir),
        "CELLCELLY_MW_PORT": str(mw_port),
        "CELLCELLY_OCS_PORT": str(ocs_port),
        "CELLCELLY_OCS_WIRE_PORT": str(free_port()),
        "CELLCELLY_DGW_PORT": str(free_port()),
        "CELLCELLY_IVR_PORT": str(free_port()),
        "CELLCELLY_SMTP_HOST": "127.0.0.1",
        "CELLCELLY_SMTP_PORT": str(smtp_port),
        "CELLCELLY_ADMIN_TOKEN": ADMIN_TOKEN,
        **extra_env,
    }
    log_path = data_dir / "stack.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [str(cli), "run"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{mw_port}"
        _wait_healthy(f"{base}/healthz", process, log_path)
        running = Stack(base, f"http://127.0.0.1:{ocs_port}", inbox, log_path, process, ADMIN_TOKEN)
        try:
            yield running
        finally:
            running.api.close()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        smtp.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Chromium under Playwright's sync API, per module: while it lives, its event loop counts as
    running in the main thread, and every asyncio test after the browser tests would fail with
    "Cannot run the event loop while another loop is running" (a session-wide one outlives them)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Any, stack: Stack) -> Iterator[Callable[..., Any]]:
    """new_page(device) -> a Playwright page in a fresh context; uncaught page errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(device: str = "desktop", **extra: Any) -> Any:
        context = browser.new_context(base_url=stack.base_url, **DEVICES[device], **extra)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, device: str) -> Path:
        path = SCREENSHOTS / f"{name}-{device}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def short_token_stack(tmp_path: Path, chromium_path: str) -> Iterator[Stack]:
    """A stack of its own whose access tokens live 2 seconds (+ the MW's 30 s leeway), to see them renewed."""
    with run_stack(tmp_path, CELLCELLY_MW_ACCESS_SECONDS="2") as running:
        yield running
