"""NetworkPolicies: the stack's pods take no traffic but what a policy here allows.

One default-deny policy for every pod of the stack, then one allow policy per component: a back end
from the services that dial it (services.BACKEND_USERS) and from its own peers (replication, quorum,
cluster join); the DGW's Diameter port, the MW's HTTP and the IVR's SIP from anywhere; the scraped
metrics ports from anywhere when monitoring is on. Policies add up, so a cluster that needs more (an
in-cluster client of the OCS API) adds its own. Kubelet probes come from the node, which common CNIs
(Calico, Cilium) let through whatever the policy says; `kubectl port-forward` does not pass through
the pod network either. Only ingress is restricted: every service dials out to things outside the
stack (an external database, an SMSC, SMTP).
"""

from __future__ import annotations

from typing import Any

from cellcelly_operator import hazelcast, kafka, oracle, postgresql, services, voltdb
from cellcelly_operator.labels import Manifest, metadata, selector
from cellcelly_operator.monitoring import SCRAPED
from cellcelly_operator.spec import SERVICES, Stack

DEFAULT_DENY = "default-deny"


def _stack_pods(stack: Stack) -> dict[str, Any]:
    return {
        "matchLabels": {"app.kubernetes.io/instance": stack.name, "app.kubernetes.io/part-of": "cellcelly"}
    }


def _pods(stack: Stack, *components: str) -> list[dict[str, Any]]:
    """`from` peers: the pods of these components of this stack (same namespace)."""
    return [{"podSelector": {"matchLabels": selector(stack, c)}} for c in components]


def _ports(*ports: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": proto} for port, proto in ports]


def policy(stack: Stack, component: str, rules: list[dict[str, Any]]) -> Manifest:
    meta = metadata(stack, component, f"{stack.child(component)}-ingress")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": selector(stack, component)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def default_deny(stack: Stack) -> Manifest:
    """No rule: every pod of the stack refuses what no other policy allows."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(stack, DEFAULT_DENY, stack.child(DEFAULT_DENY)),
        "spec": {"podSelector": _stack_pods(stack), "policyTypes": ["Ingress"]},
    }


def users(stack: Stack, backend: str) -> list[str]:
    """The running services that dial a back end (a service scaled to 0 has no pods to admit)."""
    return [s for s in services.BACKEND_USERS[backend] if stack.spec.services.get(s).replicas > 0]


def _backends(stack: Stack) -> list[Manifest]:
    spec = stack.spec
    out: list[Manifest] = []
    if spec.kafka.mode == "managed":
        clients = users(stack, "kafka") + (["kafdrop"] if spec.kafka.ui.enabled else [])
        rules = [{"from": _pods(stack, kafka.COMPONENT)}]  # inter-broker and the controller quorum
        if clients:
            rules.append({"from": _pods(stack, *clients), "ports": _ports((kafka.CLIENT_PORT, "TCP"))})
        out.append(policy(stack, kafka.COMPONENT, rules))
    if spec.voltdb.mode == "managed":
        rules = [{"from": _pods(stack, voltdb.COMPONENT)}]  # the internal mesh and admin port
        if clients := users(stack, "voltdb"):
            rules.append({"from": _pods(stack, *clients), "ports": _ports((voltdb.CLIENT_PORT, "TCP"))})
        out.append(policy(stack, voltdb.COMPONENT, rules))
    if spec.hazelcast.mode == "managed":
        rules = [{"from": _pods(stack, hazelcast.COMPONENT)}]  # members join each other
        if clients := users(stack, "hazelcast"):
            rules.append({"from": _pods(stack, *clients), "ports": _ports((hazelcast.PORT, "TCP"))})
        out.append(policy(stack, hazelcast.COMPONENT, rules))
    record = spec.record_component
    if getattr(spec, record).mode == "managed" and (clients := users(stack, record)):
        port = oracle.PORT if record == oracle.COMPONENT else postgresql.PORT
        out.append(policy(stack, record, [{"from": _pods(stack, *clients), "ports": _ports((port, "TCP"))}]))
    return out


def _services(stack: Stack) -> list[Manifest]:
    spec = stack.spec
    out: list[Manifest] = []
    for svc in SERVICES:
        if spec.services.get(svc).replicas == 0:
            continue
        rules: list[dict[str, Any]] = []
        match svc:
            case "dgw" | "mw" | "ivr":
                # the network's edge: Diameter peers, subscribers' browsers, SIP trunks (each service
                # checks its peers itself: allowedPeers, logins, trustedPeers)
                port = services.ports(stack, svc)[0]
                rules.append({"ports": _ports((port.port, port.protocol))})
            case "ocs":
                rules.append({"from": _pods(stack, "dgw"), "ports": _ports((8082, "TCP"))})
        if spec.monitoring.enabled and svc in SCRAPED:
            # Prometheus lives in a namespace we cannot know: the metrics port from any pod
            port = next(p for p in services.ports(stack, svc) if p.name == SCRAPED[svc])
            rules.append({"from": [{"namespaceSelector": {}}], "ports": _ports((port.port, port.protocol))})
        if rules:
            out.append(policy(stack, svc, rules))
    return out


def build(stack: Stack) -> list[Manifest]:
    if not stack.spec.network_policies.enabled:
        return []
    return [default_deny(stack), *_backends(stack), *_services(stack)]
