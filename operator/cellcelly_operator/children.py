"""Every child object of one stack, and where each kind lives in the Kubernetes API."""

from __future__ import annotations

from dataclasses import dataclass

from cellcelly_operator import (
    hazelcast,
    kafka,
    monitoring,
    networkpolicy,
    oracle,
    postgresql,
    services,
    voltdb,
)
from cellcelly_operator.labels import Manifest
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import placed


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    def collection(self, namespace: str) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


KINDS = {
    k.kind: k
    for k in (
        Kind("v1", "ConfigMap", "configmaps"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "Service", "services"),
        Kind("v1", "Pod", "pods"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("apps/v1", "StatefulSet", "statefulsets"),
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        Kind("networking.k8s.io/v1", "Ingress", "ingresses"),
        Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
        Kind("events.k8s.io/v1", "Event", "events"),
    )
}

# what delete cleans up explicitly (a real cluster's garbage collector does it through owner references)
OWNED_KINDS = (
    "Deployment",
    "StatefulSet",
    "Service",
    "ConfigMap",
    "PodDisruptionBudget",
    "Ingress",
    "NetworkPolicy",
    "ServiceMonitor",
)


def kind_of(manifest: Manifest) -> Kind:
    return KINDS[manifest["kind"]]


def secret_additions(made: Manifest, live: Manifest) -> dict[str, str]:
    """The entries of a generated Secret (a login, a key) that the live one lacks: those a newer
    operator version added (the `dgw` Kafka user) go in, and no entry it has is ever rewritten (the
    back end stored that password when it first started: rotating it locks the services out)."""
    have = {*(live.get("data") or {}), *(live.get("stringData") or {})}
    return {k: v for k, v in made.get("stringData", {}).items() if k not in have}


def build(stack: Stack) -> list[Manifest]:
    """Children in the order they are applied: the policies first (no pod runs a moment unguarded),
    configuration before what mounts it. Every pod goes where `spec.placement` says."""
    made = [
        *networkpolicy.build(stack),
        *kafka.build(stack),
        *voltdb.build(stack),
        *hazelcast.build(stack),
        *oracle.build(stack),
        *postgresql.build(stack),
        *services.build(stack),
        *monitoring.build(stack),
    ]
    if not stack.spec.pod_disruption_budgets.enabled:
        made = [m for m in made if m["kind"] != "PodDisruptionBudget"]
    return placed(made, stack.spec.placement)


def workloads(stack: Stack) -> dict[str, tuple[str, str]]:
    """component -> (kind, name) of the workload whose readiness is the component's readiness."""
    out: dict[str, tuple[str, str]] = {}
    for manifest in build(stack):
        if manifest["kind"] in ("Deployment", "StatefulSet"):
            component = manifest["metadata"]["labels"]["app.kubernetes.io/name"]
            out[component] = (manifest["kind"], manifest["metadata"]["name"])
    return out
