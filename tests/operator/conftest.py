"""Fixtures of the operator tests: kmock (the fake API server) with the operator running against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from operator_kit import TEST_AGENT, Api, spec_writes

from cellcelly_dev import operator_bench as bench


@pytest.fixture()
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """kmock as bench.emulator_class() extends it: uids, generateName, server-side apply creating, label
    selectors and garbage collection, as a real server does them (the operator does not bend for it)."""
    return {**kmock_options, "cls": bench.emulator_class()}


@pytest_asyncio.fixture()
async def api(kmock: Any) -> AsyncIterator[Api]:
    bench.declare(kmock)
    url = str(kmock.url).rstrip("/")
    # named, so spec_writes can tell the tests' own writes (a user's) from the operator's
    async with aiohttp.ClientSession(headers={"User-Agent": TEST_AGENT}) as session:
        yield Api(url, session)


class Operator:
    """`kopf run -A --standalone -m cellcelly_operator.handlers` in a subprocess, pointed at kmock;
    `restart()` stops it and starts a new one (what a rescheduled operator pod is)."""

    def __init__(self, api: Api, tmp_path: Path) -> None:
        self.kubeconfig = bench.write_kubeconfig(tmp_path / "kubeconfig", api.url)
        self.log = tmp_path / "operator.log"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return bench.start_operator(self.kubeconfig, self.log, tick=1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.proc = self._start()


@pytest.fixture()
def operator(api: Api, kmock: Any, tmp_path: Path) -> Any:
    op = Operator(api, tmp_path)
    try:
        yield op
    finally:
        op.stop()
        # shown by pytest on failure (-rA shows it always)
        sys.stdout.write(op.log.read_text()[-6000:])
    # every flow: the operator never writes a stack's spec (the user's; a GitOps tool would revert it)
    assert spec_writes(list(kmock)) == []
