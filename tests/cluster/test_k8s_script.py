"""scripts/k8s.sh without a cluster: lint-clean, and a clear failure when nothing is built."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from k8s_cluster import K8S_SH

from cellcelly_testing import require

pytestmark = pytest.mark.platform


def test_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "shellcheck not installed: apt-get install shellcheck")
    assert shellcheck is not None
    done = subprocess.run(
        [shellcheck, "-x", K8S_SH.name], cwd=K8S_SH.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_up_without_a_build_says_what_to_run(tmp_path: Path) -> None:
    env = {**os.environ, "CELLCELLY_DOWNLOADS": str(tmp_path / "empty-cache")}
    done = subprocess.run(
        ["bash", str(K8S_SH), "up", str(tmp_path / "cluster")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "run scripts/k8s.sh fetch" in done.stderr
    assert not (tmp_path / "cluster").exists()  # nothing half-made to clean up


def test_down_of_a_directory_it_did_not_make_deletes_nothing(tmp_path: Path) -> None:
    keep = tmp_path / "precious"
    keep.write_text("x")
    done = subprocess.run(["bash", str(K8S_SH), "down", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert keep.read_text() == "x"
