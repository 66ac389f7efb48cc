"""Fixtures shared by every tier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcelly_testing import FakeClock

# the kubernetes client (later tiers) reads $KUBECONFIG at import; keep tests away from real clusters
os.environ.pop("KUBECONFIG", None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path
