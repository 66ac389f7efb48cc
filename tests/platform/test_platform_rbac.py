"""The operator chart grants exactly what the operator does: verbs derived from the operator's own calls.

The operator's handlers and reconcile functions run here against a recording client (a subclass of the
operator's own `Kube` whose transport records each request and answers from a made-up cluster: children
that drifted, one that is no longer wanted, a crash-looping pod, a claim, a failed-over Oracle primary),
so every path that sends a request is taken. Each request becomes (API group, resource, verb) as the API
server's authorizer sees it; with kopf's own needs (listed below, with why) that must equal the rules of
the chart's Role (namespace scope) and ClusterRole (cluster scope). A verb the operator starts using
without a grant fails here, and so does a grant nothing uses. (On a real server the issue saw the
missing one as `secrets is forbidden: ... cannot create resource "secrets"`.)
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from typing import Any

import kopf
import pytest
from cellcelly_operator import children, handlers, kafka, spec
from cellcelly_operator.kube import APPLY, Kube
from platform_crd import defaulted, samples
from platform_helm import Helm
from test_platform_charts import by_kind, grants, render

pytestmark = [pytest.mark.platform, pytest.mark.timeout(300)]

Grant = tuple[str, str]  # (API group, resource[/subresource])

# What kopf itself sends, not our code: it lists and watches the stacks, patches them (its finalizer and
# its progress annotations) and their status (the handlers' `patch.status`), and posts core Events
# (settings.posting). Peering (kopf.dev) only with --peering; the chart grants it in both modes so a
# values change alone turns it on. The finalizers subresource: an owner reference with
# blockOwnerDeletion needs `update` on it where the OwnerReferencesPermissionEnforcement admission
# plugin runs (OpenShift and hardened clusters).
KOPF_NEEDS: dict[Grant, set[str]] = {
    ("cellcelly.io", "cellcellystacks"): {"list", "watch", "patch"},
    ("cellcelly.io", "cellcellystacks/status"): {"patch"},
    ("cellcelly.io", "cellcellystacks/finalizers"): {"update"},
    ("", "events"): {"create"},
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
}
# kopf in cluster scope only: cluster-wide peering. No namespaces or CRDs: kopf's scanning is off in both
# scopes (settings.tune), and the CRD check at start uses discovery, which every account may read.
KOPF_CLUSTER_NEEDS: dict[Grant, set[str]] = {
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
}


def authz(method: str, path: str, params: dict[str, Any] | None) -> tuple[Grant, str]:
    """(group, resource, verb) of one request, as the API server's RBAC authorizer names them."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    assert rest[0] == "namespaces", f"the operator sends only namespaced requests: {path}"
    plural, tail = rest[2], rest[3:]
    resource = f"{plural}/{tail[1]}" if len(tail) > 1 else plural
    watching = bool(params and params.get("watch"))
    verb = {
        "GET": "watch" if watching else ("get" if tail else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if tail else "deletecollection",
    }[method]
    return (group, resource), verb


class Recording(Kube):
    """The operator's client with its transport replaced: records, and answers from `world`."""

    def __init__(self, world: dict[str, Any]) -> None:  # no session: nothing leaves the process
        self.world = world
        self.calls: list[tuple[Grant, str]] = []
        # the names of the Secrets it reads or patches (rbac.stacks narrows both to them)
        self.secrets_got: set[str] = set()

    async def close(self) -> None:
        return None

    async def _call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **kw: Any
    ) -> dict[str, Any] | None:
        grant, verb = authz(method, path, kw.get("params"))
        self.calls.append((grant, verb))
        if grant == ("", "secrets") and verb in ("get", "patch"):
            self.secrets_got.add(path.rstrip("/").rsplit("/", 1)[1])
        if content_type == APPLY:
            # server-side apply creates what is absent, and the server then checks `create` as well
            # (seen on Kubernetes 1.36: `cannot create resource "configmaps"` with patch granted alone)
            self.calls.append((grant, "create"))
        if method != "GET":
            return {}
        if path in self.world:
            got: dict[str, Any] | None = copy.deepcopy(self.world[path])
            return got
        return {"items": []} if verb == "list" else None  # an empty collection; an absent object (404)


