"""The module the chart's Deployment and the image run registers the operator's handlers."""

from __future__ import annotations

import importlib
from pathlib import Path

import kopf
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_deployed_module_registers_handlers_for_cellcellystacks():
    module = importlib.import_module("cellcelly_operator.main")
    assert module.handlers is not None
    registry = kopf.get_default_registry()
    selectors = list(registry._changing.get_all_selectors()) + list(registry._spawning.get_all_selectors())
    assert {(s.group, s.version, s.any_name) for s in selectors} == {
        ("cellcelly.io", "v1alpha1", "cellcellystacks")
    }


def test_the_chart_and_the_image_run_that_module():
    deployment = (ROOT / "charts/cellcelly-operator/templates/deployment.yaml").read_text()
    dockerfile = (ROOT / "images/operator/Dockerfile").read_text()
    assert "- cellcelly_operator.main" in deployment
    assert '"cellcelly_operator.main"' in dockerfile
    assert (
        yaml.safe_load((ROOT / "charts/cellcelly-operator/Chart.yaml").read_text())["name"]
        == "cellcelly-operator"
    )
