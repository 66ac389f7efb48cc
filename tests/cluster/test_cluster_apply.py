"""How the operator writes, on the real API server (scripts/k8s.sh): children by server-side apply, so a
field a new operator version no longer sets is removed from the child (a merge patch leaves it behind), a
field someone else set is left alone, a hand edit of a field the operator sets is undone, and a converged
pass writes nothing; uids are the server's; the operator's own Events and kopf's show on the stack.

The writes run in this process (`reconcile.apply_all`, the operator's own code, through its own client)
where a test plays two operator versions; Events come from `kopf run`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cellcelly_operator import children, kafka, reconcile, spec
from cellcelly_operator.kube import FIELD_MANAGER, Kube
from chart_operator import ChartOperator, eventually, install_crd, remove_crd
from k8s_cluster import Cluster

from cellcelly_dev import operator_bench as bench

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

NAME = "apply"


@pytest.fixture
def crd(cluster: Cluster) -> Iterator[None]:
    install_crd(cluster)
    try:
        yield
    finally:
        remove_crd(cluster)


def make_stack(cluster: Cluster, ns: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cluster.ok("create", "namespace", ns)
    body = {
        "apiVersion": "cellcelly.io/v1alpha1",
        "kind": "CellCellyStack",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": {"version": "0.1.0", **(extra or {})},
    }
    done = cluster.apply_object(body)
    assert done.returncode == 0, done.stderr
    return cluster.get("ccs", NAME, "-n", ns)


def client(cluster: Cluster) -> Kube:
    """The operator's own client, logged in as kopf logs in from a kubeconfig."""
    return Kube(bench.login(cluster.kubeconfig))


def apply_all(cluster: Cluster, stack: spec.Stack) -> reconcile.Applied:
    async def go() -> reconcile.Applied:
        kube = client(cluster)
        try:
            return await reconcile.apply_all(kube, stack)
        finally:
            await kube.close()

    return asyncio.run(go())


