"""The managed back ends' logins and the NetworkPolicies on a real API server (scripts/k8s.sh,
Kubernetes 1.36.3) with the operator (`kopf run`): the Secrets the operator generates and every
NetworkPolicy it builds are accepted by the server's own validation, owned by the stack (the
controller-manager's garbage collector removes them with it), every secretKeyRef of every workload names
a Secret and key that exist, a later pass never rotates a login (and adds the one a newer version
brings to a Secret made before it), and spec.networkPolicies.enabled=false or a component turned off
prunes its policies.

kwok runs no container and no CNI: nothing here shows a policy enforced (that a pod is refused); what is
enforced is proven by tests/operator/test_operator_security.py's selectors against the pods' labels and,
for the logins, by tests/integration/test_operator_backend_logins.py against real Kafka and VoltDB."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cellcelly_operator import children, spec
from chart_operator import ChartOperator, eventually, operating
from k8s_cluster import ROOT, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NS = "security"
NAME = "demo"
GENERATED = (f"{NAME}-kafka-users", f"{NAME}-voltdb", f"{NAME}-oracle", f"{NAME}-ocs-api-key")


@pytest.fixture
def operator(cluster: Cluster, tmp_path: Path) -> Iterator[ChartOperator]:
    with operating(cluster, tmp_path, NS, NAME) as op:
        yield op


def manifest(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body = yaml.safe_load((ROOT / "crds" / "samples" / "minimal.yaml").read_text(encoding="utf-8"))
    body = copy.deepcopy(body)
    body["metadata"] = {"name": NAME, "namespace": NS}
    body["spec"].update({"kafka": {"ui": {"enabled": True}}, **(extra or {})})
    return body


def items(cluster: Cluster, kind: str) -> dict[str, dict[str, Any]]:
    got = cluster.get(kind, "-n", NS, "-l", f"app.kubernetes.io/instance={NAME}")["items"]
    return {o["metadata"]["name"]: o for o in got}


def policies_wanted(cluster: Cluster) -> set[str]:
    stack = spec.from_body(cluster.get("ccs", NAME, "-n", NS))
    return {m["metadata"]["name"] for m in children.build(stack) if m["kind"] == "NetworkPolicy"}


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def test_logins_and_policies_on_the_real_server(cluster: Cluster, operator: ChartOperator) -> None:
    done = cluster.apply_object(manifest())
    assert done.returncode == 0, done.stderr
    uid = cluster.get("ccs", NAME, "-n", NS)["metadata"]["uid"]
    wanted = policies_wanted(cluster)
    assert f"{NAME}-default-deny" in wanted and f"{NAME}-kafka-ingress" in wanted

    # every policy the builders make, created (so validated) by the server, and owned by the stack
    def policies_made() -> dict[str, dict[str, Any]] | None:
        found = items(cluster, "networkpolicies")
        return found if set(found) == wanted else None

    def secrets_made() -> dict[str, dict[str, Any]] | None:
        found = items(cluster, "secrets")
        return found if set(GENERATED) <= set(found) else None

    got = eventually(policies_made, "policies")
    secrets = eventually(secrets_made, "generated Secrets")
    for obj in [*got.values(), *(secrets[n] for n in GENERATED)]:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == uid and owner["controller"] is True, obj["metadata"]["name"]
    kafka_users = decoded(secrets[f"{NAME}-kafka-users"])
    assert set(kafka_users) == {"ocs", "dgw", "sf", "notifier", "kafdrop", "broker", "controller"}
    assert len(set(kafka_users.values())) == len(kafka_users)  # a password each
    assert decoded(secrets[f"{NAME}-voltdb"])["username"] == "cellcelly"

    # every secretKeyRef of every workload names a Secret and key that exist (or is optional)
    def workloads_ready() -> list[dict[str, Any]] | None:
        found = [*items(cluster, "deployments").values(), *items(cluster, "statefulsets").values()]
        return found if len(found) >= 10 else None

    all_secrets = {n: decoded(s) for n, s in items(cluster, "secrets").items()}
    refs = 0
    for workload in eventually(workloads_ready, "workloads"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is None or ref.get("optional") or ref["name"].startswith("cellcelly-"):
                    continue  # the user's own Secrets (the MW token, the admin token) are not ours to make
                refs += 1
                assert ref["key"] in all_secrets.get(ref["name"], {}), (workload["metadata"]["name"], env)
    assert refs >= 20

    # a later pass (the spec changed, every child reconciled) rotates no login
    before = {n: all_secrets[n] for n in GENERATED}
    generation = cluster.get("ccs", NAME, "-n", NS)["metadata"]["generation"]
    assert cluster.apply_object(manifest({"services": {"mw": {"replicas": 3}}})).returncode == 0
    eventually(
        lambda: (
            cluster.get("ccs", NAME, "-n", NS).get("status", {}).get("observedGeneration", 0) > generation
        ),
        "the update reconciled",
    )
    assert {n: decoded(s) for n, s in items(cluster, "secrets").items() if n in GENERATED} == before

    # a back end made external: its policy goes (its login Secret stays: a formatted log keeps it)
    external = {"kafka": {"mode": "external", "external": {"bootstrapServers": "127.0.0.1:9092"}}}
    assert cluster.apply_object(manifest(external)).returncode == 0
    eventually(
        lambda: f"{NAME}-kafka-ingress" not in items(cluster, "networkpolicies"), "the kafka policy pruned"
    )
    assert f"{NAME}-kafka-users" in items(cluster, "secrets")

    # spec.networkPolicies.enabled=false: every policy pruned; back on: all back
    assert cluster.apply_object(manifest({"networkPolicies": {"enabled": False}})).returncode == 0
    eventually(lambda: not items(cluster, "networkpolicies"), "every policy pruned")
    assert cluster.apply_object(manifest()).returncode == 0
    eventually(lambda: set(items(cluster, "networkpolicies")) == wanted, "the policies back")

    # the stack deleted: the garbage collector takes the policies and Secrets (owner references)
    cluster.ok("delete", "ccs", NAME, "-n", NS, "--wait=true", "--timeout=60s")
    eventually(
        lambda: not items(cluster, "networkpolicies") and not set(GENERATED) & set(items(cluster, "secrets")),
        "policies and Secrets collected",
    )


def test_a_login_a_newer_version_adds_reaches_a_stack_made_before_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A stack whose Kafka users Secret an operator version before the DGW's login made (no `dgw` key:
    its DGW pods waited on the missing key forever) gets the key on the next pass, under the chart's own
    RBAC; no other password changes (the formatted log keeps them)."""
    ns, users = "upgrade", f"{NAME}-kafka-users"
    body = manifest()
    body["metadata"]["namespace"] = ns

    def logins() -> dict[str, str] | None:
        got = cluster.kubectl("get", "secret", users, "-n", ns, "-o", "json")
        return decoded(yaml.safe_load(got.stdout)) if got.returncode == 0 else None

    with operating(cluster, tmp_path, ns, NAME) as op:
        assert cluster.apply_object(body).returncode == 0
        before = eventually(logins, "the Kafka logins")
        assert "dgw" in before
        # as the older version left it: the operator is stopped, so no pass puts the key back meanwhile
        op.stop()
        remove = '[{"op": "remove", "path": "/data/dgw"}]'
        cluster.ok("patch", "secret", users, "-n", ns, "--type=json", "-p", remove)
        old = logins()
        assert old is not None and "dgw" not in old
        op.start()
        after = eventually(lambda: got if "dgw" in (got := logins() or {}) else None, "the dgw login added")
        assert {k: v for k, v in after.items() if k != "dgw"} == old  # none rotated
        assert after["dgw"] and after["dgw"] not in old.values()
        assert f"added ['dgw'] to Secret/{users}" in op.text()
        assert logins() == after  # later passes leave it be
