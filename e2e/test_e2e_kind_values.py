"""What the kind e2e installs is valid here already: the stack chart renders e2e/kind-values.yaml
into a CellCellyStack the CRD's schema accepts, one replica of everything, the MW behind the ingress
that e2e/kind-cluster.yaml maps to the runner's 127.0.0.1:8080."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cellcelly_testing import require

pytestmark = [pytest.mark.platform, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "e2e"


def helm3() -> Path | None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm.sh"), "path", "3"], capture_output=True, text=True, check=False
    )
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def rendered(tmp_path: Path) -> list[dict[str, Any]]:
    binary = helm3()
    require(binary is not None, "helm 3 not fetched: run scripts/helm.sh fetch")
    assert binary is not None
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(binary), "template", "e2e", str(ROOT / "charts" / "cellcelly-stack"), "--namespace", "telco"]
        + ["--values", str(E2E / "kind-values.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "cellcellystacks.cellcelly.io.yaml").read_text(encoding="utf-8"))
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def test_kind_values_render_a_valid_small_stack(tmp_path: Path) -> None:
    docs = rendered(tmp_path)
    (stack,) = [d for d in docs if d["kind"] == "CellCellyStack"]
    errors = [e.message for e in jsonschema.Draft202012Validator(crd_schema()).iter_errors(stack)]
    assert errors == []
    spec = stack["spec"]
    assert stack["metadata"]["name"] == "e2e"
    assert [spec[b]["replicas"] for b in ("kafka", "voltdb", "hazelcast")] == [1, 1, 1]
    assert spec["voltdb"]["kfactor"] == 0
    services = spec["services"]
    assert all(services[s]["replicas"] == 1 for s in ("ocs", "dgw", "mw", "sf", "notifier"))
    assert services["sms"]["replicas"] == 0 and services["ivr"]["replicas"] == 0
    assert services["mw"]["ingress"] == {**services["mw"]["ingress"], "enabled": True, "host": "localhost"}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert {spec["secrets"]["tokenSecretRef"]["name"], spec["secrets"]["adminTokenRef"]["name"]} <= secrets


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    (stack,) = [d for d in rendered(tmp_path) if d["kind"] == "CellCellyStack"]
    stack["spec"]["services"]["mw"]["ingress"]["host"] = "Not A Host!"
    assert list(jsonschema.Draft202012Validator(crd_schema()).iter_errors(stack))


def test_kind_cluster_maps_the_ingress_to_the_workflows_url() -> None:
    cluster = yaml.safe_load((E2E / "kind-cluster.yaml").read_text(encoding="utf-8"))
    (mapping,) = cluster["nodes"][0]["extraPortMappings"]
    assert mapping["containerPort"] == 80 and mapping["listenAddress"] == "127.0.0.1"
    workflow = (ROOT / ".github" / "workflows" / "e2e-kind.yml").read_text(encoding="utf-8")
    assert f"E2E_MW_URL: http://localhost:{mapping['hostPort']}" in workflow
