"""Every operator flow on the real API server (scripts/k8s.sh: Kubernetes 1.36.3, kwok pods, the
controller-manager's controllers and garbage collector), with the operator run as the operator chart
runs it and authenticated as the chart's own ServiceAccount (chart_operator.py): a verb the chart's RBAC
lacks shows as `forbidden` in the operator's log, and fails the test that needed it.

All flows in cluster scope (the chart's ClusterRole); create and delete also in namespace scope (a Role
in the one namespace watched). Each test has a namespace of its own; CELLCELLY_OPERATOR_TICK is 1 s."""

from __future__ import annotations

import base64
import copy
import json
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cellcelly_operator import children, spec
from chart_operator import CRD_NAME, ChartOperator, eventually, install_crd, remove_crd
from k8s_cluster import ROOT, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

MINIMAL = yaml.safe_load((ROOT / "crds" / "samples" / "minimal.yaml").read_text(encoding="utf-8"))
# the kinds of the stacks' children, as kubectl names them (the Prometheus Operator's are not served here)
CHILD_KINDS = ",".join(
    children.KINDS[k].plural
    + ("." + children.KINDS[k].api_version.split("/")[0] if "/" in children.KINDS[k].api_version else "")
    for k in children.OWNED_KINDS
    if k != "ServiceMonitor"
)
OPERATOR_NS = "cellcelly-system"


# one pod a back end (StatefulSet pods start one after another): for the flows that need no more
SMALL = {"kafka": {"replicas": 1}, "voltdb": {"replicas": 1, "kfactor": 0}, "hazelcast": {"replicas": 1}}