def test_children_are_server_side_applied_and_a_dropped_field_is_removed(
    cluster: Cluster, crd: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = "apply-fields"
    served = make_stack(cluster, ns)
    stack = spec.from_body(served)
    assert stack.uid == served["metadata"]["uid"]  # the server's: the operator takes it as it is
    config = f"{NAME}-config"

    def cm() -> dict[str, Any]:
        return cluster.get("configmap", config, "-n", ns, "--show-managed-fields")

    # "version 1" of the operator sets one more ConfigMap key and one more label on every child
    build = children.build

    def build_v1(s: spec.Stack) -> list[dict[str, Any]]:
        out = build(s)
        for m in out:
            m["metadata"]["labels"] = {**m["metadata"]["labels"], "cellcelly.io/v1-only": "yes"}
            if m["kind"] == "ConfigMap" and m["metadata"]["name"] == config:
                m["data"] = {**m["data"], "CELLCELLY_V1_ONLY": "yes"}
        return out

    monkeypatch.setattr(children, "build", build_v1)
    first = apply_all(cluster, stack)
    assert first.created and not first.patched, first
    assert cm()["data"]["CELLCELLY_V1_ONLY"] == "yes"
    owners = {(e["manager"], e["operation"]) for e in cm()["metadata"]["managedFields"]}
    assert owners == {(FIELD_MANAGER, "Apply")}, owners
    # the Kafka cluster id is the server's uid, as KRaft wants it (a base64url UUID)
    assert kafka.cluster_id(stack).rstrip("=") and len(kafka.cluster_id(stack)) == 22

    # someone else's label (kubectl): not the operator's, so left alone
    cluster.ok("label", "configmap", config, "-n", ns, "team=billing")

    # "version 2" no longer sets them: the server removes what the operator's apply alone owned
    monkeypatch.setattr(children, "build", build)
    second = apply_all(cluster, stack)
    assert second.patched and not second.created, second
    got = cm()
    assert "CELLCELLY_V1_ONLY" not in got["data"], got["data"]
    assert "cellcelly.io/v1-only" not in got["metadata"]["labels"], got["metadata"]["labels"]
    assert got["metadata"]["labels"]["team"] == "billing"
    deploy = cluster.get("deployment", f"{NAME}-ocs", "-n", ns)
    assert "cellcelly.io/v1-only" not in deploy["metadata"]["labels"]

    # a converged pass writes nothing
    third = apply_all(cluster, stack)
    assert not third.created and not third.patched, third

    # a hand edit of a value the operator sets is drift: the next pass puts it back (a forced apply)
    key = sorted(got["data"])[0]
    want = got["data"][key]
    cluster.ok(
        "patch", "configmap", config, "-n", ns, "--type", "merge", "-p", json.dumps({"data": {key: "x"}})
    )
    fourth = apply_all(cluster, stack)
    assert fourth.patched == [f"ConfigMap/{config}"], fourth
    assert cm()["data"][key] == want
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_events_of_the_operator_and_of_kopf_name_the_stack(
    cluster: Cluster, crd: None, tmp_path: Path
) -> None:
    """A ConfigMap in the operator's way, made immutable: applying the stack's fails, and kopf posts its
    own Event (core/v1, `involvedObject` the stack, from kopf) as it retries. Once it is gone, monitoring
    on without the Prometheus Operator's CRD: the operator's own Event (events.k8s.io/v1, `regarding` the
    stack), told once. `kubectl get events` lists both on the stack, by its uid (the server's)."""
    ns = "apply-events"
    cluster.ok("create", "namespace", ns)
    blocker = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-config", "namespace": ns},
        "immutable": True,
        "data": {"in": "the way"},
    }
    done = cluster.apply_object(blocker)
    assert done.returncode == 0, done.stderr
    body = {
        "apiVersion": "cellcelly.io/v1alpha1",
        "kind": "CellCellyStack",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": {"version": "0.1.0", "monitoring": {"enabled": True}},
    }
    op = ChartOperator(cluster, tmp_path, "cluster", "cellcelly-system").install().start()
    try:
        done = cluster.apply_object(body)
        assert done.returncode == 0, done.stderr
        uid = cluster.get("ccs", NAME, "-n", ns)["metadata"]["uid"]

        def on_stack(reason: str | None = None) -> list[dict[str, Any]]:
            items = cluster.get("events", "-n", ns)["items"]
            return [
                e
                for e in items
                if e.get("involvedObject", {}).get("uid") == uid and reason in (None, e.get("reason"))
            ]

        def kopfs() -> list[dict[str, Any]]:
            return [e for e in on_stack() if (e.get("source") or {}).get("component") == "kopf"]

        failed = eventually(kopfs, "kopf's own Event about the failing handler")
        assert failed[0]["involvedObject"]["kind"] == "CellCellyStack", failed[0]
        assert failed[0]["type"] == "Error" and "immutable" in failed[0]["message"], failed[0]
        # out of the way: the next try applies the stack, and tells what monitoring lacks
        cluster.ok("delete", "configmap", f"{NAME}-config", "-n", ns)
        (told,) = eventually(
            lambda: on_stack("PrometheusOperatorMissing"), "the operator's Event about monitoring", timeout=90
        )
        assert told["involvedObject"]["kind"] == "CellCellyStack" and told["involvedObject"]["name"] == NAME
        assert told["type"] == "Warning"
        time.sleep(3)  # told once, not on every tick
        assert len(on_stack("PrometheusOperatorMissing")) == 1
        cluster.kubectl("delete", "ccs", NAME, "-n", ns, "--wait=true", "--timeout=60s")
        assert op.forbidden() == []  # under the chart's own ServiceAccount
    finally:
        op.uninstall()
        sys.stdout.write(op.text()[-4000:])
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_the_bench_runs_on_a_real_api_server(cluster: Cluster) -> None:
    """`make bench`'s real-server figures (a control plane of its own, beside the session's): two stacks
    through `kopf run`, a converged pass that writes nothing, figures that add up."""
    from cellcelly_dev import operator_bench as bench

    figures = asyncio.run(bench.run_real(2, 1))
    assert "skipped" not in figures, figures
    assert figures["single_stack_created_to_children_s"]["runs"] == 1
    assert 0 < figures["2_stacks_created_to_all_children_s"] < 120
    assert figures["2_stacks_steady_reconcile_s"] > 0 and figures["2_stacks_same_requests_raw_s"] > 0
