"""Hazelcast members that find each other through Kubernetes discovery (DNS of a headless Service)."""

from __future__ import annotations

import yaml

from cellcelly_operator.labels import Manifest
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import (
    config_map,
    container_security,
    headless_name,
    pdb,
    pod_security,
    service,
    statefulset,
    tcp_probe,
)

COMPONENT = "hazelcast"
PORT = 5701
HAZELCAST_UID = 1001
CLUSTER = "cellcelly"


def config_yaml(stack: Stack) -> str:
    config = {
        "hazelcast": {
            "cluster-name": CLUSTER,
            "network": {
                "join": {
                    "multicast": {"enabled": False},
                    "kubernetes": {
                        "enabled": True,
                        "service-dns": stack.dns(headless_name(stack, COMPONENT)),
                        "service-port": PORT,
                    },
                },
            },
        }
    }
    return yaml.safe_dump(config, sort_keys=False)


def members(stack: Stack) -> str:
    if stack.spec.hazelcast.mode == "external":
        return stack.spec.hazelcast.external.members
    return f"{stack.dns(stack.child(COMPONENT))}:{PORT}"


def cluster_name(stack: Stack) -> str:
    if stack.spec.hazelcast.mode == "external":
        return stack.spec.hazelcast.external.cluster_name
    return CLUSTER


def build(stack: Stack) -> list[Manifest]:
    hz = stack.spec.hazelcast
    if hz.mode != "managed":
        return []
    config_name = f"{stack.child(COMPONENT)}-config"
    config = config_map(stack, COMPONENT, config_name, {"hazelcast.yaml": config_yaml(stack)})
    container = {
        "name": "hazelcast",
        "image": stack.spec.images.hazelcast,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "env": [{"name": "JAVA_OPTS", "value": "-Dhazelcast.config=/etc/hazelcast/hazelcast.yaml"}],
        "ports": [{"name": "member", "containerPort": PORT}],
        "readinessProbe": tcp_probe("member"),
        "livenessProbe": tcp_probe("member", failures=6, initial=30),
        "resources": hz.resources.manifest(),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/hazelcast", "readOnly": True}],
    }
    pod_spec = {
        "securityContext": pod_security(HAZELCAST_UID),
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_name}}],
    }
    ports = [("member", PORT, "TCP")]
    return [
        config,
        service(stack, COMPONENT, ports, headless=True, name=headless_name(stack, COMPONENT)),
        service(stack, COMPONENT, ports),
        statefulset(stack, COMPONENT, replicas=hz.replicas, pod_spec=pod_spec, claims=[]),
        pdb(stack, COMPONENT, 1),
    ]