def _labels(stack: spec.Stack, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": stack.name,
        "app.kubernetes.io/part-of": "cellcelly",
        "app.kubernetes.io/managed-by": "cellcelly-operator",
    }


def world_of(stack: spec.Stack, body: dict[str, Any]) -> dict[str, Any]:
    """A cluster where every pass has work: each child drifted, one child no longer wanted per kind, a
    crash-looping pod, a claim, and the stack itself (the timer reads it afresh)."""
    lists: dict[str, list[dict[str, Any]]] = {}
    for manifest in children.build(stack):
        live = copy.deepcopy(manifest)
        live["metadata"].setdefault("annotations", {})["drift"] = "yes"
        live.pop("spec", None)  # what the operator wants is gone: a patch puts it back
        live.pop("data", None)
        lists.setdefault(manifest["kind"], []).append(live)
    for kind_name in children.OWNED_KINDS:
        meta = {
            "name": f"{stack.name}-unwanted",
            "namespace": stack.namespace,
            "labels": _labels(stack, "old"),
        }
        lists.setdefault(kind_name, []).append({"kind": kind_name, "metadata": meta})
    component, _ = next(iter(children.workloads(stack).items()))
    crashing = {"name": "CrashLoopBackOff"}
    pod_status = {
        "containerStatuses": [{"restartCount": 7, "state": {"waiting": {"reason": crashing["name"]}}}]
    }
    pod_meta = {"name": f"{stack.name}-{component}-0", "labels": _labels(stack, component)}
    lists["Pod"] = [{"kind": "Pod", "metadata": pod_meta, "status": pod_status}]
    claim_meta = {"name": f"data-{stack.name}-kafka-0", "labels": _labels(stack, "kafka")}
    lists["PersistentVolumeClaim"] = [{"kind": "PersistentVolumeClaim", "metadata": claim_meta}]
    world: dict[str, Any] = {
        children.KINDS[k].collection(stack.namespace): {"items": items} for k, items in lists.items()
    }
    world[handlers._path(stack)] = body
    if stack.spec.kafka.mode == "managed":
        # the Kafka logins as an operator version before the DGW's user left them: the entry is added
        users = kafka.generated_users_secret(stack, lambda: "x")
        old = {k: "eA==" for k in users["stringData"] if k != "dgw"}
        users = {**users, "data": old, "metadata": {**users["metadata"], "resourceVersion": "7"}}
        del users["stringData"]
        world[children.KINDS["Secret"].item(stack.namespace, kafka.users_secret_name(stack))] = users
    return world


