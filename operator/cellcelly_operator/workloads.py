"""Pieces every workload shares: hardened pod and container security, probes, Services, PDBs, PVCs,
ConfigMaps."""

from __future__ import annotations

from typing import Any

from cellcelly_operator.labels import Manifest, metadata, selector
from cellcelly_operator.spec import Placement, Stack, Storage


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(read_only_root: bool = False) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def http_probe(path: str, port: str, period: int = 10, failures: int = 3) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures}


def tcp_probe(port: str, period: int = 10, failures: int = 3, initial: int = 0) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
    }
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def pod_env_identity() -> list[dict[str, Any]]:
    """POD_NAME/POD_NAMESPACE from the downward API, for $(POD_NAME) expansion in later env vars."""
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]


def config_map(
    stack: Stack, component: str, name: str, data: dict[str, str], labels: dict[str, str] | None = None
) -> Manifest:
    """A ConfigMap owned by the stack; `labels` are added to the standard ones."""
    meta = metadata(stack, component, name)
    meta["labels"].update(labels or {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def service(
    stack: Stack,
    component: str,
    ports: list[tuple[str, int, str]],
    *,
    headless: bool = False,
    kind: str = "ClusterIP",
    name: str | None = None,
) -> Manifest:
    spec: dict[str, Any] = {
        "selector": selector(stack, component),
        "ports": [{"name": n, "port": p, "targetPort": n, "protocol": proto} for n, p, proto in ports],
    }
    if headless:
        # peers must find each other before they are ready (quorum, cluster join)
        spec.update(clusterIP="None", publishNotReadyAddresses=True)
    else:
        spec["type"] = kind
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(stack, component, name), "spec": spec}


def headless_name(stack: Stack, component: str) -> str:
    return f"{stack.child(component)}-headless"


def pdb(stack: Stack, component: str, max_unavailable: int) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(stack, component),
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": selector(stack, component)}},
    }


def pvc_template(stack: Stack, component: str, storage: Storage, name: str = "data") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    meta = metadata(stack, component, name)
    # a PVC template's metadata carries labels only (the StatefulSet controller names and owns the claims)
    return {"metadata": {"name": name, "labels": meta["labels"]}, "spec": spec}


def retention_policy(stack: Stack) -> dict[str, str]:
    """The StatefulSet's own PVC policy (k8s >= 1.27) mirrors storage.deletionPolicy."""
    when = "Delete" if stack.spec.storage.deletion_policy == "Delete" else "Retain"
    return {"whenDeleted": when, "whenScaled": "Retain"}


def statefulset(
    stack: Stack,
    component: str,
    *,
    replicas: int,
    pod_spec: dict[str, Any],
    claims: list[dict[str, Any]],
    template_annotations: dict[str, str] | None = None,
) -> Manifest:
    meta = metadata(stack, component)
    template_meta: dict[str, Any] = {"labels": meta["labels"]}
    if template_annotations:
        template_meta["annotations"] = template_annotations
    spec: dict[str, Any] = {
        "serviceName": headless_name(stack, component),
        "replicas": replicas,
        # peers start together: a quorum cannot form one pod at a time
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector(stack, component)},
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if claims:
        spec["volumeClaimTemplates"] = claims
        spec["persistentVolumeClaimRetentionPolicy"] = retention_policy(stack)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}


def single_database(
    stack: Stack, component: str, port: int, pod_spec: dict[str, Any], storage: Storage
) -> list[Manifest]:
    """A managed database for trials (Oracle Free, PostgreSQL): one pod with its claim, a headless
    Service for its stable name and a Service the services dial, port named "sql"."""
    ports = [("sql", port, "TCP")]
    return [
        service(stack, component, ports, headless=True, name=headless_name(stack, component)),
        service(stack, component, ports),
        statefulset(
            stack, component, replicas=1, pod_spec=pod_spec, claims=[pvc_template(stack, component, storage)]
        ),
    ]


def login_secret(stack: Stack, component: str, password: str) -> Manifest:
    """A managed database's login, created once when missing (never overwritten: the database
    stored it at its first start)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, component),
        "type": "Opaque",
        "stringData": {"username": "cellcelly", "password": password},
    }


def pod_dns(stack: Stack, component: str, ordinal: int) -> str:
    return f"{stack.child(component)}-{ordinal}.{stack.dns(headless_name(stack, component))}"


def placed(manifests: list[Manifest], placement: Placement) -> list[Manifest]:
    """`manifests` with the stack's nodeSelector and tolerations on every pod template: one pass over
    the children, so no builder can forget them (a pod left off the dedicated nodes, or unscheduled)."""
    if not placement.node_selector and not placement.tolerations:
        return manifests
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "StatefulSet"):
            pod = manifest["spec"]["template"]["spec"]
            if placement.node_selector:
                pod["nodeSelector"] = {**pod.get("nodeSelector", {}), **placement.node_selector}
            if placement.tolerations:
                pod["tolerations"] = [*pod.get("tolerations", []), *map(dict, placement.tolerations)]
    return manifests
