"""The compiled charging path (setup.py, mypyc) passes every unit test the pure one passes.

The services image ships the compiled build; the rest of the suite runs the source tree as pure
Python. So here the whole unit tier runs again, in a child pytest, on the build `make compile`
makes: the codec's cross-checks (python-diameter, tshark), its fuzz and property tests, and the
charging engine's money invariants, each on the compiled modules. The first test is what makes the
second mean anything: the child really imports the compiled modules, not the source tree's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellcelly_dev.compiled import build
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[2]
HOT = ["cellcelly.diameter.codec", "cellcelly.domain.charging", "cellcelly.dgw.gy", "cellcelly.codec"]


@pytest.fixture(scope="module")
def compiled() -> Path:
    require(shutil.which("gcc") is not None, "no C compiler (gcc) for the mypyc build: apt-get install gcc")
    directory = Path(os.environ.get("CELLCELLY_DOWNLOADS", Path.home() / ".cache" / "cellcelly"))
    return build(directory / "compiled")


def child_env(compiled: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(compiled), os.environ.get("PYTHONPATH", "")])}


def test_the_child_imports_the_compiled_modules(compiled: Path) -> None:
    probe = "import importlib, sys; print(*(importlib.import_module(m).__file__ for m in sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", probe, *HOT], env=child_env(compiled), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    assert len(files) == len(HOT)
    assert all(f.startswith(str(compiled)) and f.endswith(".so") for f in files), files


def test_the_unit_tier_passes_on_the_compiled_modules(compiled: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/unit"],
        cwd=ROOT,
        env=child_env(compiled),
        capture_output=True,
        text=True,
        timeout=1100,
    )
    tail = done.stdout[-4000:]
    assert done.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail
