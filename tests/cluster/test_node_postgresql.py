"""The managed PostgreSQL record on the real node, from the image `scripts/images.sh build-postgresql`
makes (Debian's server with the official postgres image's env contract): the operator's own manifests
for it (the login Secret with a password generated as the operator does, the Services and the
StatefulSet, changed only as test_node_images.on_node changes every back end's), the pod Ready through
the builder's own pg_isready probe, a login through its ClusterIP Service and the services' migrations
run against it. The services' and the operator's images (`scripts/images.sh build`) start in pods
there too: `cellcelly migrate` in the services' pod as the operator builds it brings the record to the
newest schema; the operator's process imports its handlers.

No cluster DNS on this node: the services' DSN names the Service's ClusterIP instead of its DNS name.
Its own node (test_node's module-scoped fixture): only one node runs per machine."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cellcelly_operator import oracle, postgresql, services, spec
from cellcelly_operator.workloads import container_security, pod_security
from k8s_cluster import ROOT
from sqlalchemy import make_url
from test_node import ON_NODE, Node, apply, node, run, wait_until  # noqa: F401 (node: the fixture)
from test_node_images import cluster_ip, demo_stack, deployed, images, on_node, ready  # noqa: F401 (deployed: a fixture)

from cellcelly.adapters.sql.migrator import current_revision, head_revision
from cellcelly_testing import require

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
log = logging.getLogger(__name__)

IMAGES_SH = str(ROOT / "scripts" / "images.sh")
POD = "demo-postgresql-0"
OPERATOR_UID = 10001  # the operator image's non-root user (images/operator/Dockerfile)


@pytest.fixture(scope="module")
def refs(node: Node) -> dict[str, str]:  # noqa: F811 (the imported fixture)
    """PostgreSQL's, the services' and the operator's images built (podman's layer cache: a rebuild only
    when their files changed) and loaded into the node."""
    for command in ("build-postgresql", "build"):
        start = time.monotonic()
        built = run("bash", IMAGES_SH, command, timeout=1500)
        require(built.returncode == 0, f"scripts/images.sh {command} failed: {built.stderr.decode()[-2000:]}")
        log.info("scripts/images.sh %s: %.1f s", command, time.monotonic() - start)
    services_image, operator_image = run("bash", IMAGES_SH, "names").stdout.decode().split()
    out = {"postgresql": images()["postgresql"], "services": services_image, "operator": operator_image}
    start = time.monotonic()
    loaded = run(
        "bash", str(ROOT / "scripts" / "k8s.sh"), "load", str(node.directory), *out.values(), timeout=900
    )
    assert loaded.returncode == 0, loaded.stderr.decode()[-2000:]
    log.info("three images loaded into the node: %.1f s", time.monotonic() - start)
    return out


def stack_for(refs: dict[str, str]) -> spec.Stack:
    images = {"postgresql": refs["postgresql"], "services": refs["services"], "pullPolicy": "Never"}
    return demo_stack({"record": "PostgreSQL", "images": images})


@dataclass(frozen=True)
class Record:
    stack: spec.Stack
    address: str  # the ClusterIP of the Service the services dial
    password: str  # the one in the operator-made Secret

    @property
    def url(self) -> str:
        """The services' DSN (the operator's, login apart) with the ClusterIP for the Service's DNS name."""
        name = self.stack.dns(self.stack.child(postgresql.COMPONENT))
        return services.record_url(self.stack).replace(name, self.address)


def deploy_record(node: Node, refs: dict[str, str], deployed: list[dict[str, Any]]) -> Record:  # noqa: F811
    stack = stack_for(refs)
    password = secrets.token_urlsafe(18)  # as reconcile.apply_all makes it
    deployed += [postgresql.generated_secret(stack, password), *on_node(postgresql.build(stack))]
    apply(node.cluster, *deployed)
    # kubectl wait fails at once on a pod the StatefulSet controller has not made yet
    wait_until(f"the pod {POD}", lambda: node.cluster.kubectl("get", "pod", POD).returncode == 0)
    ready(node, POD, 240)
    return Record(stack, cluster_ip(node, stack.child(postgresql.COMPONENT)), password)


def connect(record: Record, password: str) -> Any:
    return psycopg.connect(
        host=record.address,
        port=postgresql.PORT,
        user="cellcelly",
        password=password,
        dbname=record.stack.spec.postgresql.database,
        connect_timeout=5,
    )


def wait_for_service(record: Record) -> None:
    """kube-proxy gets the endpoint ~1 s after Ready."""

    def answers() -> bool:
        try:
            connect(record, record.password).close()
            return True
        except Exception:  # noqa: BLE001 (refused until kube-proxy has the endpoint)
            return False

    wait_until(f"a login at {record.address}:{postgresql.PORT}", answers, timeout=60)


