"""Kafka in KRaft mode (every node broker and controller), and Kafdrop beside it when asked for."""

from __future__ import annotations

import base64
import uuid

from cellcelly_operator.labels import Manifest, metadata, selector
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import (
    container_security,
    headless_name,
    http_probe,
    pdb,
    pod_dns,
    pod_env_identity,
    pod_security,
    pvc_template,
    service,
    statefulset,
    tcp_probe,
)

COMPONENT = "kafka"
CLIENT_PORT = 9092
CONTROLLER_PORT = 9093
KAFKA_UID = 1000  # appuser in apache/kafka


def cluster_id(stack: Stack) -> str:
    """KRaft wants a base64url UUID: the stack's uid (a UUID the API server gave), so a re-render never
    changes it."""
    return base64.urlsafe_b64encode(uuid.UUID(stack.uid).bytes).decode().rstrip("=")


def quorum_voters(stack: Stack) -> str:
    n = stack.spec.kafka.replicas
    return ",".join(f"{i}@{pod_dns(stack, COMPONENT, i)}:{CONTROLLER_PORT}" for i in range(n))


def bootstrap(stack: Stack) -> str:
    if stack.spec.kafka.mode == "external":
        return stack.spec.kafka.external.bootstrap_servers
    return f"{stack.dns(stack.child(COMPONENT))}:{CLIENT_PORT}"


CA_DIR = "/etc/cellcelly/kafka"  # where the services find the external Kafka's CA (the Secret's ca.crt)


def security_protocol(stack: Stack) -> str:
    """How the services reach Kafka: the managed one is in-cluster plaintext; an external one with a
    login and no protocol given is taken to want SASL over TLS (what managed Kafka offerings serve)."""
    if stack.spec.kafka.mode != "external":
        return "PLAINTEXT"
    ext = stack.spec.kafka.external
    if ext.security_protocol is not None:
        return ext.security_protocol
    return "SASL_SSL" if ext.secret_ref.name else "PLAINTEXT"


def ca_file(stack: Stack) -> str | None:
    """Where the services find the CA of an external Kafka over TLS (its Secret's ca.crt, mounted)."""
    if security_protocol(stack).endswith("SSL") and stack.spec.kafka.external.secret_ref.name:
        return f"{CA_DIR}/ca.crt"
    return None


def client_config(stack: Stack) -> dict[str, str]:
    """CELLCELLY_KAFKA_* the services read (the login itself comes from the Secret, as env)."""
    protocol = security_protocol(stack)
    out = {"CELLCELLY_KAFKA_BOOTSTRAP": bootstrap(stack), "CELLCELLY_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL_"):
        out["CELLCELLY_KAFKA_SASL_MECHANISM"] = stack.spec.kafka.external.sasl_mechanism
    cafile = ca_file(stack)
    if cafile is not None:
        out["CELLCELLY_KAFKA_SSL_CAFILE"] = cafile
    return out


def build(stack: Stack) -> list[Manifest]:
    kafka = stack.spec.kafka
    out: list[Manifest] = []
    if kafka.mode == "managed":
        out += _managed(stack)
    if kafka.ui.enabled:
        out += _kafdrop(stack)
    return out


def _managed(stack: Stack) -> list[Manifest]:
    kafka = stack.spec.kafka
    n = kafka.replicas
    headless = headless_name(stack, COMPONENT)
    env = [
        *pod_env_identity(),
        {"name": "CLUSTER_ID", "value": cluster_id(stack)},
        {"name": "KAFKA_PROCESS_ROLES", "value": "broker,controller"},
        {"name": "KAFKA_CONTROLLER_QUORUM_VOTERS", "value": quorum_voters(stack)},
        {"name": "KAFKA_LISTENERS", "value": f"PLAINTEXT://:{CLIENT_PORT},CONTROLLER://:{CONTROLLER_PORT}"},
        {
            "name": "KAFKA_ADVERTISED_LISTENERS",
            "value": f"PLAINTEXT://$(POD_NAME).{headless}.$(POD_NAMESPACE).svc.cluster.local:{CLIENT_PORT}",
        },
        {"name": "KAFKA_CONTROLLER_LISTENER_NAMES", "value": "CONTROLLER"},
        {"name": "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "value": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"},
        {"name": "KAFKA_INTER_BROKER_LISTENER_NAME", "value": "PLAINTEXT"},
        {"name": "KAFKA_LOG_DIRS", "value": "/var/lib/kafka/data/logs"},
        {"name": "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "value": str(min(3, n))},
        {"name": "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "value": str(min(3, n))},
        {"name": "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "value": str(min(2, n))},
        {"name": "KAFKA_MIN_INSYNC_REPLICAS", "value": str(min(2, n))},
        {"name": "KAFKA_DEFAULT_REPLICATION_FACTOR", "value": str(min(3, n))},
        {"name": "KAFKA_AUTO_CREATE_TOPICS_ENABLE", "value": "true"},
    ]
    container = {
        "name": "kafka",
        "image": stack.spec.images.kafka,
        "imagePullPolicy": stack.spec.images.pull_policy,
        # the node id is the pod's ordinal: kafka-2 is voter 2 in the quorum list
        "command": ["sh", "-c", 'export KAFKA_NODE_ID="${POD_NAME##*-}"; exec /etc/kafka/docker/run'],
        "env": env,
        "ports": [
            {"name": "client", "containerPort": CLIENT_PORT},
            {"name": "controller", "containerPort": CONTROLLER_PORT},
        ],
        "readinessProbe": tcp_probe("client"),
        "livenessProbe": tcp_probe("controller", failures=6, initial=30),
        "resources": kafka.resources.manifest(),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/kafka/data"}],
    }
    pod_spec = {
        "securityContext": pod_security(KAFKA_UID),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
    }
    ports = [("client", CLIENT_PORT, "TCP"), ("controller", CONTROLLER_PORT, "TCP")]
    return [
        service(stack, COMPONENT, ports, headless=True, name=headless),
        service(stack, COMPONENT, [("client", CLIENT_PORT, "TCP")]),
        statefulset(
            stack,
            COMPONENT,
            replicas=n,
            pod_spec=pod_spec,
            claims=[pvc_template(stack, COMPONENT, kafka.storage)],
        ),
        # losing more than one voter of three stops the controller quorum
        pdb(stack, COMPONENT, 1),
    ]


def _kafdrop(stack: Stack) -> list[Manifest]:
    component = "kafdrop"
    meta = metadata(stack, component)
    container = {
        "name": "kafdrop",
        "image": stack.spec.images.kafdrop,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "env": [{"name": "KAFKA_BROKERCONNECT", "value": bootstrap(stack)}],
        "ports": [{"name": "http", "containerPort": 9000}],
        "readinessProbe": http_probe("/actuator/health", "http"),
        "livenessProbe": http_probe("/actuator/health", "http", failures=6),
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security(),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(stack, component)},
            "template": {
                "metadata": {"labels": meta["labels"]},
                "spec": {"securityContext": pod_security(1000), "containers": [container]},
            },
        },
    }
    return [deployment, service(stack, component, [("http", 9000, "TCP")])]
