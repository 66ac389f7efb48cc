"""Helpers every test tier shares (importable by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
# where the scripts cache what they fetch and build (jars, Kubernetes, the compiled package)
DOWNLOADS = Path(os.environ.get("CELLCELLY_DOWNLOADS", Path.home() / ".cache" / "cellcelly"))


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop, fail under CI: a back end that can run here must run in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def python_lines(script: str, **env: str) -> list[str]:
    """What `script` (dedented) prints, run by this interpreter in a process of its own: for what is
    the whole process's (its collector, its scheduler slice)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    return done.stdout.splitlines()


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class FakeClock:
    """A settable clock (epoch seconds) for services that take `clock=`."""

    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# every listening port of the embedded stack on an ephemeral one (tests run beside `make run`)
EPHEMERAL_PORTS = {"ocs_port": 0, "ocs_wire_port": 0, "dgw_port": 0, "mw_port": 0, "ivr_port": 0}


@contextlib.asynccontextmanager
async def running_stack(data_dir: Any, **settings: Any) -> AsyncIterator[Any]:
    """The stack `make run` starts (`EmbeddedStack`, with the demo subscriber) on ephemeral ports."""
    from cellcelly.deploy.backends import open_backends
    from cellcelly.deploy.embedded import EmbeddedStack, seed_demo
    from cellcelly.settings import Settings

    components = open_backends(Settings(data_dir=data_dir, **{**EPHEMERAL_PORTS, **settings}))
    try:
        seed_demo(components)
        stack = EmbeddedStack(components)
        assert not stack.health().ok
        await stack.start()
        # every deployable in it reports itself ok once started (each was not-ok before: Group)
        assert stack.deployables and all(d.health().ok for d in stack.deployables), stack.health()
        assert stack.health().ok
        try:
            yield stack
        finally:
            await stack.stop()
    finally:
        await components.aclose()


class Inbox:
    """An aiosmtpd handler keeping every message a real SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def wait_for(self, to: str, count: int = 1, timeout: float = 20.0) -> Message:
        """The count-th message to `to` (1-based), waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [m for m in self.messages if to.lower() in str(m.get("To", "")).lower()]
            if len(mine) >= count:
                return mine[count - 1]
            time.sleep(0.1)
        raise AssertionError(f"no mail #{count} to {to} within {timeout}s (got {len(self.messages)} in all)")


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port of 127.0.0.1 keeping what it receives."""
    from aiosmtpd.controller import Controller

    from cellcelly_dev.devservers import free_port

    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextlib.contextmanager
def running_voltdb(*, username: str = "", password: str = "", schema: bool = True) -> Iterator[str]:
    """`voltdb_server(...)` for a fixture: a skip (a failure when CI=true) where VoltDB cannot run."""
    from cellcelly_dev.devservers import VoltDBUnavailable, voltdb_missing, voltdb_server

    missing = voltdb_missing()
    require(missing is None, f"VoltDB cannot run here: {missing}")
    with contextlib.ExitStack() as stack:
        try:
            servers = stack.enter_context(voltdb_server(username=username, password=password, schema=schema))
        except VoltDBUnavailable as exc:
            require(False, f"VoltDB cannot run here: {exc}")
        yield servers
