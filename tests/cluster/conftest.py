"""The `cluster` tier: one real control plane (scripts/k8s.sh up) per test session, torn down after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_cluster import HELM_SH, K8S_SH, Cluster, fetched, script, wait_for_build_hook

from cellcelly_testing import require

# tryfirst: outside pytest-timeout's wrapper, so the wait for a build is not the test's time
pytest_runtest_protocol = pytest.hookimpl(wrapper=True, tryfirst=True)(wait_for_build_hook)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require(fetched(), "the Kubernetes control plane is not built: run scripts/k8s.sh fetch (~10 min cold)")
    kubectl = script(HELM_SH, "kubectl")
    require(kubectl.returncode == 0, "kubectl not fetched: run scripts/helm.sh fetch")
    directory = tmp_path_factory.mktemp("k8s")
    up = script(K8S_SH, "up", str(directory))
    if up.returncode != 0:
        script(K8S_SH, "down", str(directory))
    require(up.returncode == 0, f"scripts/k8s.sh up failed: {up.stderr[-3000:]}")
    try:
        yield Cluster(directory, Path(kubectl.stdout.strip()), tmp_path_factory.mktemp("k8s-home"))
    finally:
        down = script(K8S_SH, "down", str(directory))
        assert down.returncode == 0, down.stderr
