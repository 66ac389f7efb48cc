"""The e2e scenario on real pods here: the project's own node (`scripts/k8s.sh up --node`), the three
charts installed with helm, one CellCellyStack with every component on images built here, the record
on PostgreSQL (Oracle cannot run here).

First chaos: Gy traffic while OCS, SF and DGW pods are deleted at random (Kubernetes and the operator
bring them back); every debit must reach the record exactly once (`cellcelly reconcile --check` in an
OCS pod: the record's balances equal VoltDB's, nothing waits in the outbox). Then the node drained
and uncordoned: every pod evicted and back on its volume, VoltDB (one copy, no command log) started
from the snapshot its preStop saved, the record still equal to it. Then the scenario kind
runs (`scenario.run_scenario`: sign-up through the MW, traffic, an unknown subscriber refused, an OCS
pod deleted and replaced with nothing lost or doubled, traffic again), and before the stack is
deleted: a top-up through the MW → RAR at the Diameter client holding the cut-off session, a pod
that restarts healed by the operator within its budget, every debit once in the record; then
`kubectl delete ccs` and every child gone.

Needs root, the control plane and node of scripts/k8s.sh (`fetch`), podman with the debootstrap base,
and the Maven jars of the back ends; under CI=true a missing part fails (test_node's fixture).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gy_client import CLIENT, answering, cut_off, granted_seconds, voice_ccr
from k8s_cluster import HELM_SH, K8S_SH, ROOT, script
from node_stack import NodeStack
from scenario import SERVICES, Subscriber, cellcelly_command, run_scenario
from test_node import NODE, Node, node, run  # noqa: F401 (node: the module's fixture)

from cellcelly.diameter.codec import Message
from cellcelly.diameter.constants import Cmd
from cellcelly.diameter.peer import connect
from smsc import SmscProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

log = logging.getLogger(__name__)

ADMIN = {"Authorization": "Bearer e2e-admin-token-not-for-production"}  # node-values.yaml's adminToken
CHAOS_FIRST = 5481000000  # chaos subscribers: CHAOS_FIRST .. + CHAOS_SUBSCRIBERS - 1
CHAOS_SUBSCRIBERS = 20
VOLUMES = 6  # the node-local class's volumes: Kafka, VoltDB, PostgreSQL, and room for a second try


def images_sh(*args: str, timeout: float = 1800) -> list[str]:
    done = run("bash", str(ROOT / "scripts" / "images.sh"), *args, timeout=timeout)
    assert done.returncode == 0, f"images.sh {' '.join(args)}: {done.stderr.decode()[-3000:]}"
    return done.stdout.decode().split()


@pytest.fixture(scope="module")
def images(node: Node) -> dict[str, str]:  # noqa: F811 (test_node's fixture)
    """Every image the stack runs, built here with podman and imported into the node's containerd."""
    started = time.monotonic()
    images_sh("build", timeout=2400)
    images_sh("build-backends", timeout=2400)
    services, operator = images_sh("names")
    refs = [services, operator, *images_sh("backend-names")]
    built = time.monotonic() - started
    loaded = script(K8S_SH, "load", str(node.directory), *refs)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    log.warning(
        "images built in %.0f s, loaded in %.0f s: %s", built, time.monotonic() - started - built, refs
    )
    return {"services": services, "operator": operator}


def local_volumes(node: Node) -> None:  # noqa: F811
    """A static local class (`node-local`) with hostPath volumes an administrator would make: the
    in-tree hostPath provisioner makes its directories root-only (0750), which the stack's non-root
    pods cannot write."""
    root = node.directory / "volumes"
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "node-local"},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    ]
    for i in range(VOLUMES):
        path = root / f"pv-{i}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o1777)
        items.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"node-local-{i}"},
                "spec": {
                    "capacity": {"storage": "2Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "node-local",
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            }
        )
    done = node.cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    assert done.returncode == 0, done.stderr


