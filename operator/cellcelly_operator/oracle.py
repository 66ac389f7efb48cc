"""Oracle: Oracle Database Free as a one-replica StatefulSet when managed; DSNs of primary and standby."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from cellcelly_operator.labels import Manifest
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import container_security, login_secret, pod_security, single_database

COMPONENT = "oracle"
PORT = 1521
ORACLE_UID = 54321  # the oracle user of gvenzl/oracle-free
SERVICE_NAME = "FREEPDB1"
USER_VAR = "CELLCELLY_DATABASE_USERNAME"
PASSWORD_VAR = "CELLCELLY_DATABASE_PASSWORD"


def credentials_secret(stack: Stack) -> tuple[str, str, str]:
    """(secret name, username key, password key) the services read the database login from."""
    if stack.spec.oracle.mode == "external" and stack.spec.oracle.external.secret_ref.name:
        return stack.spec.oracle.external.secret_ref.name, "username", "password"
    return stack.child(COMPONENT), "username", "password"


def host_port(dsn: str) -> tuple[str, int]:
    """Where a DSN points: what the failover check opens a TCP connection to."""
    parts = urlsplit(dsn)
    if not parts.hostname:
        raise ValueError("DSN has no host")
    return parts.hostname, parts.port or PORT


def managed_dsn(stack: Stack) -> str:
    return f"oracle+oracledb://{stack.dns(stack.child(COMPONENT))}:{PORT}/?service_name={SERVICE_NAME}"


def active_dsn(stack: Stack, active: Literal["primary", "standby"] | None = None) -> str:
    oracle = stack.spec.oracle
    if oracle.mode == "managed":
        return managed_dsn(stack)
    side = active or stack.oracle_active
    if side == "standby" and oracle.external.standby_dsn:
        return oracle.external.standby_dsn
    return oracle.external.dsn


def database_url(stack: Stack) -> str:
    """The DSN without a login: the services add CELLCELLY_DATABASE_USERNAME/PASSWORD (from the Secret)
    to it themselves, so a password needs no URL-encoding and never sits in a ConfigMap."""
    return active_dsn(stack)


def failover_possible(stack: Stack) -> bool:
    oracle = stack.spec.oracle
    return bool(
        stack.spec.record_component == COMPONENT
        and oracle.mode == "external"
        and oracle.external.standby_dsn
        and oracle.external.dsn
        and oracle.failover.enabled
    )


def build(stack: Stack) -> list[Manifest]:
    oracle = stack.spec.oracle
    if stack.spec.record_component != COMPONENT or oracle.mode != "managed":
        return []
    secret, user_key, password_key = credentials_secret(stack)

    def from_secret(name: str, key: str) -> dict[str, object]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    container = {
        "name": "oracle",
        "image": stack.spec.images.oracle,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "env": [
            from_secret("ORACLE_PASSWORD", password_key),
            from_secret("APP_USER", user_key),
            from_secret("APP_USER_PASSWORD", password_key),
        ],
        "ports": [{"name": "sql", "containerPort": PORT}],
        # the image's own check: the PDB is open, not merely the listener up
        "readinessProbe": {
            "exec": {"command": ["healthcheck.sh"]},
            "periodSeconds": 15,
            "failureThreshold": 3,
        },
        "startupProbe": {
            "exec": {"command": ["healthcheck.sh"]},
            "periodSeconds": 10,
            "failureThreshold": 60,
        },
        "livenessProbe": {"tcpSocket": {"port": "sql"}, "periodSeconds": 20, "failureThreshold": 6},
        "resources": oracle.resources.manifest(),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "data", "mountPath": "/opt/oracle/oradata"}],
    }
    pod_spec = {"securityContext": pod_security(ORACLE_UID), "containers": [container]}
    return single_database(stack, COMPONENT, PORT, pod_spec, oracle.storage)


def generated_secret(stack: Stack, password: str) -> Manifest:
    """The managed database's login, created once when missing (never overwritten: see reconcile)."""
    return login_secret(stack, COMPONENT, password)
