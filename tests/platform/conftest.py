"""Fixtures of the platform tests: the real helm 4 and helm 3 binaries (scripts/helm.sh fetch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from platform_helm import Helm, helm_path

from cellcelly_testing import require


@pytest.fixture(params=[4, 3], ids=["helm4", "helm3"])
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    major: int = request.param
    binary = helm_path(major)
    require(binary is not None, f"helm {major} not fetched: run scripts/helm.sh fetch")
    assert binary is not None
    home: Path = tmp_path_factory.mktemp(f"helm{major}-home")
    return Helm(binary, home)


@pytest.fixture
def helm4(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm 4 alone, for what helm 3 cannot do offline (an install --dry-run=client needs a cluster)."""
    binary = helm_path(4)
    require(binary is not None, "helm 4 not fetched: run scripts/helm.sh fetch")
    assert binary is not None
    return Helm(binary, tmp_path_factory.mktemp("helm4-home"))
