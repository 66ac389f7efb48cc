"""A real Kubernetes control plane for tests: scripts/k8s.sh up/down, and kubectl/helm pointed at it."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cellcelly_testing import DOWNLOADS

ROOT = Path(__file__).resolve().parents[2]
K8S_SH = ROOT / "scripts" / "k8s.sh"
HELM_SH = ROOT / "scripts" / "helm.sh"


def script(path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(path), *args], capture_output=True, text=True, check=False, timeout=timeout
    )


# the longest a test waits for a build in progress: a cold one at nice 19 beside the other tiers
BUILD_WAIT = 2400.0
# scripts/images.sh's lock: CI builds the images in the background too
IMAGES_LOCK = Path(os.environ.get("CELLCELLY_IMAGES_WORK", "/var/tmp/cellcelly-images")) / ".lock"


def fetched(cache: Path = DOWNLOADS) -> bool:
    """Whether scripts/k8s.sh fetch has built the binaries (`up` fails fast with a message otherwise)."""
    return any(cache.glob("k8s/v*/.complete"))


def wait_for_build(timeout: float = BUILD_WAIT, poll: float = 5.0, cache: Path = DOWNLOADS) -> bool:
    """Whether the binaries are built, after waiting for a `k8s.sh fetch` that holds its lock.

    CI starts the cold build in the background and runs the tiers that need no cluster meanwhile;
    the first test that needs one waits here (outside its time-out: the hook in conftest.py).
    """
    deadline = time.monotonic() + timeout
    locks = cache.glob("k8s/v*/.fetch.lock")
    return all(wait_for_lock(lock, deadline, poll) for lock in locks) and fetched(cache)


def wait_for_lock(lock: Path, deadline: float, poll: float = 5.0) -> bool:
    """Whether the build holding `lock` (flock, from a script) has ended by `deadline`."""
    if not lock.exists():
        return True
    with lock.open("rb") as held:
        while True:
            try:
                fcntl.flock(held, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(poll)


def wait_for_build_hook(item: pytest.Item) -> Generator[None, object, object]:
    """A conftest's `pytest_runtest_protocol` wrapper, outside pytest-timeout's: a test on a
    cluster or the real node waits for the builds in progress (Kubernetes; the images, which only
    the node runs) before its time-out starts."""
    needs = set(getattr(item, "fixturenames", ()))
    if {"cluster", "node"} & needs:
        wait_for_build()
    if "node" in needs:
        wait_for_lock(IMAGES_LOCK, time.monotonic() + BUILD_WAIT)
    return (yield)


class Cluster:
    """One control plane started in `directory`; every client gets its kubeconfig explicitly."""

    def __init__(self, directory: Path, kubectl: Path, home: Path) -> None:
        self.directory = directory
        self.kubeconfig = directory / "kubeconfig"
        self.kubectl_binary = kubectl
        self.home = home
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": str(self.kubeconfig),
            # helm keeps config, cache and data under these; a test must not touch the user's
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, binary: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=120,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.kubectl_binary, *args, stdin=stdin)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl(*args, stdin=stdin)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ok("get", "-o", "json", *args))
        return result

    def apply_object(self, obj: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", *flags, "-f", "-", stdin=yaml.safe_dump(obj))

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Until the CRD is served. Not `kubectl wait --for=condition=Established`: on a CRD the
        server has just created, `.status.conditions` is still null and kubectl fails at once
        ("accessor error: <nil> is of the type <nil>") instead of waiting (seen in CI)."""
        deadline = time.monotonic() + timeout
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        while True:
            done = self.kubectl("get", f"crd/{crd}", "-o", f"jsonpath={jsonpath}")
            if done.returncode == 0 and done.stdout.strip() == "True":
                return
            assert time.monotonic() < deadline, f"crd/{crd} not Established after {timeout}s: {done.stderr}"
            time.sleep(0.3)

    def wait_gone(self, *args: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.kubectl("get", *args).returncode == 0:
            assert time.monotonic() < deadline, f"{args} still there after {timeout}s"
            time.sleep(0.3)


def helm_binary(major: int) -> Path | None:
    """The cached binary of helm `major` (scripts/helm.sh fetch), or None."""
    done = script(HELM_SH, "path", str(major))
    return Path(done.stdout.strip()) if done.returncode == 0 else None
