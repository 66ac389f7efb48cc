"""scripts/k8s.sh without a cluster: lint-clean, and a clear failure when nothing is built."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from k8s_cluster import K8S_SH, wait_for_build

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


def test_a_second_fetch_and_the_tests_wait_for_the_build_in_progress(tmp_path: Path) -> None:
    """CI builds Kubernetes in the background while the first tiers run: a second `fetch` and
    the cluster tier's wait both block on the build's lock, then find the binaries."""
    version = tmp_path / "k8s" / "v1.36.3"
    (version / "bin").mkdir(parents=True)
    lock = (version / ".fetch.lock").open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX)  # a build in progress
    assert not wait_for_build(timeout=0.3, poll=0.05, cache=tmp_path)
    env = {**os.environ, "CELLCELLY_DOWNLOADS": str(tmp_path), "K8S_VERSION": "1.36.3"}
    second = subprocess.Popen(["bash", str(K8S_SH), "fetch"], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    if second.poll() is not None:
        second.communicate()
        pytest.fail("a second fetch did not wait for the first")
    for binary in ("kubelet", "kube-proxy", "coredns"):  # what the first build leaves
        (version / "bin" / binary).write_text("#!/bin/sh\n")
        (version / "bin" / binary).chmod(0o755)
    (version / ".complete").touch()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    _, stderr = second.communicate(timeout=10)
    assert second.returncode == 0, stderr
    assert wait_for_build(timeout=1, poll=0.05, cache=tmp_path)