def dump(stack: NodeStack) -> str:
    """What a failing run needs to be read: the stack, its pods and events, the last logs of each pod."""
    parts = [stack.kubectl("get", "ccs,pods,pvc,events", "-o", "wide", check=False).stdout]
    for pod in stack.kubectl("get", "pods", "-o", "name", check=False).stdout.split():
        logs = stack.kubectl("logs", pod, "--all-containers", "--tail=30", check=False)
        parts.append(f"--- {pod}\n{logs.stdout}{logs.stderr}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def smsc(node: Node) -> Iterator[SmscProcess]:  # noqa: F811
    """The SMSC the stack's SMS gateway and notifier bind to (node-values.yaml: the pod gateway, 2775,
    the login of createSecrets.smsc): the project's simulator, on this machine where pods reach it."""
    simulator = SmscProcess(2775, "cellcelly", "e2e-smpp", host="10.244.0.1")
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def stack(node: Node, images: dict[str, str], smsc: SmscProcess) -> Iterator[NodeStack]:  # noqa: F811
    local_volumes(node)
    kubectl = Path(script(HELM_SH, "kubectl").stdout.strip())
    helm = Path(script(HELM_SH, "path", "4").stdout.strip())
    endpoint = NodeStack(node.cluster.kubeconfig, [kubectl, helm], images["operator"])
    started = time.monotonic()
    try:
        endpoint.install()
    except AssertionError:
        log.error("install failed:\n%s", dump(endpoint))
        raise
    log.warning(
        "the stack was Ready %.0f s after helm install began; %s",
        time.monotonic() - started,
        kubepods_usage(),
    )
    yield endpoint
    if endpoint.kubectl("get", f"ccs/{endpoint.name}", check=False).returncode == 0:
        log.warning("left behind by a failing test:\n%s", dump(endpoint))


def kubepods_usage() -> str:
    """What the stack's pods use now, from kubelet's cgroups (v1 here): memory and CPU seconds so far."""
    root = Path("/sys/fs/cgroup")
    try:
        memory = int((root / "memory" / "kubepods" / "memory.usage_in_bytes").read_text())
        cpu = int((root / "cpuacct" / "kubepods" / "cpuacct.usage").read_text())
    except (OSError, ValueError):
        return "kubepods cgroups not readable here"
    used = f"{memory / 2**30:.2f} GiB of memory (page cache included)"
    return f"pods use {used}, {cpu / 1e9:.0f} CPU-s since their start"


def settled_audit(stack: NodeStack, timeout: float = 240) -> dict[str, Any]:
    """`reconcile --check` until the record has caught up with the store (outbox empty, balances
    equal); fails with the last report when it does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        report = stack.audit()
        if report["outbox"] == 0 and not report["differ"]:
            return report
        assert time.monotonic() < deadline, f"the record does not match VoltDB: {report}"
        time.sleep(3)


def provision(stack: NodeStack, first: int, count: int) -> None:
    """Subscribers with a package and 500 TL, through an OCS's admin API (as an operator would)."""
    with httpx.Client(base_url=stack.ocs_url, headers=ADMIN, timeout=30) as http:
        for i in range(count):
            msisdn = str(first + i)
            body = {
                "msisdn": msisdn,
                "firstName": "Deniz",
                "lastName": "Kaya",
                "email": f"{msisdn}@example.com",
            }
            r = http.post("/admin/subscribers", json={**body, "package": "ANKARA"})
            assert r.status_code == 201, r.text
            r = http.post(
                f"/admin/subscribers/{msisdn}/topup", json={"amount": "500.00", "reference": f"e2e-{i}"}
            )
            assert r.status_code == 200, r.text


def traffic(stack: NodeStack, seconds: int, rate: int) -> subprocess.Popen[str]:
    """`cellcelly traffic` over the chaos subscribers, through the DGWs' Service, in the background."""
    host, port = stack.diameter
    command = [
        *cellcelly_command(),
        *("traffic", "--json", "--host", host, "--port", str(port)),
        *("--rate", str(rate), "--duration", str(seconds), "--connections", "2"),
        *("--subscribers", str(CHAOS_SUBSCRIBERS), "--first-msisdn", str(CHAOS_FIRST)),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_chaos_on_the_cluster_every_debit_once(stack: NodeStack) -> None:
    """Pods of the OCS, SF and DGW deleted at random during traffic (Kubernetes recreates them, the
    operator keeps the stack's children): every debit lands in the record exactly once."""
    provision(stack, CHAOS_FIRST, CHAOS_SUBSCRIBERS)
    seed = random.randrange(2**32)
    rnd = random.Random(seed)
    seconds = 40
    deleted: list[str] = []
    stop = threading.Event()

    def storm() -> None:
        while not stop.wait(rnd.uniform(4, 8)):
            component = rnd.choice(("ocs", "sf", "dgw"))
            pods = stack.pods(component)
            if pods:
                victim = rnd.choice(pods)
                stack.kubectl("delete", victim, "--wait=false", "--grace-period=0", "--force", check=False)
                deleted.append(victim)

    killer = threading.Thread(target=storm, daemon=True)
    killer.start()
    # a deleted DGW takes the generator's connections with it, and the generator ends: a new one
    # goes on through the Service (another DGW) until the storm's time is up, as a network would
    counts: Counter[str] = Counter()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 2:
        load = traffic(stack, int(left), rate=15)
        out, err = load.communicate(timeout=left + 180)
        counts.update(json.loads(out)["result_counts"] if out.strip() else {})
        log.warning("chaos traffic exited %d after %.0f s", load.returncode, left - (end - time.monotonic()))
    stop.set()
    killer.join(30)
    log.warning("chaos (seed %d): deleted %s", seed, deleted)
    assert sum(counts.values()) > 0, f"no answer at all: {err[-2000:]}"
    assert len(deleted) >= 3, f"too little chaos: {deleted}"
    for component in ("ocs", "sf", "dgw"):
        stack.kubectl(
            "rollout", "status", f"deployment/{stack.name}-{component}", "--timeout=5m", timeout=330
        )
    stack.wait_stack_ready("5m")
    audit = settled_audit(stack)
    assert audit["subscribers"] >= CHAOS_SUBSCRIBERS, audit
    log.warning(
        "chaos: %s answers %s, record == VoltDB for %d subscribers; %s",
        dict(counts),
        sum(counts.values()),
        audit["subscribers"],
        kubepods_usage(),
    )


def charged(stack: NodeStack, seconds: int) -> Counter[str]:
    """The chaos subscribers' traffic for `seconds`, in the foreground: its answers by result."""
    out, err = traffic(stack, seconds, rate=15).communicate(timeout=seconds + 180)
    assert out.strip(), f"the traffic generator answered nothing: {err[-2000:]}"
    return Counter(json.loads(out)["result_counts"])


def back_on_the_node(stack: NodeStack) -> None:
    """Every pod of the namespace running and ready again (the uncordoned node took them back)."""
    for kind in ("statefulset", "deployment"):
        for name in stack.kubectl("get", kind, "-o", "name").stdout.split():
            stack.kubectl("rollout", "status", name, "--timeout=5m", timeout=330)
    stack.wait_stack_ready("5m")


def test_draining_the_node_loses_no_money(stack: NodeStack) -> None:
    """`kubectl drain` of the one node evicts every pod (no PodDisruptionBudget may block it) and
    `uncordon` brings them back on their volumes. VoltDB (k-factor 0, the community edition: no
    command log) keeps only what its preStop saved: the charges just made must still be in it, equal
    to the record, and charging must go on after."""
    before = charged(stack, 8)
    assert before.get("2001", 0) > 0, before
    started = time.monotonic()
    drained = stack.kubectl(
        "drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5m",
        timeout=330, check=False,
    )  # fmt: skip
    try:
        assert drained.returncode == 0, f"drain: {drained.stderr[-3000:]}"
        for component in ("voltdb", "ocs", "kafka"):
            running = stack.kubectl(
                "get", "pods", "-l", f"app.kubernetes.io/name={component}",
                "--field-selector=status.phase=Running", "-o", "name",
            ).stdout.split()  # fmt: skip
            assert running == [], f"{component} still running after the drain: {running}"
    finally:
        stack.kubectl("uncordon", NODE, timeout=60)
    took = time.monotonic() - started
    back_on_the_node(stack)
    back = time.monotonic() - started - took
    audit = settled_audit(stack)
    assert audit["subscribers"] >= CHAOS_SUBSCRIBERS, audit
    restored = stack.kubectl("logs", f"statefulset/{stack.name}-voltdb", check=False).stdout
    assert "Restoring from path" in restored, "VoltDB did not start from the drain's snapshot"
    after = charged(stack, 8)
    assert after.get("2001", 0) > 0, after
    log.warning(
        "drain: %.0f s, every pod back and the stack Ready %.0f s after uncordon; answers %s before,"
        " %s after; record == VoltDB for %d subscribers",
        took, back, dict(before), dict(after), audit["subscribers"],
    )  # fmt: skip


async def top_up_brings_a_rar(stack: NodeStack, sub: Subscriber) -> None:
    """A call abroad from the wallet until the OCS cuts it off, then a voucher redeemed through the
    MW: the DGW holding that session (whichever of the two) sends RAR to this client, which asks
    again and talks the new money away too (the wallet's fall below the low line is a notice)."""
    received: list[Message] = []
    host, port = stack.diameter
    peer = await connect(host, port, CLIENT, answering(received))
    session, abroad = f"e2e;cut;{sub.msisdn}", "tel:+4930123456789"
    number = 0

    async def until_cut_off(answer: Message) -> Message:
        nonlocal number
        while not cut_off(answer):
            assert answer.result_code == 2001 and number < 400, answer
            number += 1
            used = granted_seconds(answer)
            answer = await peer.request(voice_ccr(session, 2, number, sub.msisdn, used=used, called=abroad))
        return answer

    try:
        answer = await until_cut_off(await peer.request(voice_ccr(session, 1, 0, sub.msisdn, called=abroad)))
        async with httpx.AsyncClient(base_url=stack.mw_url, timeout=30) as mw:
            r = await mw.post("/api/v1/admin/vouchers", headers=ADMIN, json={"amount": "50.00"})
            assert r.status_code == 201, r.text
            voucher = r.json()["items"][0]["code"]
            r = await mw.post("/api/v1/auth/login", json={"msisdn": sub.msisdn, "password": sub.password})
            assert r.status_code == 200, r.text
            me = {"Authorization": f"Bearer {r.json()['accessToken']}"}
            r = await mw.post("/api/v1/me/topup", headers=me, json={"voucher": voucher})
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while not [m for m in received if m.code == Cmd.RE_AUTH]:
            assert time.monotonic() < deadline, "no RAR within 30 s of the top-up"
            await asyncio.sleep(0.1)
        assert [str(m.session_id) for m in received if m.code == Cmd.RE_AUTH] == [session]
        number += 1  # the client asks again, as RAR tells it to, and is granted the new money
        used = granted_seconds(answer)
        answer = await peer.request(voice_ccr(session, 2, number, sub.msisdn, used=used, called=abroad))
        assert answer.result_code == 2001 and granted_seconds(answer) > 0, answer
        answer = await until_cut_off(answer)
        used = granted_seconds(answer)
        answer = await peer.request(voice_ccr(session, 3, number + 1, sub.msisdn, used=used, called=abroad))
        assert answer.result_code == 2001, answer
    finally:
        await peer.disconnect()


async def told_by_sms(smsc: SmscProcess, sub: Subscriber, since: int) -> tuple[str, str]:
    """The notifier's SMS about the wallet the call talked below the low line, and the SMS gateway's answer to
    KALAN from the subscriber's phone: both through the SMSC, from pods."""

    def to_sub(e: dict[str, Any]) -> bool:
        return e["event"] == "submit_sm" and str(e["destination_addr"]).endswith(sub.msisdn)

    notice = await smsc.wait_for(
        lambda e: to_sub(e) and "Bakiye" in str(e.get("message")), since=since, timeout=60
    )
    mark = smsc.mark
    await smsc.command(cmd="deliver", source_addr=f"90{sub.msisdn}", destination_addr="5555", text="KALAN")
    answer = await smsc.wait_for(
        lambda e: to_sub(e) and "kalan" in str(e.get("message")), since=mark, timeout=60
    )
    return str(notice["message"]), str(answer["message"])


def test_scenario_on_the_real_node(stack: NodeStack, smsc: SmscProcess) -> None:
    seen: dict[str, Any] = {}

    def before_delete(sub: Subscriber) -> None:
        mark = smsc.mark
        asyncio.run(top_up_brings_a_rar(stack, sub))
        seen["sms"] = asyncio.run(told_by_sms(smsc, sub, mark))
        seen["healed"] = stack.crash_and_heal("sf")
        seen["audit"] = settled_audit(stack)

    outcome = run_scenario(stack, before_delete=before_delete)
    assert all(outcome.signed_up.used[s] == 0 for s in SERVICES)
    assert outcome.after_traffic.moved_from(outcome.signed_up)
    assert outcome.after_heal == outcome.after_traffic, outcome.healed
    assert outcome.after_more_traffic.moved_from(outcome.after_heal)
    assert seen["audit"]["subscribers"] >= CHAOS_SUBSCRIBERS + 1, seen
    notice, kalan = seen["sms"]
    assert "Bakiyeniz" in notice and kalan.startswith("CellCelly kalan haklarınız:"), seen["sms"]
    assert stack.children() == []
    log.warning(
        "real node: %s; %s; audit %s subscribers equal",
        outcome.healed,
        seen["healed"],
        seen["audit"]["subscribers"],
    )
