"""pytest's testpaths are listed one tier at a time (the cluster tiers last, pyproject.toml):
a folder of tests missing from the list would never run, so none may be."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_folder_of_tests_is_in_testpaths() -> None:
    paths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    listed = [ROOT / path for path in paths]
    folders = {test.parent for base in ("tests", "e2e") for test in (ROOT / base).rglob("test_*.py")}
    missing = sorted(
        str(f.relative_to(ROOT)) for f in folders if not any(f.is_relative_to(p) for p in listed)
    )
    assert not missing, f"tests pytest never collects: add {missing} to testpaths"
    assert listed[-2:] == [ROOT / "tests" / "cluster", ROOT / "e2e"], "the tiers that need a cluster run last"
