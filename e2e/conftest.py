"""e2e fixtures: the helpers every test tier shares live in tests/ (cellcelly_testing)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:  # pytest puts tests/ on sys.path only when it collects from there
    sys.path.insert(0, str(TESTS))