def stacks() -> list[dict[str, Any]]:
    """The samples, one with every optional child (ingress, monitoring) and PVCs deleted with it, and the
    failover sample after its primary has been unreachable for an hour."""
    out = [copy.deepcopy(s) for s in samples().values() if s["metadata"].get("annotations") is None]
    everything = copy.deepcopy(samples()["full-managed"])
    everything["metadata"]["name"] = "everything"
    everything["spec"]["monitoring"] = {"enabled": True}
    everything["spec"]["services"] = {"mw": {"ingress": {"enabled": True, "host": "care.example"}}}
    everything["spec"]["storage"] = {"deletionPolicy": "Delete"}
    out.append(everything)
    down = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    for body in out:
        body["metadata"].setdefault("namespace", "telco")
        body["metadata"]["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, body["metadata"]["name"]))
        body["metadata"]["generation"] = 1
        body["status"] = {"oracle": {"active": "primary", "primaryDownSince": down}}
    return [defaulted(b) for b in out]


async def _down(host: str, port: int, timeout: float) -> bool:
    return False


def operator_calls(
    monkeypatch: pytest.MonkeyPatch, secrets_got: dict[str, set[str]] | None = None
) -> dict[Grant, set[str]]:
    """Every request the operator's handlers send over the samples, create to delete (and, into
    `secrets_got`, the names of the Secrets it reads or patches, by stack)."""
    used: dict[Grant, set[str]] = {}

    async def run() -> None:
        for body in stacks():
            stack = spec.from_body(body)
            # first a cluster without the stack's children (all created), then one where they drifted
            rec = Recording({handlers._path(stack): body})
            # the failover sample's primary: unreachable
            memo = kopf.Memo(runtime=handlers.Runtime(probe=_down, client=rec))
            await handlers.apply_stack(body=body, patch=kopf.Patch(), memo=memo)
            rec.world = world_of(stack, body)
            await handlers.apply_stack(body=body, patch=kopf.Patch(), memo=memo)
            await handlers.tick(body=body, patch=kopf.Patch(), memo=memo)
            await handlers.delete_stack(body=body, memo=memo)
            for grant, verb in rec.calls:
                used.setdefault(grant, set()).add(verb)
            if secrets_got is not None:
                secrets_got.setdefault(stack.name, set()).update(rec.secrets_got)

    asyncio.run(run())
    return used


def merged(*parts: dict[Grant, set[str]]) -> dict[Grant, set[str]]:
    out: dict[Grant, set[str]] = {}
    for part in parts:
        for grant, verbs in part.items():
            out.setdefault(grant, set()).update(verbs)
    return out


def test_the_recording_sees_every_kind_of_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The derivation can fail: it must see creates (Secrets among them), patches, prunes, heals."""
    used = operator_calls(monkeypatch)
    assert {"get", "create", "patch"} <= used[("", "secrets")]
    for grant in (("apps", "deployments"), ("apps", "statefulsets"), ("", "configmaps")):
        assert {"list", "create", "patch", "delete"} <= used[grant], grant
    assert "delete" in used[("", "pods")] and "delete" in used[("", "persistentvolumeclaims")]
    assert "create" in used[("events.k8s.io", "events")]


def test_namespace_scope_grants_exactly_what_the_operator_uses(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed = merged(operator_calls(monkeypatch), KOPF_NEEDS)
    docs = render(helm, "operator-namespaced")
    roles = by_kind(docs, "Role")
    assert roles
    for role in roles:
        assert grants(role) == needed, role["metadata"]["namespace"]
    # nothing cluster-wide: kopf's scanning of namespaces and CRDs is off (settings.tune)
    assert by_kind(docs, "ClusterRole") == [] and by_kind(docs, "ClusterRoleBinding") == []


def test_cluster_scope_grants_exactly_what_the_operator_uses(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed = merged(operator_calls(monkeypatch), KOPF_NEEDS, KOPF_CLUSTER_NEEDS)
    (role,) = by_kind(render(helm, "operator-cluster"), "ClusterRole")
    assert grants(role) == needed


def test_rbac_stacks_names_exactly_the_secrets_the_operator_reads(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rbac.stacks (charts/README.md, *Least privilege*): for each stack named, the chart's resourceNames
    for Secrets `get` are exactly the Secrets the operator reads for it (its generated logins and key),
    derived from its calls: a Secret it starts to read under a new name fails here (on a real server it
    would be `forbidden`), and so does a name the chart lists that no stack ever needs."""
    got: dict[str, set[str]] = {}
    operator_calls(monkeypatch, got)
    assert got and all(got.values())
    stacks = sorted(got)
    docs = helm.template("cellcelly-operator", [], ["rbac.stacks={" + ",".join(stacks) + "}"])
    (role,) = by_kind(docs, "Role")
    (named,) = [r for r in role["rules"] if r.get("resourceNames")]
    assert named["resources"] == ["secrets"] and named["verbs"] == ["get", "patch"]
    listed = set(named["resourceNames"])
    for stack, names in got.items():
        assert names <= listed, (stack, names - listed)

    # every name listed is one the operator reads for some stack (the suffix after the stack's name)
    def suffixes(pairs: dict[str, set[str]]) -> set[str]:
        return {name.removeprefix(f"{stack}-") for stack, names in pairs.items() for name in names}

    one = helm.template("cellcelly-operator", [], ["rbac.stacks={x}"])
    (only,) = [r for r in by_kind(one, "Role")[0]["rules"] if r.get("resourceNames")]
    assert suffixes({"x": set(only["resourceNames"])}) == suffixes(got)
