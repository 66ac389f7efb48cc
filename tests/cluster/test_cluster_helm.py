"""The three charts on a real API server (scripts/k8s.sh: Kubernetes 1.36.3, kwok pods, the
controller-manager's Deployment controller and garbage collector) with helm 4 and helm 3, as a platform
engineer runs them: install cellcelly-crds, cellcelly-operator (its default, namespace scope) and
cellcelly-stack; upgrade, where a changed value rolls the right pods and only them; rollback (the
revision and the objects back); uninstall (everything gone, but what stays by design: the CRD, helm's
crds/ semantics, and the PVCs of a stack whose storage.deletionPolicy is Retain). The stack reaches
`kubectl wait --for=condition=Ready`, `kubectl get ccs` shows the CRD's printer columns with real values,
and the values the kind e2e installs (e2e/kind-values.yaml) are accepted and go Ready.

kwok runs no container: the operator runs here (`kopf run`) with the installed Deployment's own
arguments and environment, authenticated as the chart's ServiceAccount (chart_operator.py: a token
minted for it), so the chart's RBAC is what it gets: a refused request fails the test."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_operator import ChartOperator, eventually, token_kubeconfig
from k8s_cluster import ROOT, Cluster, helm_binary

from cellcelly_testing import require, stop_process

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

CHARTS = ROOT / "charts"
CRD_NAME = "cellcellystacks.cellcelly.io"
OPERATOR = "op"  # release names: the operator's resources are then op-cellcelly-operator
STACK = "demo"
WORKLOADS = "deployments,statefulsets"
# every kind a stack's uninstall must leave nothing of (PVCs are checked on their own: Retain keeps them)
STACK_KINDS = "deployments,statefulsets,services,configmaps,secrets,poddisruptionbudgets,ingresses"


class Helm:
    """One helm binary pointed at the cluster (its kubeconfig and a home of the test's own)."""

    def __init__(self, cluster: Cluster, major: int) -> None:
        binary = helm_binary(major)
        require(binary is not None, f"helm {major} not fetched: run scripts/helm.sh fetch")
        assert binary is not None
        self.cluster, self.binary, self.major = cluster, binary, major

    def __call__(self, *args: str) -> str:
        done = self.cluster.run(self.binary, *args)
        assert done.returncode == 0, f"helm {self.major} {' '.join(args)}: {done.stderr}"
        return done.stdout

    def history(self, release: str, ns: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = yaml.safe_load(self("history", release, "-n", ns, "-o", "yaml"))
        return got


def replica_sets(cluster: Cluster, ns: str, selector: str) -> dict[str, int]:
    """name → replicas of the ReplicaSets a selector picks (the old ones stay, scaled to 0)."""
    items = cluster.get("replicasets", "-n", ns, "-l", selector)["items"]
    return {r["metadata"]["name"]: int(r["spec"]["replicas"]) for r in items}


def active(sets: dict[str, int]) -> str:
    (name,) = [n for n, replicas in sets.items() if replicas > 0]
    return name


def running_pods_of(cluster: Cluster, ns: str, selector: str) -> dict[str, str]:
    """Running pod name → its pod-template-hash (which ReplicaSet made it)."""
    items = cluster.get("pods", "-n", ns, "-l", selector)["items"]
    return {
        p["metadata"]["name"]: p["metadata"]["labels"].get("pod-template-hash", "")
        for p in items
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def workloads(cluster: Cluster, ns: str, instance: str) -> dict[str, dict[str, Any]]:
    items = cluster.get(WORKLOADS, "-n", ns, "-l", f"app.kubernetes.io/instance={instance}")["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in items}


def ready(stack: dict[str, Any]) -> bool:
    status = stack.get("status") or {}
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return (
        conds.get("Ready") == "True" and status.get("observedGeneration") == stack["metadata"]["generation"]
    )


def mw_memory_limit(obj: dict[str, Any]) -> str:
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    return str(container["resources"]["limits"]["memory"])


TEST_HOOK_KINDS = "pods,serviceaccounts,roles,rolebindings,configmaps,clusterroles,clusterrolebindings"


def hooks_of(cluster: Cluster, release: str) -> list[dict[str, Any]]:
    return [
        o
        for o in cluster.get(TEST_HOOK_KINDS, "-A", "-l", f"app.kubernetes.io/instance={release}")["items"]
        if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]


def chart_test_as_its_account(cluster: Cluster, helm: Helm, release: str, ns: str, workdir: Path) -> None:
    """`helm test` creates the chart's test hooks (ServiceAccount, RBAC, ConfigMap, pod) on the server;
    under kwok the pod never runs. While helm waits for it, the pod's kubectl commands run here, as the
    pod's ServiceAccount (a token minted for it) with its ConfigMap volumes as files: what the test pod
    does, with only the rights the chart gives it. Then helm is stopped and the hooks removed (helm 4
    deletes the succeeded ones after a failed test, helm 3 keeps them)."""
    proc = subprocess.Popen(
        [str(helm.binary), "test", release, "-n", ns, "--timeout=120s"],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (pod,) = eventually(
            lambda: [o for o in hooks_of(cluster, release) if o["kind"] == "Pod"], f"{release}'s test pod"
        )
        _run_test_pod(cluster, release, ns, pod["spec"], workdir)
        assert proc.poll() is None, "a chart test pod completed under kwok, which runs no container"
    finally:
        stop_process(proc)
        for o in hooks_of(cluster, release):
            where = ["-n", o["metadata"]["namespace"]] if o["metadata"].get("namespace") else []
            cluster.kubectl("delete", o["kind"].lower(), o["metadata"]["name"], *where, "--wait=false")


def _run_test_pod(cluster: Cluster, release: str, ns: str, spec: dict[str, Any], workdir: Path) -> None:
    kubeconfig = token_kubeconfig(cluster, ns, spec["serviceAccountName"], workdir / f"test-{release}")
    files = {}  # mount path -> a local directory holding the ConfigMap's keys
    containers = spec.get("initContainers", []) + spec["containers"]
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            data = cluster.get("configmap", volume["configMap"]["name"], "-n", ns)["data"]
            local = workdir / f"test-{release}-{volume['name']}"
            local.mkdir()
            for key, text in data.items():
                (local / key).write_text(text, encoding="utf-8")
            for container in containers:
                for mount in container.get("volumeMounts") or []:
                    if mount["name"] == volume["name"]:
                        files[mount["mountPath"].rstrip("/")] = str(local)
    for container in containers:
        assert "kubectl" in container["image"], container["image"]
        args = list(container.get("command", [])[1:]) + container["args"]
        for mount, local in files.items():
            args = [a.replace(mount + "/", local + "/") for a in args]
        # the chart's wait is long (tests.timeout): here the stack is Ready already, a refusal shows sooner
        args = [re.sub(r"^--timeout=.*", "--timeout=60s", a) for a in args]
        env = dict(cluster.env, KUBECONFIG=str(kubeconfig))
        run = subprocess.run(
            [str(cluster.kubectl_binary), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=90,
        )
        assert run.returncode == 0, f"{release} test, container {container['name']}: {run.stderr}"


@pytest.fixture(params=[4, 3], ids=["helm4", "helm3"])
def helm(request: pytest.FixtureRequest, cluster: Cluster) -> Helm:
    return Helm(cluster, request.param)


@pytest.fixture
def namespace(cluster: Cluster, helm: Helm) -> Iterator[str]:
    """A namespace per helm major; afterwards every release, the namespace and the CRD removed (the next
    test starts without the CRD, as the crds chart's first install expects)."""
    ns = f"helm{helm.major}"
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", "--timeout=60s")
    try:
        yield ns
    finally:
        for release in (STACK, "e2e", OPERATOR, "cellcelly-crds"):
            cluster.run(helm.binary, "uninstall", release, "-n", ns, "--ignore-not-found")
        # a test failed with stacks left and the operator gone: their finalizers would hold the namespace
        for name in cluster.kubectl("get", "ccs", "-n", ns, "-o", "name").stdout.split():
            cluster.kubectl("patch", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=90s")
        cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", "--timeout=60s")


def test_three_charts_install_upgrade_rollback_uninstall(
    cluster: Cluster, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    # --- cellcelly-crds: helm installs crds/ and waits for the CRD to be served
    helm(
        "install", "cellcelly-crds", str(CHARTS / "cellcelly-crds"), "-n", ns, "--create-namespace", "--wait"
    )
    cluster.wait_established(CRD_NAME, timeout=30)
    chart_test_as_its_account(cluster, helm, "cellcelly-crds", ns, tmp_path)

    # --- cellcelly-operator, its defaults: namespace scope, a Role in the release namespace only
    op_chart = str(CHARTS / "cellcelly-operator")
    helm("install", OPERATOR, op_chart, "-n", ns, "--wait", "--timeout=90s")
    instance = f"app.kubernetes.io/instance={OPERATOR}"
    assert cluster.get("roles,rolebindings", "-n", ns, "-l", instance)["items"]
    assert cluster.get("clusterroles,clusterrolebindings", "-l", instance)["items"] == []
    first_sets = replica_sets(cluster, ns, instance)
    first_rs = active(first_sets)
    eventually(
        lambda: set(running_pods_of(cluster, ns, instance).values()) == {first_rs.rsplit("-", 1)[1]},
        "the operator pod",
    )
    # the Service its chart test asks: it selects the pod and its named port resolves (the endpoints
    # controller's EndpointSlice); the test itself, a wget from a busybox pod, cannot run under kwok
    service = f"kubernetes.io/service-name={OPERATOR}-cellcelly-operator"

    def endpoints() -> list[tuple[bool, int]]:
        slices = cluster.get("endpointslices", "-n", ns, "-l", service)["items"]
        return [
            (bool(e["conditions"].get("ready")), int(port["port"]))
            for s in slices
            for e in s.get("endpoints") or []
            for port in s.get("ports") or []
        ]

    eventually(lambda: endpoints() == [(True, 8080)], "the operator's Service endpoint")

    # an upgrade that changes the pod template: a new ReplicaSet, its pod Running, the old one scaled to 0
    helm(
        "upgrade",
        OPERATOR,
        op_chart,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "logLevel=--verbose",
        "--wait",
        "--timeout=90s",
    )
    deployment = cluster.get("deployment", f"{OPERATOR}-cellcelly-operator", "-n", ns)
    assert "--verbose" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    second_sets = replica_sets(cluster, ns, instance)
    second_rs = active(second_sets)
    assert second_rs != first_rs and second_sets[first_rs] == 0
    eventually(
        lambda: set(running_pods_of(cluster, ns, instance).values()) == {second_rs.rsplit("-", 1)[1]},
        "the new operator pod",
    )
    pods_before = running_pods_of(cluster, ns, instance)
    # an upgrade that leaves the pod template alone (an annotation on the ServiceAccount, the Role's
    # Secrets narrowed to the stacks this test makes): no roll
    generation = deployment["metadata"]["generation"]
    helm(
        "upgrade",
        OPERATOR,
        op_chart,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "serviceAccount.annotations.team=telco",
        "--set",
        f"rbac.stacks={{{STACK},e2e}}",
        "--wait",
    )
    account = cluster.get("serviceaccount", f"{OPERATOR}-cellcelly-operator", "-n", ns)
    assert account["metadata"]["annotations"]["team"] == "telco"
    assert (
        cluster.get("deployment", f"{OPERATOR}-cellcelly-operator", "-n", ns)["metadata"]["generation"]
        == generation
    )
    assert replica_sets(cluster, ns, instance) == second_sets
    assert running_pods_of(cluster, ns, instance) == pods_before
    # what the server's authorizer now says of the operator's account: its stacks' Secrets by name only
    account_name = f"system:serviceaccount:{ns}:{OPERATOR}-cellcelly-operator"

    def can(*what: str) -> bool:
        return cluster.kubectl("auth", "can-i", *what, "-n", ns, f"--as={account_name}").returncode == 0

    assert can("get", f"secrets/{STACK}-oracle") and can("get", f"secrets/{STACK}-ocs-api-key")
    assert can("create", "secrets")  # RBAC cannot narrow a create by name
    assert not can("get", "secrets/cellcelly-mw") and not can("list", "secrets")
    # patch (the keys a newer version adds to its logins) by name too: no other Secret can be written
    assert can("patch", f"secrets/{STACK}-kafka-users") and not can("patch", "secrets/cellcelly-mw")

    operator = ChartOperator.installed(cluster, tmp_path, ns, f"{OPERATOR}-cellcelly-operator").start()
    try:
        _stack(cluster, helm, ns, tmp_path)
        _kind_values(cluster, helm, ns)
        assert operator.forbidden() == []
    finally:
        operator.stop()
        sys.stdout.write(operator.text()[-4000:])

    # operator rollback to revision 1: the first pod template, so the first ReplicaSet again
    helm("rollback", OPERATOR, "1", "-n", ns, "--wait", "--timeout=90s")
    assert [r["revision"] for r in helm.history(OPERATOR, ns)] == [1, 2, 3, 4]
    assert active(replica_sets(cluster, ns, instance)) == first_rs
    deployment = cluster.get("deployment", f"{OPERATOR}-cellcelly-operator", "-n", ns)
    assert "--verbose" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]

    # cluster scope, the opt-in: the Role goes, a ClusterRole comes, the pod template (args) rolls
    helm("upgrade", OPERATOR, op_chart, "-n", ns, "--reuse-values", "--set", "watch.scope=cluster", "--wait")
    assert cluster.get("roles,rolebindings", "-n", ns, "-l", instance)["items"] == []
    assert len(cluster.get("clusterroles,clusterrolebindings", "-l", instance)["items"]) == 2
    deployment = cluster.get("deployment", f"{OPERATOR}-cellcelly-operator", "-n", ns)
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert active(replica_sets(cluster, ns, instance)) not in {first_rs, second_rs}

    # uninstall the operator: its Deployment, pods, Service, ServiceAccount and RBAC go
    helm("uninstall", OPERATOR, "-n", ns, "--wait")
    eventually(
        lambda: cluster.get("clusterroles,clusterrolebindings", "-l", instance)["items"] == [],
        "the operator's ClusterRole and binding gone",
    )
    left = "deployments,replicasets,services,serviceaccounts,roles,rolebindings"
    eventually(
        lambda: cluster.get(left, "-n", ns, "-l", instance)["items"] == [], "the operator's objects gone"
    )
    eventually(lambda: running_pods_of(cluster, ns, instance) == {}, "the operator's pods gone")

    # uninstall the crds chart: the release goes, the CRD stays (helm never deletes crds/: by design)
    helm("uninstall", "cellcelly-crds", "-n", ns, "--wait")
    assert helm("list", "-n", ns, "-q").strip() == ""
    assert cluster.get("crd", CRD_NAME)["metadata"]["name"] == CRD_NAME


def _stack(cluster: Cluster, helm: Helm, ns: str, workdir: Path) -> None:
    """The stack chart with the operator running: Ready, the printer columns, an upgrade of one service
    rolling its Deployment alone, rollback, uninstall (the PVCs kept: deletionPolicy Retain)."""
    chart = str(CHARTS / "cellcelly-stack")
    token = [
        "--set",
        "createSecrets.mwToken.enabled=true",
        "--set",
        "createSecrets.mwToken.value=helm-test-token",
    ]
    helm("install", STACK, chart, "-n", ns, *token)
    started = time.monotonic()
    cluster.ok("wait", "--for=condition=Ready", f"ccs/{STACK}", "-n", ns, "--timeout=90s")
    sys.stdout.write(f"helm {helm.major}: stack Ready {time.monotonic() - started:.1f} s after its install\n")
    stack = eventually(
        lambda: ready(got := cluster.get("ccs", STACK, "-n", ns)) and got, "Ready at its generation"
    )
    first_spec = stack["spec"]
    chart_test_as_its_account(cluster, helm, STACK, ns, workdir)  # kubectl wait Ready, as its account

    # the printer columns, as the server renders its Table for kubectl: the CRD's, with real values
    columns = cluster.get("crd", CRD_NAME)["spec"]["versions"][0]["additionalPrinterColumns"]
    header, row = cluster.ok("get", "ccs", STACK, "-n", ns).splitlines()
    assert header.split() == ["NAME"] + [c["name"].upper() for c in columns]
    status = stack["status"]
    name, ready_column, phase, version, record, age = row.split()
    assert (name, ready_column, phase, version) == (STACK, "True", status["phase"], status["version"])
    assert record == first_spec.get("record", "Oracle")
    assert phase == "Ready" and version == first_spec["version"] and re.fullmatch(r"\d+[smh]", age)

    # upgrade: one service's value changes the stack's spec, and only that service's Deployment rolls
    before = workloads(cluster, ns, STACK)
    assert len(before) > 5, sorted(before)
    mw_selector = f"app.kubernetes.io/instance={STACK},app.kubernetes.io/name=mw"
    mw_sets = replica_sets(cluster, ns, mw_selector)
    helm(
        "upgrade",
        STACK,
        chart,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "services.mw.resources.limits.memory=600Mi",
    )
    stack = cluster.get("ccs", STACK, "-n", ns)
    assert stack["spec"]["services"]["mw"]["resources"]["limits"]["memory"] == "600Mi"
    eventually(lambda: ready(cluster.get("ccs", STACK, "-n", ns)), "the upgraded stack reconciled and Ready")
    mw = f"Deployment/{STACK}-mw"
    eventually(
        lambda: mw_memory_limit(workloads(cluster, ns, STACK)[mw]) == "600Mi", "the mw Deployment changed"
    )
    time.sleep(3)  # three ticks: a pass that touched another workload would show by now
    after = workloads(cluster, ns, STACK)
    changed = sorted(k for k in before if after[k]["spec"]["template"] != before[k]["spec"]["template"])
    assert changed == [mw], changed
    assert {k: o["metadata"]["generation"] for k, o in after.items() if k != mw} == {
        k: o["metadata"]["generation"] for k, o in before.items() if k != mw
    }
    new_sets = replica_sets(cluster, ns, mw_selector)
    new_rs = active(new_sets)
    assert new_rs not in mw_sets and new_sets[active(mw_sets)] == 0
    eventually(
        lambda: set(running_pods_of(cluster, ns, mw_selector).values()) == {new_rs.rsplit("-", 1)[1]},
        "the mw pods of the new ReplicaSet",
    )

    # rollback: revision 3 is revision 1 again, in the spec and in the mw Deployment (its first ReplicaSet)
    helm("rollback", STACK, "1", "-n", ns)
    history = helm.history(STACK, ns)
    assert [(r["revision"], r["status"]) for r in history][-1] == (3, "deployed"), history
    assert cluster.get("ccs", STACK, "-n", ns)["spec"] == first_spec
    eventually(
        lambda: mw_memory_limit(workloads(cluster, ns, STACK)[mw]) == "512Mi", "the mw Deployment back"
    )
    eventually(
        lambda: active(replica_sets(cluster, ns, mw_selector)) == active(mw_sets), "mw's first ReplicaSet"
    )
    eventually(lambda: ready(cluster.get("ccs", STACK, "-n", ns)), "Ready after the rollback")

    # uninstall: the stack goes (the operator removes its finalizer), the garbage collector takes every
    # child; the claims of the managed back ends stay (storage.deletionPolicy Retain, the default)
    claims_before = {c["metadata"]["name"] for c in cluster.get("pvc", "-n", ns)["items"]}
    assert claims_before and all(c.startswith(f"data-{STACK}-") for c in claims_before), claims_before
    helm("uninstall", STACK, "-n", ns, "--wait")
    cluster.wait_gone("ccs", STACK, "-n", ns)
    mine = f"app.kubernetes.io/instance={STACK}"
    eventually(lambda: cluster.get(STACK_KINDS, "-n", ns, "-l", mine)["items"] == [], "every child gone")
    assert cluster.kubectl("get", "secret", "cellcelly-mw", "-n", ns).returncode != 0  # the chart's Secret
    eventually(lambda: cluster.get("pods", "-n", ns, "-l", mine)["items"] == [], "every pod gone")
    assert {c["metadata"]["name"] for c in cluster.get("pvc", "-n", ns)["items"]} == claims_before


def _kind_values(cluster: Cluster, helm: Helm, ns: str) -> None:
    """The values the kind e2e installs in GitHub Actions: accepted by the real server and Ready under the
    operator chart's default scope (the operator in the stack's namespace, as e2e/kind_stack.py installs
    it); uninstalled with deletionPolicy Delete, its claims go with it."""
    helm(
        "install",
        "e2e",
        str(CHARTS / "cellcelly-stack"),
        "-n",
        ns,
        "--values",
        str(ROOT / "e2e" / "kind-values.yaml"),
    )
    cluster.ok("wait", "--for=condition=Ready", "ccs/e2e", "-n", ns, "--timeout=90s")
    assert cluster.get("ingress", "e2e-mw", "-n", ns)["spec"]["rules"][0]["host"] == "localhost"
    claims = [
        c for c in cluster.get("pvc", "-n", ns)["items"] if c["metadata"]["name"].startswith("data-e2e-")
    ]
    assert claims
    helm("uninstall", "e2e", "-n", ns, "--wait")
    cluster.wait_gone("ccs", "e2e", "-n", ns)
    eventually(
        lambda: (
            not [
                c
                for c in cluster.get("pvc", "-n", ns)["items"]
                if c["metadata"]["name"].startswith("data-e2e-")
            ]
        ),
        "the e2e stack's claims deleted (deletionPolicy Delete)",
    )
