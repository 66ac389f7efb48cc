"""The scenario's stack endpoint on a kind cluster: the charts installed with helm, one stack.

The MW is reached through the ingress (E2E_MW_URL, e.g. http://localhost:8080 with ingress-nginx
and e2e/kind-cluster.yaml's port mapping) or, without it, a port-forward to its Service; the OCS and
the DGW through port-forwards. Healing is Kubernetes' own: a deleted OCS pod is replaced by its
Deployment (and the operator reports the stack Ready again).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from cellcelly.deploy.child import free_port

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "charts"
HERE = Path(__file__).resolve().parent


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class KindStack:
    """One CellCellyStack from charts/cellcelly-stack, on the cluster `kubeconfig` points at."""

    values = HERE / "kind-values.yaml"  # the stack chart's values
    operator_values: tuple[str, ...] = ("--set", "image.pullPolicy=IfNotPresent")

    def __init__(self, kubeconfig: Path, namespace: str = "telco", name: str = "e2e") -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.name = name
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.forwards: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.ingress_url = os.environ.get("E2E_MW_URL", "")

    # --- commands ---
    def run(
        self, *command: str, timeout: float = 960, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def kubectl(
        self, *args: str, timeout: float = 960, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", "--namespace", self.namespace, *args, timeout=timeout, check=check)

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run("helm", "--namespace", self.namespace, *args, timeout=timeout)

    # --- install ---
    def install(self) -> None:
        """CRDs, the operator (the chart's default, namespace scope: its release namespace, the stack's),
        then the stack; waits for Ready (15 minutes at most)."""
        self.helm(
            "upgrade", "--install", "cellcelly-crds", str(CHARTS / "cellcelly-crds"), "--create-namespace"
        )
        self.helm(
            "upgrade", "--install", "cellcelly-operator", str(CHARTS / "cellcelly-operator"),
            *self.operator_values, "--wait", "--timeout", "5m",
        )  # fmt: skip
        self.helm(
            "upgrade", "--install", self.name, str(CHARTS / "cellcelly-stack"),
            "--values", str(self.values), "--set", f"name={self.name}",
        )  # fmt: skip
        self.wait_stack_ready()

    def wait_stack_ready(self, timeout: str = "15m") -> None:
        done = self.kubectl(
            "wait", "--for=condition=Ready", f"ccs/{self.name}", f"--timeout={timeout}", check=False
        )
        if done.returncode != 0:
            state = self.kubectl("get", "ccs,pods,events", "-o", "wide", check=False)
            raise AssertionError(
                f"stack {self.name} not Ready: {done.stderr}\n{state.stdout}\n{self.sick_logs()}"
            )

    def sick_logs(self, lines: int = 40) -> str:
        """The last lines of each not-ready pod's containers, this run's and the one before (a crash
        loop's cause is in the previous run's log): what a failed wait needs to be read."""
        not_ready = "{range .items[?(@.status.containerStatuses[0].ready==false)]}{.metadata.name}{' '}{end}"
        names = self.kubectl("get", "pods", "-o", f"jsonpath={not_ready}", check=False).stdout.split()
        out = []
        for name in names:
            for previous in ("--previous=false", "--previous=true"):
                got = self.kubectl("logs", name, "--all-containers", previous, f"--tail={lines}", check=False)
                out.append(f"--- {name} {previous}:\n{got.stdout}{got.stderr}")
        return "\n".join(out)

    # --- StackEndpoint ---
    def forward(self, component: str, port_name: str) -> int:
        """A port-forward to the component's Service (restarted when its process has died)."""
        known = self.forwards.get(component)
        if known is not None and known[0].poll() is None and port_open(known[1]):
            return known[1]
        service = f"{self.name}-{component}"
        remote = self.kubectl(
            "get", "service", service, "-o", f"jsonpath={{.spec.ports[?(@.name=='{port_name}')].port}}"
        ).stdout.strip()
        if not remote:
            raise AssertionError(f"service {service} has no port named {port_name}")
        local = free_port()
        process = subprocess.Popen(
            [
                "kubectl",
                "--namespace",
                self.namespace,
                "port-forward",
                f"service/{service}",
                f"{local}:{remote}",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not port_open(local):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"kubectl port-forward to {service}:{remote} did not open")
            time.sleep(0.2)
        self.forwards[component] = (process, local)
        return local

    def address(self, component: str, port_name: str) -> tuple[str, int]:
        """Where this machine reaches the component's Service port: a port-forward on kind."""
        return "127.0.0.1", self.forward(component, port_name)

    def url(self, component: str) -> str:
        host, port = self.address(component, "http")
        return f"http://{host}:{port}"

    @property
    def mw_url(self) -> str:
        return self.ingress_url.rstrip("/") or self.url("mw")

    @property
    def ocs_url(self) -> str:
        return self.url("ocs")

    @property
    def diameter(self) -> tuple[str, int]:
        return self.address("dgw", "diameter")

    def pods(self, component: str) -> list[str]:
        selector = f"app.kubernetes.io/name={component},app.kubernetes.io/instance={self.name}"
        names = self.kubectl("get", "pods", "-l", selector, "-o", "name").stdout.split()
        return sorted(names)

    def kill_and_heal(self) -> str:
        before = self.pods("ocs")
        if not before:
            raise AssertionError("no OCS pod to kill")
        victim = before[0]
        self.kubectl("delete", victim, "--grace-period=0", "--force", "--wait=true", timeout=120)
        self.drop_forwards()  # they were bound to pods that are going away
        deadline = time.monotonic() + 300
        while True:
            now = self.pods("ocs")
            if victim not in now and now:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{victim} was not replaced within 300 s: {now}")
            time.sleep(1)
        self.kubectl("rollout", "status", f"deployment/{self.name}-ocs", "--timeout=5m", timeout=330)
        self.wait_stack_ready("5m")
        new = ", ".join(p for p in now if p not in before)
        return f"deleted {victim}; its Deployment replaced it with {new}"

    def drop_forwards(self) -> None:
        for process, _ in self.forwards.values():
            process.terminate()
            process.wait(timeout=10)
        self.forwards.clear()

    def children(self) -> list[str]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/part-of=cellcelly"
        kinds = "deployments,statefulsets,services,configmaps,poddisruptionbudgets,ingresses"
        return self.kubectl("get", kinds, "-l", selector, "-o", "name").stdout.split()

    def delete(self) -> None:
        """kubectl delete ccs, then every child gone (owner references: the garbage collector)."""
        self.drop_forwards()
        self.kubectl("delete", f"ccs/{self.name}", "--wait=true", "--timeout=5m", timeout=330)
        deadline = time.monotonic() + 300
        while left := self.children():
            if time.monotonic() > deadline:
                raise AssertionError(f"children of {self.name} left 300 s after its deletion: {left}")
            time.sleep(2)
        self.helm("uninstall", self.name)
