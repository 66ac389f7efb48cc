"""The scenario's stack endpoint on the project's own real node (`scripts/k8s.sh up --node`).

The same charts and the same stack as on kind (`KindStack`), with what this node differs in: the
images are built here and imported into its containerd (pull policy Never), the pods go to the
tainted node through `spec.placement` (and the operator chart's own nodeSelector/tolerations), and
the Services are reached at their ClusterIPs (kube-proxy's rules answer on this machine) instead of
port-forwards. What only a real node can show is here too: an exec into a pod (`reconcile --check`
with the pod's own configuration) and a crash-looping pod healed by the operator.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kind_stack import HERE, KindStack
from test_node import NODE, TAINT  # the node's name and taint, as scripts/k8s.sh makes them


def _set_json(key: str, value: object) -> tuple[str, str]:
    return "--set-json", f"{key}={json.dumps(value)}"


class NodeStack(KindStack):
    """One CellCellyStack on the real node; `tools`: the kubectl and helm binaries to run."""

    values = HERE / "node-values.yaml"

    def __init__(self, kubeconfig: Path, tools: list[Path], operator_image: str) -> None:
        super().__init__(kubeconfig)
        path = os.pathsep.join([*(str(t.parent) for t in tools), self.env.get("PATH", "")])
        self.env["PATH"] = path
        repository, _, tag = operator_image.rpartition(":")
        self.operator_values = (
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never",
            *_set_json("nodeSelector", {"kubernetes.io/hostname": NODE}),
            *_set_json("tolerations", [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}]),
        )  # fmt: skip

    # --- where this machine reaches the Services: their ClusterIPs, through kube-proxy ---
    def address(self, component: str, port_name: str) -> tuple[str, int]:
        service = json.loads(self.kubectl("get", "service", f"{self.name}-{component}", "-o", "json").stdout)
        ports = [p["port"] for p in service["spec"]["ports"] if p.get("name") == port_name]
        if not ports:
            raise AssertionError(f"service {self.name}-{component} has no port named {port_name}")
        return str(service["spec"]["clusterIP"]), int(ports[0])

    def drop_forwards(self) -> None:
        """No port-forwards here."""

    # --- what the stack's pods and status tell ---
    def audit(self) -> dict[str, Any]:
        """`cellcelly reconcile --check` in an OCS pod (its VoltDB and record logins): the record's
        balances against the store's, and what waits in the outbox."""
        done = self.kubectl(
            "exec", f"deployment/{self.name}-ocs", "--", "cellcelly", "reconcile", "--check", check=False
        )
        if done.returncode not in (0, 1):
            raise AssertionError(f"reconcile --check exited {done.returncode}: {done.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def stack_status(self) -> dict[str, Any]:
        body = json.loads(self.kubectl("get", f"ccs/{self.name}", "-o", "json").stdout)
        return dict(body.get("status") or {})

    def crash_and_heal(self, component: str, timeout: float = 300) -> str:
        """Make one pod of `component` restart (its main process stopped from inside, as a crash
        would), then wait for the operator to replace it within its budget (status.healing says so)
        and for the stack to be Ready again."""
        (victim,) = self.pods(component)[:1]
        name = victim.removeprefix("pod/")
        before = len(self.stack_status().get("healing") or [])
        self.kubectl("exec", victim, "--", "sh", "-c", "kill 1", check=False)
        deadline = time.monotonic() + timeout
        while True:
            healing = self.stack_status().get("healing") or []
            mine = [h for h in healing[before:] if h.get("pod") == name]
            if mine:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator did not heal {name} within {timeout}s: {healing}")
            time.sleep(2)
        if mine[0]["action"] != "deleted":
            raise AssertionError(f"{name} was not restarted by the operator: {mine[0]}")
        self.kubectl("rollout", "status", f"deployment/{self.name}-{component}", "--timeout=5m", timeout=330)
        self.wait_stack_ready("5m")
        return (
            f"{name} restarted ({mine[0]['reason']}); the operator deleted it and its Deployment replaced it"
        )