def body(name: str, ns: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(MINIMAL)
    out["metadata"] = {"name": name, "namespace": ns}
    out["spec"].update(copy.deepcopy(extra or {}))
    return out


def stack_of(cluster: Cluster, name: str, ns: str) -> dict[str, Any]:
    return cluster.get("ccs", name, "-n", ns)


def desired(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the operator's builders make of the stack as the server holds it (defaults applied), by
    Kind/name."""
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in children.build(spec.from_body(obj))}


def live(cluster: Cluster, name: str, ns: str, kinds: str = CHILD_KINDS) -> dict[str, dict[str, Any]]:
    got = cluster.get(kinds, "-n", ns, "-l", f"app.kubernetes.io/instance={name}")["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in got}


def condition(obj: dict[str, Any], kind: str) -> str | None:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conds if c["type"] == kind), None)


def reasons(cluster: Cluster, ns: str) -> list[str]:
    return [e.get("reason", "") for e in cluster.get("events.events.k8s.io", "-n", ns).get("items") or []]


def pods(cluster: Cluster, name: str, ns: str, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/name={component}"
    items = cluster.get("pods", "-n", ns, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def kubelet_reports(cluster: Cluster, pod: dict[str, Any], restarts: int, crash_looping: bool) -> None:
    """What a kubelet writes through the /status subresource for a container that restarts. kwok
    leaves it be: its pod stages match only Pending pods (pod-ready) and pods being deleted. So the
    pod is Running first: a report on a Pending pod was written over by kwok's pod-ready stage on a
    loaded machine (the operator then never saw the restarts)."""
    meta = pod["metadata"]

    def running() -> bool:
        got = cluster.kubectl("get", "pod", meta["name"], "-n", meta["namespace"], "-o", "json")
        return got.returncode == 0 and json.loads(got.stdout)["status"].get("phase") == "Running"

    eventually(running, f"pod {meta['name']} Running")
    (container,) = pod["spec"]["containers"]
    state = {"waiting": {"reason": "CrashLoopBackOff"}} if crash_looping else {"running": {}}
    status = {
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "ready": not crash_looping,
                "restartCount": restarts,
                "state": state,
            }
        ]
    }
    cluster.ok(
        "patch", "pod", meta["name"], "-n", meta["namespace"], "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def gone(cluster: Cluster, pod: str, ns: str) -> bool:
    got = cluster.kubectl("get", "pod", pod, "-n", ns, "-o", "json")
    return got.returncode != 0 or bool(json.loads(got.stdout)["metadata"].get("deletionTimestamp"))


# the managers kubectl writes a stack as; managedFields naming any other for a spec field is the operator
USER_MANAGERS = {
    "kubectl-client-side-apply",
    "kubectl-patch",
    "kubectl",
    "kubectl-create",
    "kubectl-annotate",
}


def spec_written_by_users_only(cluster: Cluster, ns: str) -> None:
    """The server's own record (managedFields) of who wrote each stack's spec in this namespace: the
    operator never does (a GitOps tool would revert it)."""
    for stack in cluster.get("ccs", "-n", ns, "--show-managed-fields")["items"]:
        entries = stack["metadata"]["managedFields"]
        writers = {e["manager"] for e in entries if "f:spec" in (e.get("fieldsV1") or {})}
        assert writers <= USER_MANAGERS, (stack["metadata"]["name"], writers)
        # and the record does see the operator: its status writes
        assert any(e.get("subresource") == "status" for e in entries), entries


def delete_stacks(cluster: Cluster, ns: str) -> None:
    """With the operator still running (it removes the finalizers), then the namespace."""
    cluster.kubectl("delete", "ccs", "--all", "-n", ns, "--wait=true", "--timeout=60s")
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> Iterator[None]:
    install_crd(cluster)
    try:
        yield
    finally:
        remove_crd(cluster)


@pytest.fixture(scope="module")
def cluster_operator(
    cluster: Cluster, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartOperator]:
    op = ChartOperator(cluster, tmp_path_factory.mktemp("op"), "cluster", OPERATOR_NS).install().start()
    try:
        yield op
    finally:
        op.uninstall()


@pytest.fixture
def op(cluster_operator: ChartOperator) -> Iterator[ChartOperator]:
    """The cluster-scope operator; after each test: still running, and refused nothing."""
    mark = len(cluster_operator.text())
    try:
        yield cluster_operator
    finally:
        sys.stdout.write(cluster_operator.text()[mark:][-6000:])
    if cluster_operator.proc is None or cluster_operator.proc.poll() is not None:
        cluster_operator.start()  # for the next test
        pytest.fail("the operator exited")
    assert cluster_operator.forbidden() == []


def test_the_operator_refuses_to_start_without_the_crd(cluster: Cluster, tmp_path: Path) -> None:
    """kopf itself would idle for good (its scanning is off); kmock serves any resource, so only a real
    server can show this."""
    remove_crd(cluster)
    assert cluster.kubectl("get", "crd", CRD_NAME).returncode != 0
    op = ChartOperator(cluster, tmp_path, "cluster", OPERATOR_NS, release="nocrd").install().start()
    try:
        assert op.proc is not None
        code = op.proc.wait(timeout=60)
        assert code != 0
        assert f"the CRD {CRD_NAME.split('.', 1)[0]}.cellcelly.io (v1alpha1) is not installed" in op.text()
        assert op.forbidden() == []  # the discovery it asks needs no grant
    finally:
        op.uninstall()


def test_create_makes_owned_children_and_kubectl_wait_returns(cluster: Cluster, op: ChartOperator) -> None:
    ns = "flow-create"
    cluster.ok("create", "namespace", ns)
    try:
        assert cluster.apply_object(body("demo", ns)).returncode == 0
        stack = stack_of(cluster, "demo", ns)
        want = desired(stack)
        got = eventually(
            lambda: g if set(g := live(cluster, "demo", ns)) == set(want) else None, "every child", timeout=90
        )
        for ref, obj in got.items():
            (owner,) = obj["metadata"]["ownerReferences"]
            assert owner["uid"] == stack["metadata"]["uid"] and owner["kind"] == "CellCellyStack", ref
            assert owner["controller"] is True and owner["blockOwnerDeletion"] is True, ref
        secrets = {s["metadata"]["name"]: s for s in cluster.get("secrets", "-n", ns)["items"]}
        for name in ("demo-oracle", "demo-ocs-api-key"):
            assert secrets[name]["metadata"]["ownerReferences"][0]["uid"] == stack["metadata"]["uid"]
        # the managed database's login and the key OCS and DGW share: random, made for this stack
        assert len(base64.b64decode(secrets["demo-oracle"]["data"]["password"])) >= 20
        assert len(base64.b64decode(secrets["demo-ocs-api-key"]["data"]["key"])) >= 32
        done = cluster.kubectl("wait", "--for=condition=Ready", "ccs/demo", "-n", ns, "--timeout=120s")
        assert done.returncode == 0, done.stderr
        stack = stack_of(cluster, "demo", ns)
        st = stack["status"]
        assert st["observedGeneration"] == stack["metadata"]["generation"]
        assert st["phase"] == "Ready" and condition(stack, "Progressing") == "False"
        assert st["components"]["ocs"] == {"ready": 2, "desired": 2}
        assert st["components"]["kafka"] == {"ready": 3, "desired": 3}  # StatefulSet pods on bound claims
        assert stack["metadata"]["finalizers"] == ["cellcelly.io/finalizer"]
        # the passes (a tick a second) that find everything as built patch nothing
        before = versions(live(cluster, "demo", ns))
        time.sleep(3)
        assert versions(live(cluster, "demo", ns)) == before
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)


def test_a_managed_postgresql_record_gets_its_children_and_no_oracle(
    cluster: Cluster, op: ChartOperator
) -> None:
    ns = "flow-postgresql"
    cluster.ok("create", "namespace", ns)
    try:
        extra = {**SMALL, "record": "PostgreSQL", "postgresql": {"storage": {"size": "1Gi"}}}
        assert cluster.apply_object(body("demo", ns, extra)).returncode == 0
        stack = stack_of(cluster, "demo", ns)
        want = desired(stack)
        assert "StatefulSet/demo-postgresql" in want and not any("oracle" in ref for ref in want)
        eventually(
            lambda: g if set(g := live(cluster, "demo", ns)) == set(want) else None, "every child", timeout=90
        )
        secrets = {s["metadata"]["name"]: s for s in cluster.get("secrets", "-n", ns)["items"]}
        assert "demo-oracle" not in secrets
        assert secrets["demo-postgresql"]["metadata"]["ownerReferences"][0]["uid"] == stack["metadata"]["uid"]
        assert len(base64.b64decode(secrets["demo-postgresql"]["data"]["password"])) >= 20
        done = cluster.kubectl("wait", "--for=condition=Ready", "ccs/demo", "-n", ns, "--timeout=120s")
        assert done.returncode == 0, done.stderr
        stack = stack_of(cluster, "demo", ns)
        assert condition(stack, "PostgreSQLReady") == "True" and condition(stack, "OracleReady") is None
        assert stack["status"]["components"]["postgresql"] == {"ready": 1, "desired": 1}
        # the printer column says which record the stack runs on
        shown = cluster.kubectl("get", "ccs", "demo", "-n", ns)
        assert shown.returncode == 0 and "RECORD" in shown.stdout and "PostgreSQL" in shown.stdout, (
            shown.stdout
        )
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)


def versions(objs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """What changes only when something writes an object's spec: the generation where the kind keeps
    one (workloads and PDBs; their status moves resourceVersion), else the resourceVersion."""
    return {
        ref: str(o["metadata"].get("generation") or o["metadata"]["resourceVersion"])
        for ref, o in objs.items()
    }


def test_update_patches_the_right_children_prunes_and_restores_drift(
    cluster: Cluster, op: ChartOperator
) -> None:
    ns = "flow-update"
    cluster.ok("create", "namespace", ns)
    ingress = {"enabled": True, "host": "selfcare.example.com"}
    try:
        assert (
            cluster.apply_object(
                body("demo", ns, {**SMALL, "services": {"mw": {"ingress": ingress}}})
            ).returncode
            == 0
        )
        before_stack = stack_of(cluster, "demo", ns)
        eventually(lambda: set(live(cluster, "demo", ns)) == set(desired(before_stack)), "every child", 90)
        eventually(
            lambda: stack_of(cluster, "demo", ns).get("status", {}).get("observedGeneration") == 1, "status"
        )
        before = versions(live(cluster, "demo", ns))
        patch = {"spec": {"services": {"ocs": {"replicas": 3}, "mw": {"ingress": {"enabled": False}}}}}
        cluster.ok("patch", "ccs", "demo", "-n", ns, "--type=merge", "-p", json.dumps(patch))
        after_stack = stack_of(cluster, "demo", ns)
        assert after_stack["metadata"]["generation"] == 2
        old, new = desired(before_stack), desired(after_stack)
        changed = {ref for ref in new if ref in old and new[ref] != old[ref]}
        assert "Deployment/demo-ocs" in changed and "Ingress/demo-mw" not in new

        def settled() -> dict[str, Any] | None:
            got = live(cluster, "demo", ns)
            st = stack_of(cluster, "demo", ns).get("status") or {}
            ok = set(got) == set(new) and st.get("observedGeneration") == 2
            return got if ok else None

        got = eventually(settled, "replicas 3, the Ingress pruned, observedGeneration 2")
        assert got["Deployment/demo-ocs"]["spec"]["replicas"] == 3
        after = versions(got)
        moved = {ref for ref in after if after[ref] != before.get(ref)}
        assert moved == changed, (moved, changed)  # the children whose manifest changed, no other

        # drift: a child deleted and another edited by hand are put back by the next pass
        cluster.ok("delete", "service", "demo-mw", "-n", ns)
        cluster.ok("scale", "deployment", "demo-ocs", "-n", ns, "--replicas=1")
        key, value = sorted(got["ConfigMap/demo-config"]["data"].items())[0]
        edit = {"data": {key: "edited by hand"}}
        cluster.ok("patch", "configmap", "demo-config", "-n", ns, "--type=merge", "-p", json.dumps(edit))

        def restored() -> bool:
            got = live(cluster, "demo", ns)
            return (
                "Service/demo-mw" in got
                and got["Deployment/demo-ocs"]["spec"]["replicas"] == 3
                and got["ConfigMap/demo-config"]["data"][key] == value
            )

        eventually(restored, "drift corrected", timeout=30)
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)


def test_a_crash_looping_pod_is_restarted_within_budget_and_recorded(
    cluster: Cluster, op: ChartOperator
) -> None:
    """The kubelet's report (restartCount, CrashLoopBackOff) written through /status as it would be;
    the operator deletes the pod, the ReplicaSet makes a new one; the budget (1 per window) spent, the
    next sick pod stays and the stack says Degraded."""
    ns = "flow-heal"
    cluster.ok("create", "namespace", ns)
    healing = {"selfHealing": {"maxRestarts": 1, "windowSeconds": 600}}
    try:
        assert cluster.apply_object(body("demo", ns, {**SMALL, **healing})).returncode == 0
        first, second = eventually(
            lambda: len(p := pods(cluster, "demo", ns, "ocs")) == 2 and p, "two ocs pods"
        )
        kubelet_reports(cluster, first, restarts=5, crash_looping=True)
        eventually(lambda: gone(cluster, first["metadata"]["name"], ns), "the crash-looping pod deleted", 30)

        def healed() -> dict[str, Any] | None:
            st = stack_of(cluster, "demo", ns).get("status") or {}
            return st if st.get("healing") else None

        st = eventually(healed, "status.healing")
        (entry,) = st["healing"]
        assert (entry["pod"], entry["component"]) == (first["metadata"]["name"], "ocs")
        assert (entry["reason"], entry["action"]) == ("CrashLoopBackOff", "deleted")
        assert st["restarts"]["ocs"]["count"] == 1
        eventually(lambda: "PodRestarted" in reasons(cluster, ns), "a PodRestarted Event")
        eventually(lambda: len(pods(cluster, "demo", ns, "ocs")) == 2, "the ReplicaSet's new pod")

        kubelet_reports(cluster, second, restarts=3, crash_looping=True)
        eventually(lambda: condition(stack_of(cluster, "demo", ns), "Degraded") == "True", "Degraded=True")
        assert not gone(cluster, second["metadata"]["name"], ns)
        assert stack_of(cluster, "demo", ns)["status"]["healing"][-1]["action"] == "skipped"
        assert "RestartBudgetSpent" in reasons(cluster, ns)
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)


def test_restarts_growing_across_an_operator_restart_are_seen(cluster: Cluster, op: ChartOperator) -> None:
    """The restart baseline lives in status: a new operator process compares against what the old saw."""
    ns = "flow-heal-restart"
    cluster.ok("create", "namespace", ns)
    try:
        assert cluster.apply_object(body("demo", ns, SMALL)).returncode == 0
        pod = eventually(lambda: (p := pods(cluster, "demo", ns, "ocs")) and p[0], "an ocs pod")
        name = pod["metadata"]["name"]

        def baseline() -> list[dict[str, Any]]:
            return list((stack_of(cluster, "demo", ns).get("status") or {}).get("restartBaseline") or [])

        # the pod as it started, never restarted: a count reported before the operator's first look
        # raced it (seen at 0 first, 7 was growth, and the pod was restarted: CI, twice)
        eventually(lambda: {"pod": name, "restarts": 0} in baseline(), "status.restartBaseline")
        time.sleep(2)  # more ticks: the count did not grow, nothing is restarted
        assert not gone(cluster, name, ns)
        op.stop()
        kubelet_reports(cluster, pod, restarts=8, crash_looping=False)  # while no operator ran
        op.start()
        eventually(lambda: gone(cluster, name, ns), "the pod whose restarts grew deleted", 30)
        healing = stack_of(cluster, "demo", ns)["status"]["healing"]
        assert [(h["pod"], h["reason"]) for h in healing] == [(name, "RestartsGrowing")]
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)


def test_pause_changes_nothing_until_unpaused(cluster: Cluster, op: ChartOperator) -> None:
    ns = "flow-pause"
    cluster.ok("create", "namespace", ns)
    try:
        assert cluster.apply_object(body("demo", ns, SMALL)).returncode == 0
        want = desired(stack_of(cluster, "demo", ns))
        eventually(lambda: set(live(cluster, "demo", ns)) == set(want), "every child", 90)
        cluster.ok("annotate", "ccs", "demo", "-n", ns, "cellcelly.io/paused=true")

        def paused() -> bool:
            stack = stack_of(cluster, "demo", ns)
            return condition(stack, "ReconciliationPaused") == "True" and stack["status"]["phase"] == "Paused"

        eventually(paused, "ReconciliationPaused=True")
        sick = eventually(lambda: (p := pods(cluster, "demo", ns, "ocs")) and p[0], "an ocs pod")
        patch = {"spec": {"services": {"ocs": {"replicas": 4}}}}
        cluster.ok("patch", "ccs", "demo", "-n", ns, "--type=merge", "-p", json.dumps(patch))
        cluster.ok("delete", "service", "demo-mw", "-n", ns)
        kubelet_reports(cluster, sick, restarts=9, crash_looping=True)
        before = versions(live(cluster, "demo", ns))
        time.sleep(4)  # four ticks
        assert versions(live(cluster, "demo", ns)) == before
        assert "Service/demo-mw" not in before and not gone(cluster, sick["metadata"]["name"], ns)
        assert stack_of(cluster, "demo", ns)["status"].get("observedGeneration") == 1

        cluster.ok("annotate", "ccs", "demo", "-n", ns, "cellcelly.io/paused-")

        def resumed() -> bool:
            got = live(cluster, "demo", ns)
            stack = stack_of(cluster, "demo", ns)
            return (
                "Service/demo-mw" in got
                and got["Deployment/demo-ocs"]["spec"]["replicas"] == 4
                and condition(stack, "ReconciliationPaused") == "False"
                and stack["status"].get("observedGeneration") == 2
            )

        eventually(resumed, "reconciled after unpausing", 30)
        eventually(lambda: gone(cluster, sick["metadata"]["name"], ns), "the sick pod healed after unpausing")
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)


def claims(cluster: Cluster, name: str, ns: str) -> list[str]:
    got = cluster.get("pvc", "-n", ns, "-l", f"app.kubernetes.io/instance={name}")["items"]
    return sorted(c["metadata"]["name"] for c in got if not c["metadata"].get("deletionTimestamp"))


def claim_names(obj: dict[str, Any]) -> list[str]:
    """The claims the StatefulSet controller makes from the stack's StatefulSets' templates."""
    out = []
    for ref, m in desired(obj).items():
        if ref.startswith("StatefulSet/"):
            for template in m["spec"].get("volumeClaimTemplates") or []:
                sts = m["metadata"]["name"]
                out += [f"{template['metadata']['name']}-{sts}-{i}" for i in range(m["spec"]["replicas"])]
    return sorted(out)


def test_delete_collects_the_children_and_claims_follow_the_policy(
    cluster: Cluster, op: ChartOperator
) -> None:
    ns = "flow-delete"
    cluster.ok("create", "namespace", ns)
    try:
        assert cluster.apply_object(body("kept", ns, SMALL)).returncode == 0
        drop = {**SMALL, "storage": {"deletionPolicy": "Delete"}}
        assert cluster.apply_object(body("dropped", ns, drop)).returncode == 0
        for name in ("kept", "dropped"):
            done = cluster.kubectl("wait", "--for=condition=Ready", f"ccs/{name}", "-n", ns, "--timeout=120s")
            assert done.returncode == 0, done.stderr
        kept_claims = claims(cluster, "kept", ns)
        assert kept_claims == claim_names(stack_of(cluster, "kept", ns))
        assert claims(cluster, "dropped", ns) == claim_names(stack_of(cluster, "dropped", ns))
        for name in ("kept", "dropped"):
            started = time.monotonic()
            cluster.ok("delete", "ccs", name, "-n", ns, "--timeout=60s")  # returns once the finalizer is off
            # a delete landing in a tick waited kopf's 60 s timer poll before settings.TIMER_EXIT_POLL
            assert time.monotonic() - started < 15, (
                f"{name}: finalizer held {time.monotonic() - started:.0f} s"
            )
        everything = CHILD_KINDS + ",pods,secrets,replicasets.apps"
        for name in ("kept", "dropped"):
            eventually(lambda n=name: live(cluster, n, ns, everything) == {}, f"{name}'s children collected")
        eventually(lambda: claims(cluster, "dropped", ns) == [], "the Delete policy's claims deleted")
        time.sleep(2)
        assert claims(cluster, "kept", ns) == kept_claims  # Retain: the data stays for a new stack
    finally:
        delete_stacks(cluster, ns)


class Direct:
    """GETs straight to the API server with the admin certificate: a poll a few milliseconds apart,
    fast enough to catch the operator inside its first pass (kubectl takes ~100 ms a call)."""

    def __init__(self, cluster: Cluster) -> None:
        pki = cluster.directory / "pki"
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.base = (cluster.directory / "apiserver.url").read_text().strip()

    def count(self, path: str) -> int:
        with urllib.request.urlopen(self.base + path, context=self.ctx, timeout=5) as rsp:
            return len(json.load(rsp)["items"])


def test_an_operator_killed_mid_create_converges_after_a_restart(cluster: Cluster, op: ChartOperator) -> None:
    """SIGKILL while the first pass creates the children (no cleanup, nothing written on the way out);
    the next operator finishes the job: every child once, the generated Secrets not made again (a new
    OCS key would roll the Deployments), Ready; then killed again and the stack deleted meanwhile: the
    next operator lets it go (nothing stuck)."""
    ns = "flow-kill"
    cluster.ok("create", "namespace", ns)
    direct = Direct(cluster)
    selector = "?labelSelector=app.kubernetes.io/instance%3Dbig"
    try:
        assert cluster.apply_object(body("big", ns)).returncode == 0
        want = desired(stack_of(cluster, "big", ns))
        deadline = time.monotonic() + 60
        while direct.count(f"/api/v1/namespaces/{ns}/services{selector}") == 0:
            assert time.monotonic() < deadline, "no child made"
        op.kill()
        partial = live(cluster, "big", ns)
        assert 0 < len(partial) < len(want), f"killed after {len(partial)} of {len(want)} children"
        sys.stdout.write(f"SIGKILL after {len(partial)} of {len(want)} children\n")  # -rP shows it
        secrets_before = {s["metadata"]["name"]: s["data"] for s in cluster.get("secrets", "-n", ns)["items"]}
        op.start()
        done = cluster.kubectl("wait", "--for=condition=Ready", "ccs/big", "-n", ns, "--timeout=120s")
        assert done.returncode == 0, done.stderr
        assert set(live(cluster, "big", ns)) == set(want)
        secrets_after = {s["metadata"]["name"]: s["data"] for s in cluster.get("secrets", "-n", ns)["items"]}
        assert {k: secrets_after[k] for k in secrets_before} == secrets_before
        # one ReplicaSet a Deployment: no rollout from a configuration made twice
        sets = cluster.get("replicasets", "-n", ns, "-l", "app.kubernetes.io/instance=big")["items"]
        owners = [r["metadata"]["ownerReferences"][0]["name"] for r in sets]
        assert sorted(owners) == sorted(set(owners)), owners
        spec_written_by_users_only(cluster, ns)
        # deleted while no operator runs: the finalizer holds it, the next operator lets it go
        op.kill()
        cluster.ok("delete", "ccs", "big", "-n", ns, "--wait=false")
        time.sleep(1)
        assert stack_of(cluster, "big", ns)["metadata"]["deletionTimestamp"]
        op.start()
        cluster.wait_gone("ccs", "big", "-n", ns, timeout=30)
    finally:
        delete_stacks(cluster, ns)


@pytest.fixture
def alone(cluster_operator: ChartOperator) -> Iterator[None]:
    """The cluster-scope operator stopped while a test runs one of its own (both would handle a stack)."""
    cluster_operator.stop()
    try:
        yield
    finally:
        cluster_operator.start()


def test_namespace_scope_creates_and_deletes_under_the_namespaced_role(
    cluster: Cluster, alone: None, tmp_path: Path
) -> None:
    """The chart in namespace scope: a Role in its release namespace and nothing cluster-wide; it
    handles the stacks there and leaves another namespace's alone. Late in the module: the garbage
    collector learns a new CRD's kind at its next discovery sync (30 s), and the cluster-scope operator
    is stopped meanwhile (it would handle this namespace too)."""
    ns, other = "flow-scoped", "flow-elsewhere"
    op = ChartOperator(cluster, tmp_path, "namespace", ns, release="ccns").install()
    assert {o["kind"] for o in op.rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    op.start()
    cluster.ok("create", "namespace", other)
    try:
        assert cluster.apply_object(body("demo", ns, SMALL)).returncode == 0
        assert cluster.apply_object(body("demo", other, SMALL)).returncode == 0
        want = desired(stack_of(cluster, "demo", ns))
        eventually(lambda: set(live(cluster, "demo", ns)) == set(want), "every child", timeout=90)
        done = cluster.kubectl("wait", "--for=condition=Ready", "ccs/demo", "-n", ns, "--timeout=120s")
        assert done.returncode == 0, done.stderr
        theirs = stack_of(cluster, "demo", other)
        assert not theirs["metadata"].get("finalizers") and "status" not in theirs
        assert live(cluster, "demo", other) == {}
        cluster.ok("delete", "ccs", "demo", "-n", ns, "--timeout=60s")
        eventually(
            lambda: live(cluster, "demo", ns, CHILD_KINDS + ",pods,secrets") == {}, "children collected"
        )
        assert op.forbidden() == []
    finally:
        cluster.kubectl("delete", "ccs", "demo", "-n", other, "--wait=false")
        delete_stacks(cluster, ns)
        op.uninstall()
        cluster.kubectl("delete", "namespace", other, "--wait=false")
        sys.stdout.write(op.text()[-6000:])


def test_a_verb_the_chart_lacks_shows_as_forbidden(cluster: Cluster, alone: None, tmp_path: Path) -> None:
    """The check every flow ends with can fail: the chart's Role without `create` on Secrets (as it was
    before issue 13) and the operator's log says forbidden."""
    ns = "flow-missing-verb"
    op = ChartOperator(cluster, tmp_path, "namespace", ns, release="ccmiss")
    rules = [r for o in op.rbac if o["kind"] == "Role" for r in o["rules"] if "secrets" in r["resources"]]
    assert any("create" in r["verbs"] for r in rules)
    for rule in rules:
        rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    op.install().start()
    try:
        assert cluster.apply_object(body("demo", ns, SMALL)).returncode == 0
        refused = eventually(op.forbidden, "a 403 in the operator's log", timeout=30)
        assert any("secrets" in line for line in refused), refused
    finally:
        delete_stacks(cluster, ns)
        op.uninstall()


SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def test_monitoring_without_the_prometheus_operator_is_a_condition_until_it_comes(
    cluster: Cluster, op: ChartOperator
) -> None:
    """No ServiceMonitor kind served: Monitoring=False, told once, Ready regardless; the kind installed
    (the Prometheus Operator's CRD, its schema left open here) while the operator runs: the next pass
    makes the ServiceMonitors."""
    ns = "flow-monitoring"
    cluster.ok("create", "namespace", ns)
    crd = SERVICE_MONITOR_CRD["metadata"]["name"]
    try:
        monitoring = {"monitoring": {"enabled": True, "grafanaDashboard": True}}
        assert cluster.apply_object(body("demo", ns, {**SMALL, **monitoring})).returncode == 0
        done = cluster.kubectl("wait", "--for=condition=Ready", "ccs/demo", "-n", ns, "--timeout=120s")
        assert done.returncode == 0, done.stderr
        stack = eventually(
            lambda: s if condition(s := stack_of(cluster, "demo", ns), "Monitoring") == "False" else None,
            "Monitoring=False",
        )
        (mon,) = [c for c in stack["status"]["conditions"] if c["type"] == "Monitoring"]
        assert mon["reason"] == "PrometheusOperatorMissing" and "demo-ocs" in mon["message"]
        assert "ConfigMap/demo-grafana-dashboard" in live(cluster, "demo", ns)
        time.sleep(2)  # more ticks: told once, not once a tick
        assert reasons(cluster, ns).count("PrometheusOperatorMissing") == 1

        assert cluster.apply_object(SERVICE_MONITOR_CRD).returncode == 0
        cluster.wait_established(crd)

        def scraped() -> bool:
            made = cluster.kubectl("get", "servicemonitors", "demo-ocs", "-n", ns).returncode == 0
            return made and condition(stack_of(cluster, "demo", ns), "Monitoring") == "True"

        eventually(scraped, "ServiceMonitors made, Monitoring=True", timeout=30)
        spec_written_by_users_only(cluster, ns)
    finally:
        delete_stacks(cluster, ns)
        cluster.kubectl("delete", "crd", crd, "--ignore-not-found", "--wait=false")


def test_the_crd_deleted_with_stacks_left_takes_them_and_is_not_stuck(
    cluster: Cluster, alone: None, tmp_path: Path
) -> None:
    """A CRD being deleted is served without `patch`; kopf with scanning on then dropped the stacks and
    their finalizers stayed. The operator handles them and the CRD goes; the operator then exits (it
    serves nothing), and the CRD is put back for the tests after."""
    ns = "flow-crd-gone"
    op = ChartOperator(cluster, tmp_path, "cluster", OPERATOR_NS, release="cccrd").install().start()
    cluster.ok("create", "namespace", ns)
    try:
        assert cluster.apply_object(body("demo", ns, SMALL)).returncode == 0
        eventually(
            lambda: (stack_of(cluster, "demo", ns).get("status") or {}).get("observedGeneration"), "status"
        )
        started = time.monotonic()
        done = cluster.kubectl("delete", "crd", CRD_NAME, "--timeout=60s")
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 30
        assert cluster.kubectl("get", "crd", CRD_NAME).returncode != 0
        assert op.forbidden() == []
    finally:
        op.uninstall()
        sys.stdout.write(op.text()[-4000:])
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
        install_crd(cluster)
