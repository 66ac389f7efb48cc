"""kopf running the operator (`kopf run -A`, a subprocess) against kmock, a fake API server, over HTTP.

Every operator flow runs on a real API server (tests/cluster/test_cluster_flows.py, test_cluster_failover.py:
kwok pods, the controller-manager's GC, the chart's own ServiceAccount). What stays here is what kmock adds
that a real server cannot show: it keeps every status field it is sent, where a real server prunes a field
the CRD does not declare without a word, so `stack_status` checks the operator's status against the
CRD's schema on every read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cellcelly_operator import children, failover, spec
from operator_kit import Api, crd_schema, eventually, pruned, stack_body

pytestmark = [pytest.mark.operator, pytest.mark.timeout(120)]

NS = "telco"


def expected(name: str, spec_: dict[str, Any]) -> list[tuple[str, str]]:
    stack = spec.from_body(stack_body(name, spec_))
    return [(children.kind_of(m).item(NS, m["metadata"]["name"]), m["kind"]) for m in children.build(stack)]


async def children_exist(api: Api, name: str, spec_: dict[str, Any]) -> list[dict[str, Any]] | None:
    got = []
    for path, _ in expected(name, spec_):
        obj = await api.get(path)
        if obj is None:
            return None
        got.append(obj)
    return got


async def stack_status(api: Api, name: str) -> dict[str, Any]:
    """The stack's status, checked to hold only what the CRD declares (else a cluster would prune it)."""
    st = dict(((await api.get(api.stack(name))) or {}).get("status") or {})
    schema = crd_schema()
    assert schema is not None
    assert pruned(schema["properties"]["status"], st, "status") == []
    return st


def condition(st: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in st.get("conditions") or [] if c["type"] == kind), None)


def crashing_pod(name: str, stack: str, component: str, reason: str = "CrashLoopBackOff") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/name": component,
                "app.kubernetes.io/instance": stack,
                "app.kubernetes.io/part-of": "cellcelly",
                "app.kubernetes.io/managed-by": "cellcelly-operator",
            },
        },
        "spec": {"containers": [{"name": component, "image": "cellcelly"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": component,
                    "restartCount": 7,
                    "ready": False,
                    "state": {"waiting": {"reason": reason}},
                }
            ],
        },
    }


async def test_a_crash_looping_pod_is_restarted_within_budget_and_recorded(api: Api, operator: Any) -> None:
    """The flow that writes the most status (conditions, healing, restarts, restartBaseline), each read
    checked against the CRD's status schema: a field the CRD lacked would vanish on a real server
    (tests/cluster proves the flow itself), here it fails the read."""
    body = stack_body("demo", {"selfHealing": {"maxRestarts": 1, "windowSeconds": 600}})
    await api.create(f"/apis/cellcelly.io/v1alpha1/namespaces/{NS}/cellcellystacks", body)
    await eventually(lambda: children_exist(api, "demo", body["spec"]), what="every child")
    await api.create(f"/api/v1/namespaces/{NS}/pods", crashing_pod("demo-ocs-abc", "demo", "ocs"))
    # someone else's pod with the same component name is not ours to touch
    await api.create(f"/api/v1/namespaces/{NS}/pods", crashing_pod("other-ocs-xyz", "other", "ocs"))

    async def restarted() -> bool:
        return await api.get(f"/api/v1/namespaces/{NS}/pods/demo-ocs-abc") is None

    await eventually(restarted, what="the crash-looping pod deleted")
    st = await eventually(lambda: _healed(api), what="status.healing")
    (entry,) = st["healing"]
    assert entry["pod"] == "demo-ocs-abc" and entry["component"] == "ocs"
    assert entry["reason"] == "CrashLoopBackOff" and entry["action"] == "deleted"
    assert st["restarts"]["ocs"]["count"] == 1
    events = await api.items(f"/apis/events.k8s.io/v1/namespaces/{NS}/events")
    restarts = [e for e in events if e["reason"] == "PodRestarted"]
    assert len(restarts) == 1 and "demo-ocs-abc" in restarts[0]["note"]
    assert restarts[0]["regarding"]["name"] == "demo" and restarts[0]["type"] == "Warning"
    assert await api.get(f"/api/v1/namespaces/{NS}/pods/other-ocs-xyz") is not None

    # the budget (1 per window) is spent: the next sick pod stays, the stack says Degraded
    await api.create(f"/api/v1/namespaces/{NS}/pods", crashing_pod("demo-ocs-def", "demo", "ocs"))

    async def degraded() -> dict[str, Any] | None:
        st = await stack_status(api, "demo")
        return st if condition(st, "Degraded") == "True" else None

    st = await eventually(degraded, what="Degraded=True")
    assert await api.get(f"/api/v1/namespaces/{NS}/pods/demo-ocs-def") is not None
    assert st["healing"][-1]["action"] == "skipped"


async def _healed(api: Api) -> dict[str, Any] | None:
    st = await stack_status(api, "demo")
    return st if st.get("healing") else None


async def test_tcp_probe_sees_a_real_listener_come_and_go() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert await failover.tcp_probe("127.0.0.1", port, 1.0)
    server.close()
    await server.wait_closed()
    assert not await failover.tcp_probe("127.0.0.1", port, 1.0)
