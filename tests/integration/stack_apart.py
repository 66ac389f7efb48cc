"""The stack apart, as the operator deploys it: each service its own `cellcelly <svc>` process, its
environment built by the operator's own builders (`services.config_data`, `services.env`).

One source for the variable names: a process gets exactly the ConfigMap's keys and its Deployment's
`env` entries, every secretKeyRef resolved from the test's own Secrets (as the kubelet would), and
only the VALUES of addresses rewritten for this machine (`Addresses`). A name the operator stops
writing, or writes under another spelling, fails `service_env` here before any process starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellcelly_operator import services, spec

from cellcelly.settings import Settings

UID = "9d0c6c52-6b0e-4d55-8f0a-5c1de0f0a5e1"

# the variables whose value names a place: rewritten for 127.0.0.1 and free ports, nothing else
ADDRESS_VARIABLES = {
    "CELLCELLY_KAFKA_BOOTSTRAP",
    "CELLCELLY_VOLTDB_SERVERS",
    "CELLCELLY_HAZELCAST_MEMBERS",
    "CELLCELLY_DATABASE_URL",
    "CELLCELLY_DATA_DIR",
    "CELLCELLY_OCS_HOST",
    "CELLCELLY_OCS_PORT",
    "CELLCELLY_OCS_WIRE_PORT",
    "CELLCELLY_MW_HOST",
    "CELLCELLY_MW_PORT",
    "CELLCELLY_DGW_HOST",
    "CELLCELLY_DGW_PORT",
    "CELLCELLY_DGW_OCS_ENDPOINTS",
    "CELLCELLY_DGW_METRICS_HOST",
    "CELLCELLY_DGW_METRICS_PORT",
    "CELLCELLY_SF_METRICS_HOST",
    "CELLCELLY_SF_METRICS_PORT",
    "CELLCELLY_IVR_HOST",
    "CELLCELLY_IVR_PORT",
}


def stack_of(spec_body: dict[str, Any]) -> spec.Stack:
    return spec.from_body({"metadata": {"name": "demo", "namespace": "telco", "uid": UID}, "spec": spec_body})


def resolve(entries: list[dict[str, Any]], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """A container's `env` as the kubelet gives it: a secretKeyRef read from `secrets` (name -> data);
    a missing optional one is left out, a missing required one is an error (the pod would not start)."""
    out: dict[str, str] = {}
    for item in entries:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            out[item["name"]] = item["value"]
            continue
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{item['name']}: Secret {ref['name']}/{ref['key']} missing"
            continue
        out[item["name"]] = value
    return out


def service_env(
    stack: spec.Stack, svc: str, secrets: dict[str, dict[str, str]], addresses: dict[str, str]
) -> dict[str, str]:
    """The environment of one `cellcelly <svc>` pod (the ConfigMap, then the container's env over it),
    with `addresses` (only ADDRESS_VARIABLES) replacing the operator's values."""
    operator = {**services.config_data(stack), **resolve(services.env(stack, svc), secrets)}
    unknown = set(addresses) - ADDRESS_VARIABLES
    assert not unknown, f"only addresses are rewritten, not {unknown}"
    absent = set(addresses) - set(operator)
    assert not absent, f"the operator does not set {absent} for {svc}"
    fields = {f"CELLCELLY_{name.upper()}" for name in Settings.model_fields}
    unread = {name for name in operator if name.startswith("CELLCELLY_")} - fields
    assert not unread, f"the operator sets {unread} for {svc}, which no setting reads"
    return {**operator, **addresses}


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports below the ephemeral range: a port the kernel hands out for bind(0) may
    be taken by any outgoing connection on the machine before the service binds it (seen: the SF's
    metrics port, with other tests running), one below the range only by a server that asks for it."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = random.sample(range(max(1024, low - 12000), low), 200)
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for port in candidates:
            sock = held.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
            if len(ports) == n:
                return ports
    raise AssertionError(f"no {n} free ports below {low}")


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class Service:
    """One `cellcelly <command>` process with its own environment (nothing of the test's CELLCELLY_*)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    ready_port: int | None = None  # answers once the process serves; None: nothing to wait for
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self, timeout: float = 60.0) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CELLCELLY_")}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cellcelly.cli",
                *self.command,
                env={**base, **self.env},
                cwd=self.log.parent,  # no .env of the checkout is read
                stdout=out,
                stderr=out,
            )
        if self.ready_port is None:
            return
        deadline = time.monotonic() + timeout
        while not port_open(self.ready_port):
            if self.proc.returncode is not None:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not serve on {self.ready_port}:\n{self.tail()}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)  # a process that found its port taken has exited by now
        if self.proc.returncode is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


async def until(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        await asyncio.sleep(0.05)


def metric(port: int, name: str) -> float:
    """One unlabelled sample of a Prometheus /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} on :{port}/metrics")
