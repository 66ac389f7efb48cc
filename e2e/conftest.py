"""e2e fixtures: the helpers every test tier shares live in tests/ (cellcelly_testing)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
# pytest puts tests/ (and its folders) on sys.path only when it collects from there; the real node's
# e2e uses the cluster tier's node fixture and the integration tier's Gy client
for folder in (TESTS, TESTS / "cluster", TESTS / "integration"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import pytest  # noqa: E402 (after the path above)
from k8s_cluster import wait_for_build_hook  # noqa: E402

# the real node's e2e waits for the builds in progress (Kubernetes, the images) outside its time-out
pytest_runtest_protocol = pytest.hookimpl(wrapper=True, tryfirst=True)(wait_for_build_hook)
