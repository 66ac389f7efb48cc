"""VoltDB: a StatefulSet of `hostcount` nodes started together, with the k-factor in deployment.xml."""

from __future__ import annotations

from typing import Any

from cellcelly_operator.labels import Manifest, metadata
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
# One user for the stack: every service that uses VoltDB loads the schema and calls the same
# procedures, so per-service users would all need the administrator role and gain nothing.
USER = "cellcelly"
PASSWORD_PLACEHOLDER = "@VOLTDB_PASSWORD@"  # replaced from the pod's env before `voltdb init`
PASSWORD_VAR = "VOLTDB_PASSWORD"
# what a k-factor 0 pod has to pause the database and write its snapshot before it stops
DRAIN_GRACE_SECONDS = 120


def deployment_xml(stack: Stack) -> str:
    volt = stack.spec.voltdb
    return (
        '<?xml version="1.0"?>\n'
        "<deployment>\n"
        f'  <cluster hostcount="{volt.replicas}" sitesperhost="{volt.sites_per_host}"'
        f' kfactor="{volt.kfactor}"/>\n'
        # off: the community edition (the only VoltDB image there is) refuses to init with a command
        # log ("not supported in the community edition"); the snapshots are what survives a restart
        '  <commandlog enabled="false"/>\n'
        '  <snapshot enabled="true" frequency="1h" retain="3"/>\n'
        '  <httpd enabled="true"><jsonapi enabled="true"/></httpd>\n'
        f"{security_xml()}"
        "</deployment>\n"
    )


def security_xml(password: str = PASSWORD_PLACEHOLDER) -> str:
    """Security on, one administrator (it loads the schema: DDL needs the role). The ConfigMap holds
    only the placeholder; the start script puts the password from the Secret in before `voltdb init`."""
    return (
        '  <security enabled="true" provider="hash"/>\n'
        f'  <users><user name="{USER}" password="{password}" roles="administrator"/></users>\n'
    )


def credentials_secret(stack: Stack) -> tuple[str, str, str] | None:
    """(secret name, username key, password key) of the VoltDB login the services read, if any."""
    volt = stack.spec.voltdb
    if volt.mode == "managed":
        return stack.child(COMPONENT), "username", "password"
    if volt.external.secret_ref.name:
        return volt.external.secret_ref.name, "username", "password"
    return None


def generated_secret(stack: Stack, password: str) -> Manifest:
    """The managed VoltDB's login, created once when missing and never overwritten: `voltdb init` wrote
    it into the database root, which keeps it across restarts."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, COMPONENT),
        "type": "Opaque",
        "stringData": {"username": USER, "password": password},
    }


def materialise(config: str, out: str) -> str:
    """Shell: the deployment.xml with the password put in (generated passwords are URL-safe base64:
    nothing sed or XML would read specially)."""
    return f'sed "s|{PASSWORD_PLACEHOLDER}|${PASSWORD_VAR}|" {config} > {out}'


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
        f"{materialise('/etc/voltdb/deployment.xml', f'{ROOT}/deployment.xml')}; "
        f"voltdb init --dir={ROOT} --config={ROOT}/deployment.xml; rm -f {ROOT}/deployment.xml; fi; "
        f"exec voltdb start --dir={ROOT} --count={volt.replicas} --host={hosts(stack)}"
    )


def drained_on_stop(stack: Stack) -> bool:
    """Without k-safety a stopped node takes the database with it, and the community edition has no
    command log: what changed since the last periodic snapshot would be lost. So such a pod's
    preStop pauses the database and saves a snapshot where `voltdb start` recovers from, and a drain
    (or a rolling update) loses no balance. With k >= 1 the others go on serving: a pause would stop
    them all, so nothing is done."""
    return stack.spec.voltdb.kfactor == 0


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
        "env": [
            {
                "name": PASSWORD_VAR,
                "valueFrom": {"secretKeyRef": {"name": stack.child(COMPONENT), "key": "password"}},
            }
        ],
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
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security(VOLTDB_UID),
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_name}}],
    }
    if drained_on_stop(stack):
        drain = ["voltdb", "drain", f"--dir={ROOT}", f"--user={USER}"]
        container["lifecycle"] = {"preStop": {"exec": {"command": drain}}}
        pod_spec["terminationGracePeriodSeconds"] = DRAIN_GRACE_SECONDS
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
        # k-factor k survives k lost nodes, so that many may be disrupted at once; with k = 0 one
        # may go (its preStop saves the data first), or a one-node drain could never finish
        pdb(stack, COMPONENT, max(volt.kfactor, 1)),
    ]
