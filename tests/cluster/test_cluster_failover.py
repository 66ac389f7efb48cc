"""Oracle failover and switch-back with the operator (`kopf run`) against a real API server
(scripts/k8s.sh): the side in force is kept in status.oracle, which the server keeps only because the CRD
declares it (a structural schema prunes the rest); a re-applied manifest (what a GitOps tool does) switches
nothing; the way back is a new spec.oracle.failover.switchBackRequested; and the operator never writes a
stack's spec, which the server itself records: managedFields names the manager of every field written.
The "databases" are TCP listeners on 127.0.0.1 (the probe opens a connection to the primary's host and
port, nothing more), so nothing leaves the machine."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_operator import ChartOperator, eventually, operating
from k8s_cluster import ROOT, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NS = "failover"
NAME = "prod"
# the managers kubectl writes spec as (client-side apply, patch): everything else would be the operator
USER_MANAGERS = {"kubectl-client-side-apply", "kubectl-patch", "kubectl", "kubectl-create"}


class Listener:
    """A TCP listener on 127.0.0.1 in a thread of its own loop, counting the connections it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _accept(self, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        w.close()

    def start(self) -> Listener:
        async def go() -> asyncio.Server:
            return await asyncio.start_server(self._accept, "127.0.0.1", self.port)

        self.server = asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        server = self.server
        if server is None:
            return
        self.server = None

        async def go() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()  # its self-pipe (a socketpair) would otherwise leak into a later test


@pytest.fixture
def operator(cluster: Cluster, tmp_path: Path) -> Iterator[ChartOperator]:
    with operating(cluster, tmp_path, NS, NAME) as op:
        yield op


def manifest(primary: int, standby: int) -> dict[str, Any]:
    sample = yaml.safe_load(
        (ROOT / "crds" / "samples" / "external-failover.yaml").read_text(encoding="utf-8")
    )
    body = copy.deepcopy(sample)
    body["metadata"] = {"name": NAME, "namespace": NS}
    oracle = body["spec"]["oracle"]
    oracle["external"]["dsn"] = f"oracle+oracledb://@127.0.0.1:{primary}/?service_name=CELLCELLY"
    oracle["external"]["standbyDsn"] = f"oracle+oracledb://@127.0.0.1:{standby}/?service_name=CELLCELLY"
    oracle["failover"] = {"enabled": True, "primaryCheckSeconds": 1, "failAfterSeconds": 2}
    return body


def test_failover_state_in_status_and_back_only_when_asked(cluster: Cluster, operator: ChartOperator) -> None:
    primary, standby = Listener().start(), Listener().start()
    try:
        _flow(cluster, primary, standby, operator.log)
    finally:
        primary.close()
        standby.close()


def _flow(cluster: Cluster, primary: Listener, standby: Listener, log: Path) -> None:
    body = manifest(primary.port, standby.port)
    done = cluster.apply_object(body)
    assert done.returncode == 0, done.stderr

    def stack() -> dict[str, Any]:
        return cluster.get("ccs", NAME, "-n", NS)

    def oracle() -> dict[str, Any]:
        return dict((stack().get("status") or {}).get("oracle") or {})

    def database_url() -> str:
        cm = cluster.kubectl("get", "configmap", f"{NAME}-config", "-n", NS, "-o", "json")
        return str(json.loads(cm.stdout)["data"]["CELLCELLY_DATABASE_URL"]) if cm.returncode == 0 else ""

    def spec_writers() -> set[str]:
        """The server's own record of who wrote which field (managedFields): the managers owning some
        spec field. Ownership moves to the last writer, so it is read after every step that could
        tempt the operator, not only at the end (a re-apply would take a field back)."""
        got = cluster.get("ccs", NAME, "-n", NS, "--show-managed-fields")["metadata"]["managedFields"]
        return {e["manager"] for e in got if "f:spec" in (e.get("fieldsV1") or {})}

    def reasons() -> list[str]:
        got = cluster.get("events.events.k8s.io", "-n", NS)
        return [e.get("reason", "") for e in got.get("items") or []]

    def config_hash() -> str:
        d = cluster.get("deployment", f"{NAME}-ocs", "-n", NS)
        return str(d["spec"]["template"]["metadata"]["annotations"]["cellcelly.io/config-hash"])

    def degraded() -> str | None:
        conds = (stack().get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conds if c["type"] == "Degraded"), None)

    eventually(lambda: oracle().get("active") == "primary", "status.oracle.active primary")
    assert f"127.0.0.1:{primary.port}" in database_url()
    assert primary.accepted >= 1
    before = eventually(config_hash, "the OCS Deployment")

    primary.stop()
    eventually(
        lambda: oracle().get("active") == "standby" and f"127.0.0.1:{standby.port}" in database_url(),
        "the services on the standby",
    )
    assert "active" not in stack()["spec"]["oracle"]["failover"]  # the operator wrote status, not spec
    assert spec_writers() <= USER_MANAGERS, spec_writers()
    assert "OracleFailover" in reasons()
    assert config_hash() != before  # the Deployments roll onto the new URL
    eventually(lambda: degraded() == "True", "Degraded while on the standby")

    # a GitOps tool re-applies the user's manifest, an old one with `active: primary` in it: no switch
    old = copy.deepcopy(body)
    old["spec"]["oracle"]["failover"]["active"] = "primary"
    done = cluster.apply_object(old)
    assert done.returncode == 0, done.stderr
    time.sleep(3)
    assert oracle().get("active") == "standby" and f"127.0.0.1:{standby.port}" in database_url()
    # and that pass (the update handler's) found every child as built: nothing patched. A real server's
    # list items carry no apiVersion; compared without it, every child was patched on every pass
    passes = [line for line in log.read_text().splitlines() if f"stack {NS}/{NAME}: " in line]
    assert passes and " 0 created, 0 patched" in passes[-1], passes[-1:]

    def ask(value: str) -> None:
        patch = {"spec": {"oracle": {"failover": {"switchBackRequested": value}}}}
        cluster.ok("patch", "ccs", NAME, "-n", NS, "--type", "merge", "-p", json.dumps(patch))

    ask("1")  # the primary still down: refused, handled, still on the standby
    eventually(lambda: oracle().get("switchBackHandled") == "1", "the request handled (refused)")
    assert oracle().get("active") == "standby"
    assert spec_writers() <= USER_MANAGERS, spec_writers()
    eventually(lambda: "OracleFailbackRefused" in reasons(), "the refusal told")

    primary.start()
    ask("2")
    eventually(
        lambda: (
            oracle().get("active") == "primary"
            and oracle().get("switchBackHandled") == "2"
            and f"127.0.0.1:{primary.port}" in database_url()
        ),
        "back on the primary",
    )
    assert standby.accepted == 0  # only the primary's host and port were ever probed
    assert config_hash() == before  # the configuration of before the failover, exactly
    assert "OracleFailback" in reasons()

    # the server's own record: who wrote spec, who wrote status
    assert spec_writers() <= USER_MANAGERS, spec_writers()
    entries = cluster.get("ccs", NAME, "-n", NS, "--show-managed-fields")["metadata"]["managedFields"]
    status_managers = {e["manager"] for e in entries if e.get("subresource") == "status"}
    assert status_managers and not status_managers & USER_MANAGERS  # the record does see the operator
