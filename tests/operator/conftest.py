"""Fixtures of the operator tests: kmock (the fake API server) with the operator running against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from operator_kit import KINDS, VERBS, Api


@pytest_asyncio.fixture()
async def api(kmock: Any) -> AsyncIterator[Api]:
    from kmock import ResourceInfo

    kmock.resources["cellcelly.io/v1alpha1/cellcellystacks"] = ResourceInfo(
        kind="CellCellyStack",
        singular="cellcellystack",
        namespaced=True,
        verbs=VERBS,
        subresources={"status"},
    )
    for key, (kind, namespaced) in KINDS.items():
        kmock.resources[key] = ResourceInfo(kind=kind, namespaced=namespaced, verbs=VERBS)
    url = str(kmock.url).rstrip("/")
    async with aiohttp.ClientSession() as session:
        yield Api(url, session)


class Operator:
    """`kopf run -A --standalone -m cellcelly_operator.handlers` in a subprocess, pointed at kmock;
    `restart()` stops it and starts a new one (what a rescheduled operator pod is)."""

    def __init__(self, api: Api, tmp_path: Path) -> None:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": api.url}}],
                    "users": [{"name": "test", "user": {}}],
                    "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
                    "current-context": "kmock",
                }
            )
        )
        self.log = tmp_path / "operator.log"
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), CELLCELLY_OPERATOR_TICK="1")
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("a") as out:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kopf",
                    "run",
                    "-A",
                    "--standalone",
                    "-m",
                    "cellcelly_operator.handlers",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

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
def operator(api: Api, tmp_path: Path) -> Any:
    op = Operator(api, tmp_path)
    try:
        yield op
    finally:
        op.stop()
        # shown by pytest on failure (-rA shows it always)
        sys.stdout.write(op.log.read_text()[-6000:])
