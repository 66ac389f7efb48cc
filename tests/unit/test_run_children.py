"""`make run`'s children in the parent's /readyz and /metrics (`deploy/child.py`'s `ChildrenUp`):
not ready until every child serves, each child's state a gauge."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cellcelly.deploy.child import Child, ChildrenUp

pytestmark = pytest.mark.unit


def children() -> list[Child]:
    return [Child("sf", ["sf"], dict), Child("dgw", ["dgw"], dict)]


def test_children_not_started_are_not_ready_and_each_is_named() -> None:
    up = ChildrenUp(children())
    with pytest.raises(RuntimeError, match=r"not serving: sf \(not started\), dgw \(not started\)"):
        up.check_ready()


def test_no_children_is_ready() -> None:
    ChildrenUp([]).check_ready()  # nothing to wait for: raises nothing


def test_each_child_is_a_gauge() -> None:
    registry = CollectorRegistry()
    registry.register(ChildrenUp(children()))
    text = generate_latest(registry).decode()
    assert 'cellcelly_run_child_up{child="sf"} 0.0' in text
    assert 'cellcelly_run_child_up{child="dgw"} 0.0' in text
