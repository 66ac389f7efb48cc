"""VoltDB: a StatefulSet of `hostcount` nodes started together, with the k-factor in deployment.xml."""

from __future__ import annotations

from cellcelly_operator.labels import Manifest
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import (
    config_map,
    container_security,
    headless_name,
    pdb,
    pod_dns,
    pod_security,
    pvc_template,
    service,
    statefulset,
    tcp_probe,
)

COMPONENT = "voltdb"
CLIENT_PORT = 21212
ADMIN_PORT = 21211
INTERNAL_PORT = 3021
VOLTDB_UID = 1000
ROOT = "/var/voltdb"


def deployment_xml(stack: Stack) -> str:
    volt = stack.spec.voltdb
    return (
        '<?xml version="1.0"?>\n'
        "<deployment>\n"
        f'  <cluster hostcount="{volt.replicas}" sitesperhost="{volt.sites_per_host}"'
        f' kfactor="{volt.kfactor}"/>\n'
        '  <commandlog enabled="true" synchronous="false"/>\n'
        '  <snapshot enabled="true" frequency="1h" retain="3"/>\n'
        '  <httpd enabled="true"><jsonapi enabled="true"/></httpd>\n'
        "</deployment>\n"
    )


def hosts(stack: Stack) -> str:
    """`voltdb start --host=`: every node lists the same leaders, so they meet whichever starts first."""
    return ",".join(pod_dns(stack, COMPONENT, i) for i in range(stack.spec.voltdb.replicas))


def servers(stack: Stack) -> str:
    if stack.spec.voltdb.mode == "external":
        return stack.spec.voltdb.external.servers
    return ",".join(
        f"{pod_dns(stack, COMPONENT, i)}:{CLIENT_PORT}" for i in range(stack.spec.voltdb.replicas)
    )


def start_script(stack: Stack) -> str:
    volt = stack.spec.voltdb
    return (
        f"set -e; if [ ! -d {ROOT}/voltdbroot ]; then "
        f"voltdb init --dir={ROOT} --config=/etc/voltdb/deployment.xml; fi; "
        f"exec voltdb start --dir={ROOT} --count={volt.replicas} --host={hosts(stack)}"
    )


def build(stack: Stack) -> list[Manifest]:
    volt = stack.spec.voltdb
    if volt.mode != "managed":
        return []
    config_name = f"{stack.child(COMPONENT)}-deployment"
    config = config_map(stack, COMPONENT, config_name, {"deployment.xml": deployment_xml(stack)})
    container = {
        "name": "voltdb",
        "image": stack.spec.images.voltdb,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "command": ["sh", "-c", start_script(stack)],
        "ports": [
            {"name": "client", "containerPort": CLIENT_PORT},
            {"name": "admin", "containerPort": ADMIN_PORT},
            {"name": "internal", "containerPort": INTERNAL_PORT},
            {"name": "http", "containerPort": 8080},
        ],
        "readinessProbe": tcp_probe("client"),
        "livenessProbe": tcp_probe("internal", failures=6, initial=60),
        "resources": volt.resources.manifest(),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": ROOT},
            {"name": "config", "mountPath": "/etc/voltdb", "readOnly": True},
        ],
    }
    pod_spec = {
        "securityContext": pod_security(VOLTDB_UID),
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_name}}],
    }
    ports = [
        ("client", CLIENT_PORT, "TCP"),
        ("admin", ADMIN_PORT, "TCP"),
        ("internal", INTERNAL_PORT, "TCP"),
        ("http", 8080, "TCP"),
    ]
    return [
        config,
        service(stack, COMPONENT, ports, headless=True, name=headless_name(stack, COMPONENT)),
        service(stack, COMPONENT, [("client", CLIENT_PORT, "TCP")]),
        statefulset(
            stack,
            COMPONENT,
            replicas=volt.replicas,
            pod_spec=pod_spec,
            claims=[pvc_template(stack, COMPONENT, volt.storage)],
        ),
        # k-factor k survives k lost nodes, so exactly that many may be disrupted at once
        pdb(stack, COMPONENT, volt.kfactor),
    ]
