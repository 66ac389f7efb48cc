"""The e2e scenario on a kind cluster: the charts, one CellCellyStack, Ready, traffic, heal, delete.

Needs docker (with an engine that answers), kind, kubectl and helm. Where they are missing the test
is skipped, also under CI=true: these machines can run no Docker engine, so kind cannot start on
them (the one skip CI allows). .github/workflows/e2e-kind.yml runs it on GitHub's runners.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kind_stack import ROOT, KindStack
from scenario import SERVICES, run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

CLUSTER = os.environ.get("KIND_CLUSTER", "cellcelly-e2e")


def missing() -> str | None:
    """Why kind cannot run here, or None."""
    reasons = []
    tools = [t for t in ("docker", "kind", "kubectl", "helm") if shutil.which(t) is None]
    if tools:
        reasons.append(f"{', '.join(tools)} not installed")
    if shutil.which("docker") is not None:
        try:
            info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20, check=False)
            if info.returncode != 0:
                last = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
                reasons.append(f"no Docker engine answers ({last})")
        except subprocess.TimeoutExpired:
            reasons.append("docker info did not answer within 20 s")
    return "; ".join(reasons) or None


def kind(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["kind", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"kind {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = missing()
    if reason is not None:
        pytest.skip(
            f"kind e2e needs docker with a running engine, kind, kubectl and helm: {reason}. Skipped "
            "under CI=true too: no Docker engine can run on this project's machines; "
            ".github/workflows/e2e-kind.yml runs it on GitHub's runners"
        )
    created = CLUSTER not in kind("get", "clusters").stdout.split()
    if created:
        kind("create", "cluster", "--name", CLUSTER, "--config", str(ROOT / "e2e" / "kind-cluster.yaml"))
    if os.environ.get("E2E_IMAGES_LOADED") != "1":  # the workflow builds and loads them in its own steps
        for step in ("build", "kind-load"):
            done = subprocess.run(
                ["bash", "scripts/images.sh", step],
                cwd=ROOT,
                env={**os.environ, "ENGINE": "docker", "KIND_CLUSTER": CLUSTER},
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    path = tmp_path_factory.mktemp("kind") / "kubeconfig"
    path.write_text(kind("get", "kubeconfig", "--name", CLUSTER).stdout)
    yield path
    if created and os.environ.get("E2E_KEEP_CLUSTER") != "1":
        kind("delete", "cluster", "--name", CLUSTER)


def test_scenario_on_kind(kubeconfig: Path) -> None:
    stack = KindStack(kubeconfig)
    stack.install()
    assert stack.children(), "the stack is Ready but the operator created nothing"
    try:
        outcome = run_scenario(stack)
    finally:
        stack.drop_forwards()
    assert all(outcome.signed_up.used[s] == 0 for s in SERVICES)
    assert outcome.after_traffic.moved_from(outcome.signed_up)
    assert outcome.after_heal == outcome.after_traffic, outcome.healed
    assert outcome.after_more_traffic.moved_from(outcome.after_heal)
    assert stack.children() == []
