"""The operator on the real API server as the cellcelly-operator chart runs it: the chart rendered
(`helm template`), its RBAC objects applied, a token minted for its own ServiceAccount, and `kopf run`
started with the Deployment's own command, arguments and environment, authenticated as that account.
A missing verb then shows in the operator's log as a 403 (`forbidden`), which `forbidden()` returns."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_cluster import ROOT, Cluster, helm_binary

from cellcelly_dev.devservers import free_port
from cellcelly_testing import require, stop_process

CHART = ROOT / "charts" / "cellcelly-operator"
CRD_PATH = ROOT / "crds" / "cellcellystacks.cellcelly.io.yaml"
CRD_NAME = "cellcellystacks.cellcelly.io"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# a 403 as the API server words it, as the operator's client and kopf log it ("Forbidden: field is
# immutable" is a 422, not a grant missing)
FORBIDDEN = re.compile(r"is forbidden: User|HTTP 403\b|APIForbiddenError|\"code\": ?403\b")


def eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}: last {last!r}")


def install_crd(cluster: Cluster) -> None:
    cluster.ok("apply", "-f", str(CRD_PATH))
    cluster.wait_established(CRD_NAME)


def remove_crd(cluster: Cluster) -> None:
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", "--timeout=60s")


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig at `path` authenticated as a ServiceAccount (a token minted for it): what a pod
    running as that account would be allowed, nothing more."""
    token = cluster.ok("create", "token", account, "-n", namespace, "--duration=2h")
    server = (cluster.directory / "apiserver.url").read_text().strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "k",
                "cluster": {
                    "server": server,
                    "certificate-authority": str(cluster.directory / "pki" / "ca.crt"),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token.strip()}}],
        "contexts": [{"name": "k", "context": {"cluster": "k", "user": account}}],
        "current-context": "k",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class ChartOperator:
    """One release of the operator chart: `scope` "cluster" (ClusterRole) or "namespace" (a Role in
    the release namespace, which it then watches alone)."""

    def __init__(
        self,
        cluster: Cluster,
        workdir: Path,
        scope: str,
        namespace: str,
        release: str = "ccop",
        tick: float = 1,
    ) -> None:
        self.cluster, self.scope, self.namespace, self.tick = cluster, scope, namespace, tick
        self.log = workdir / f"operator-{release}.log"
        self.kubeconfig = workdir / f"kubeconfig-{release}"
        helm = helm_binary(4) or helm_binary(3)
        require(helm is not None, "helm not fetched: run scripts/helm.sh fetch")
        assert helm is not None
        done = cluster.run(
            helm, "template", release, str(CHART), "-n", namespace, "--set", f"watch.scope={scope}"
        )
        assert done.returncode == 0, done.stderr
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        self.rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        (self.container,) = deployment["spec"]["template"]["spec"]["containers"]
        self.account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def installed(
        cls, cluster: Cluster, workdir: Path, namespace: str, deployment: str, tick: float = 1
    ) -> ChartOperator:
        """The operator of a release helm installed: the live Deployment's container and account (helm
        owns the RBAC objects, so none are applied or deleted here), logged in with a token."""
        self = cls.__new__(cls)
        self.cluster, self.namespace, self.tick = cluster, namespace, tick
        self.log = workdir / f"operator-{deployment}.log"
        self.kubeconfig = workdir / f"kubeconfig-{deployment}"
        pod = cluster.get("deployment", deployment, "-n", namespace)["spec"]["template"]["spec"]
        (self.container,) = pod["containers"]
        self.account = pod["serviceAccountName"]
        env = {v["name"]: v.get("value") for v in self.container["env"]}
        self.scope = str(env["CELLCELLY_OPERATOR_SCOPE"])
        self.rbac = []
        self.proc = None
        return self._login()

    def install(self) -> ChartOperator:
        """The chart's RBAC objects and a kubeconfig holding a token of its ServiceAccount."""
        if self.cluster.kubectl("get", "namespace", self.namespace).returncode != 0:
            self.cluster.ok("create", "namespace", self.namespace)
        self.cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump_all(self.rbac))
        return self._login()

    def _login(self) -> ChartOperator:
        token_kubeconfig(self.cluster, self.namespace, self.account, self.kubeconfig)
        return self

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The Deployment's command and arguments (its liveness endpoint on a free local port), and its
        environment (the downward-API values filled in as the kubelet would)."""
        args = [
            re.sub(r"^--liveness=.*", f"--liveness=http://127.0.0.1:{free_port()}/healthz", a)
            for a in self.container["args"]
        ]
        assert self.container["command"] == ["kopf"], self.container["command"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "CELLCELLY_OPERATOR"))}
        downward = {"metadata.name": "operator-0", "metadata.namespace": self.namespace}
        for var in self.container["env"]:
            if "value" in var:
                env[var["name"]] = str(var["value"])
            else:
                env[var["name"]] = downward[var["valueFrom"]["fieldRef"]["fieldPath"]]
        env.update(KUBECONFIG=str(self.kubeconfig), CELLCELLY_OPERATOR_TICK=str(self.tick))
        return [sys.executable, "-m", "kopf", *args], env

    def start(self) -> ChartOperator:
        command, env = self.command()
        with self.log.open("a") as out:
            out.write(f"--- start: {' '.join(command[1:])}\n")
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer or status written on the way out (a node lost, OOM)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""

    def forbidden(self) -> list[str]:
        """The log lines telling of a request the chart's RBAC refused."""
        return [line for line in self.text().splitlines() if FORBIDDEN.search(line)]

    def uninstall(self) -> None:
        self.stop()
        if self.rbac:
            self.cluster.kubectl(
                "delete", "-f", "-", "--ignore-not-found", stdin=yaml.safe_dump_all(self.rbac)
            )


@contextlib.contextmanager
def operating(cluster: Cluster, tmp_path: Path, namespace: str, stack: str) -> Iterator[ChartOperator]:
    """The CRD, `namespace`, and the operator as its chart runs it, under the chart's own ServiceAccount
    (cluster scope). Afterwards the stack is deleted while the operator runs (it removes its finalizer),
    no request may have been refused, and all is removed, the CRD too: the next test file starts without."""
    install_crd(cluster)
    cluster.ok("create", "namespace", namespace)
    op = ChartOperator(cluster, tmp_path, "cluster", "cellcelly-system").install().start()
    try:
        yield op
        cluster.kubectl("delete", "ccs", stack, "-n", namespace, "--wait=true", "--timeout=60s")
        assert op.forbidden() == []
    finally:
        op.uninstall()
        sys.stdout.write(op.text()[-6000:])
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        remove_crd(cluster)
