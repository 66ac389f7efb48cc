"""PostgreSQL as the system of record (spec.record: PostgreSQL): an external server's DSN, or one
PostgreSQL pod with a volume for trials (and for clusters where Oracle cannot run, as this project's
own e2e). No failover: that is Oracle's (Data Guard) alone."""

from __future__ import annotations

from cellcelly_operator.labels import Manifest
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import container_security, login_secret, pod_security, single_database

COMPONENT = "postgresql"
PORT = 5432
POSTGRES_UID = 999  # the postgres user of the official Debian-based image
DATA_DIR = "/var/lib/postgresql/data"


def credentials_secret(stack: Stack) -> tuple[str, str, str]:
    """(secret name, username key, password key) the services read the database login from."""
    pg = stack.spec.postgresql
    if pg.mode == "external" and pg.external.secret_ref.name:
        return pg.external.secret_ref.name, "username", "password"
    return stack.child(COMPONENT), "username", "password"


def database_url(stack: Stack) -> str:
    """The DSN without a login (as Oracle's): the services join CELLCELLY_DATABASE_USERNAME/PASSWORD
    from the Secret to it (Settings.sor_url), so the password never sits in a ConfigMap."""
    pg = stack.spec.postgresql
    if pg.mode == "external":
        return pg.external.dsn
    return f"postgresql+psycopg://{stack.dns(stack.child(COMPONENT))}:{PORT}/{pg.database}"


def build(stack: Stack) -> list[Manifest]:
    pg = stack.spec.postgresql
    if stack.spec.record_component != COMPONENT or pg.mode != "managed":
        return []
    secret, user_key, password_key = credentials_secret(stack)

    def from_secret(name: str, key: str) -> dict[str, object]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    # pg_isready asks the server itself (accepting connections), not merely whether the port is bound
    # (through sh: a probe's command gets no $(VAR) expansion, and the login lives in the Secret)
    ready = ["sh", "-c", f'exec pg_isready -q -h 127.0.0.1 -p {PORT} -U "$POSTGRES_USER" -d "$POSTGRES_DB"']
    container = {
        "name": "postgresql",
        "image": stack.spec.images.postgresql,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "env": [
            from_secret("POSTGRES_USER", user_key),
            from_secret("POSTGRES_PASSWORD", password_key),
            {"name": "POSTGRES_DB", "value": pg.database},
            # a subdirectory: initdb refuses a volume's root when it holds lost+found
            {"name": "PGDATA", "value": f"{DATA_DIR}/pgdata"},
        ],
        "ports": [{"name": "sql", "containerPort": PORT}],
        "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 10, "failureThreshold": 3},
        "startupProbe": {"exec": {"command": ready}, "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {"tcpSocket": {"port": "sql"}, "periodSeconds": 20, "failureThreshold": 6},
        "resources": pg.resources.manifest(),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            # the server's socket and lock file: writable without root
            {"name": "run", "mountPath": "/var/run/postgresql"},
        ],
    }
    pod_spec = {
        "securityContext": pod_security(POSTGRES_UID),
        "containers": [container],
        "volumes": [{"name": "run", "emptyDir": {}}],
    }
    return single_database(stack, COMPONENT, PORT, pod_spec, pg.storage)


def generated_secret(stack: Stack, password: str) -> Manifest:
    """The managed server's login, created once when missing (never overwritten: initdb stored it)."""
    return login_secret(stack, COMPONENT, password)
