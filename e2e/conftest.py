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