def revision(record: Record) -> str | None:
    return current_revision(make_url(record.url).set(username="cellcelly", password=record.password))


def test_managed_postgresql_takes_the_generated_login_through_its_service_and_migrates(
    node: Node,  # noqa: F811 (test_node's fixture)
    refs: dict[str, str],
    deployed: list[dict[str, Any]],  # noqa: F811
) -> None:
    record = deploy_record(node, refs, deployed)
    wait_for_service(record)
    with connect(record, record.password) as connection:
        user, database, version, stored = connection.execute(
            "SELECT current_user, current_database(), current_setting('server_version_num')::int,"
            " (SELECT rolpassword FROM pg_authid WHERE rolname = current_user)"
        ).fetchone()
    assert (user, database) == ("cellcelly", "cellcelly")
    assert 150000 <= version < 160000
    assert stored.startswith("SCRAM-SHA-256$")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(record, "not-" + record.password).close()  # TCP asks for the password: no trust
    # the services' own CLI, its login from the environment as the operator's pods get it
    env = {
        **os.environ,
        "CELLCELLY_DATABASE_URL": record.url,
        oracle.USER_VAR: "cellcelly",
        oracle.PASSWORD_VAR: record.password,
    }
    cli = Path(sys.executable).with_name("cellcelly")
    migrated = subprocess.run(
        [str(cli), "migrate"], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert revision(record) == head_revision()


def finished(node: Node, pod: str, timeout: float) -> dict[str, Any]:  # noqa: F811
    """The pod once it has run to its end (restartPolicy Never)."""
    deadline = time.monotonic() + timeout
    while True:
        got = node.cluster.get("pod", pod)
        if got["status"].get("phase") in ("Succeeded", "Failed"):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{pod} still {got['status'].get('phase')} after {timeout}s: {got['status']}")
        time.sleep(1)


def outcome(node: Node, pod: str) -> tuple[int, str]:  # noqa: F811
    got = finished(node, pod, 180)
    logs = node.cluster.kubectl("logs", pod).stdout
    terminated = got["status"]["containerStatuses"][0]["state"]["terminated"]
    return int(terminated["exitCode"]), logs


def migrate_pod(record: Record) -> dict[str, Any]:
    """The services' pod as the operator builds it for a service that uses the record (non-root,
    read-only root filesystem, its data and tmp volumes, the login from the Secret by secretKeyRef),
    running `cellcelly migrate` once with only the record's wiring."""
    template = services.deployment(record.stack, "ocs")["spec"]["template"]
    container = template["spec"]["containers"][0]
    login = [e for e in container["env"] if e["name"] in (oracle.USER_VAR, oracle.PASSWORD_VAR)]
    assert len(login) == 2, container["env"]
    for key in ("envFrom", "ports", "readinessProbe", "livenessProbe"):
        container.pop(key, None)
    container.update(
        name="migrate",
        command=["cellcelly", "migrate"],
        env=[*login, {"name": "CELLCELLY_DATABASE_URL", "value": record.url}],
    )
    pod_spec = {**template["spec"], **ON_NODE, "restartPolicy": "Never"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "migrate"}, "spec": pod_spec}


def test_services_image_migrates_the_managed_postgresql_from_a_pod(
    node: Node,  # noqa: F811 (test_node's fixture)
    refs: dict[str, str],
    deployed: list[dict[str, Any]],  # noqa: F811
) -> None:
    record = deploy_record(node, refs, deployed)
    wait_for_service(record)
    assert revision(record) is None  # a fresh record: only the pod migrates it
    pod = migrate_pod(record)
    deployed.append(pod)
    apply(node.cluster, pod)
    code, logs = outcome(node, "migrate")
    assert code == 0, logs
    assert "newest schema" in logs
    assert revision(record) == head_revision()


def test_operator_image_starts_in_a_pod(
    node: Node,  # noqa: F811 (test_node's fixture)
    refs: dict[str, str],
    deployed: list[dict[str, Any]],  # noqa: F811
) -> None:
    """The operator's process imports its kopf handlers (what `kopf run -m` loads) and its entry point
    answers, non-root on a read-only root filesystem as the chart runs it."""
    probe = "import cellcelly_operator.handlers, cellcelly_operator.__main__ as m; m.main(['--help'])"
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-start"},
        "spec": {
            **ON_NODE,
            "restartPolicy": "Never",
            "securityContext": pod_security(OPERATOR_UID),
            "containers": [
                {
                    "name": "operator",
                    "image": refs["operator"],
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", probe],
                    "securityContext": container_security(read_only_root=True),
                }
            ],
        },
    }
    deployed.append(pod)
    apply(node.cluster, pod)
    code, logs = outcome(node, "operator-start")
    assert code == 0, logs
    assert "--all-namespaces" in logs  # kopf run's own help: the CLI reached
