"""Benchmarks and throwaway development servers (PostgreSQL, Kafka, VoltDB) for `make bench` and the tests.

Kept out of the `cellcelly` package on purpose: nothing here ships in the service or operator images.
Importable from a source checkout only (pytest's `pythonpath`, `make bench` sets PYTHONPATH).
"""

from __future__ import annotations

import os
from pathlib import Path

TOOLS_DIR = str(Path(__file__).resolve().parent.parent)


def with_tools_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with this package importable, for the `python -m cellcelly_dev.X --serve` children."""
    path = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (TOOLS_DIR, path) if p)}
