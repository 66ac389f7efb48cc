"""The back-end images of `scripts/images.sh build-backends` (Kafka, VoltDB, Hazelcast from the cached
Maven jars on the debootstrap base) run on the real node with the operator's own manifests for them:
each builder's ConfigMap, Services and StatefulSet, the image fields pointing at the local image, and
only what this node lacks changed (the toleration and nodeSelector of the tainted node; an emptyDir
for the data claim, as nothing provisions volumes here). One back end at a time, deleted after.

Shares nothing with test_node.py's fixture (a module-scoped node each: only one node runs per machine,
the two files run one after the other)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cellcelly_operator import hazelcast as hz_builder
from cellcelly_operator import kafka as kafka_builder
from cellcelly_operator import spec
from cellcelly_operator import voltdb as volt_builder
from k8s_cluster import ROOT
from test_node import ON_NODE, Node, apply, node, run, wait_until  # noqa: F401 (node: the fixture)

from cellcelly_testing import require

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

PASSWORD = "Zm9yLXRoZS1ub2RlLXRlc3Q"  # URL-safe base64, as the operator's generated ones


def images() -> dict[str, str]:
    names = run("bash", str(ROOT / "scripts" / "images.sh"), "backend-names").stdout.decode().split()
    return {ref.split("/")[1].split(":")[0].removeprefix("cellcelly-"): ref for ref in names}


@pytest.fixture(scope="module")
def backends(node: Node) -> dict[str, str]:  # noqa: F811 (the imported fixture)
    """The three images built (podman's layer cache: a rebuild only when jars or files changed) and
    loaded into the node."""
    built = run("bash", str(ROOT / "scripts" / "images.sh"), "build-backends", timeout=1200)
    require(
        built.returncode == 0, f"scripts/images.sh build-backends failed: {built.stderr.decode()[-2000:]}"
    )
    refs = images()
    loaded = run("bash", str(ROOT / "scripts" / "k8s.sh"), "load", str(node.directory), *refs.values())
    assert loaded.returncode == 0, loaded.stderr.decode()[-2000:]
    return refs


def demo_stack(body: dict[str, Any]) -> spec.Stack:
    """The stack `demo` in `default` with `body` as its spec, as the API server would serve it."""
    meta = {"name": "demo", "namespace": "default", "uid": "00000000-0000-0000-0000-000000000001"}
    return spec.from_body(
        {"apiVersion": "cellcelly.io/v1alpha1", "kind": "CellCellyStack", "metadata": meta, "spec": body}
    )


def stack_for(refs: dict[str, str]) -> spec.Stack:
    return demo_stack(
        {
            "images": {**refs, "pullPolicy": "Never"},
            "kafka": {"replicas": 1},
            "voltdb": {"replicas": 1, "kfactor": 0, "sitesPerHost": 2},
            "hazelcast": {"replicas": 1},
        }
    )


def on_node(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The builder's objects as they go to the real node: its taint tolerated, an emptyDir for the
    data claim, the PodDisruptionBudget dropped (nothing evicts here)."""
    out = []
    for manifest in copy.deepcopy(manifests):
        if manifest["kind"] == "PodDisruptionBudget":
            continue
        if manifest["kind"] == "StatefulSet":
            pod = manifest["spec"]["template"]["spec"]
            pod.update(copy.deepcopy(ON_NODE))
            for claim in manifest["spec"].pop("volumeClaimTemplates", []):
                pod["volumes"].append({"name": claim["metadata"]["name"], "emptyDir": {}})
            manifest["spec"].pop("persistentVolumeClaimRetentionPolicy", None)
        out.append(manifest)
    return out


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": data,
    }


@pytest.fixture
def deployed(node: Node) -> Iterator[list[dict[str, Any]]]:  # noqa: F811
    """Objects a test applies; deleted after it (one back end on the node at a time)."""
    objects: list[dict[str, Any]] = []
    yield objects
    for obj in objects:
        node.cluster.kubectl(
            "delete", obj["kind"], obj["metadata"]["name"], "--wait=false", "--ignore-not-found"
        )
    node.cluster.kubectl(
        "delete", "pods", "-l", "app.kubernetes.io/instance=demo", "--grace-period=0", "--force"
    )


def ready(node: Node, pod: str, timeout: float) -> float:  # noqa: F811
    """Seconds until the pod's readiness probe (the builder's) passes."""
    start = time.monotonic()
    done = node.cluster.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", f"--timeout={int(timeout)}s")
    if done.returncode != 0:
        logs = node.cluster.kubectl("logs", pod, "--tail=40").stdout
        pytest.fail(f"{pod} not Ready in {timeout}s: {done.stderr}\n{logs}")
    return time.monotonic() - start


def cluster_ip(node: Node, name: str) -> str:  # noqa: F811
    return str(node.cluster.get("service", name)["spec"]["clusterIP"])


def test_hazelcast_image_answers_a_client_through_its_service(
    node: Node,  # noqa: F811 (test_node's fixture)
    backends: dict[str, str],
    deployed: list[dict[str, Any]],
) -> None:
    hazelcast = pytest.importorskip("hazelcast")
    stack = stack_for(backends)
    deployed += on_node(hz_builder.build(stack))
    apply(node.cluster, *deployed)
    ready(node, "demo-hazelcast-0", 180)
    address = f"{cluster_ip(node, 'demo-hazelcast')}:{hz_builder.PORT}"
    client = hazelcast.HazelcastClient(
        cluster_members=[address],
        cluster_name=hz_builder.cluster_name(stack),
        smart_routing=False,
        cluster_connect_timeout=60,
    )
    try:
        cache = client.get_map("node-image-test").blocking()
        cache.put("k", "v")
        assert cache.get("k") == "v"
    finally:
        client.shutdown()


def test_voltdb_image_answers_ping_and_system_information_on_21212(
    node: Node,  # noqa: F811 (test_node's fixture)
    backends: dict[str, str],
    deployed: list[dict[str, Any]],
) -> None:
    from voltdbclient import FastSerializer, VoltProcedure

    stack = stack_for(backends)
    deployed += [secret("demo-voltdb", {"username": volt_builder.USER, "password": PASSWORD})]
    deployed += on_node(volt_builder.build(stack))
    apply(node.cluster, *deployed)
    ready(node, "demo-voltdb-0", 300)
    host = cluster_ip(node, "demo-voltdb")
    deadline = time.monotonic() + 60
    while True:  # kube-proxy gets the endpoint ~1 s after Ready
        try:
            client = FastSerializer(
                host, volt_builder.CLIENT_PORT, username=volt_builder.USER, password=PASSWORD
            )
            break
        except OSError:
            assert time.monotonic() < deadline, f"VoltDB at {host}:21212 did not answer"
            time.sleep(1)
    try:
        assert VoltProcedure(client, "@Ping", []).call().status == 1
        info = VoltProcedure(client, "@SystemInformation", [FastSerializer.VOLTTYPE_STRING]).call(
            ["OVERVIEW"]
        )
        assert info.status == 1
        assert any(row[1] == "VERSION" and row[2] == "10.1.1" for row in info.tables[0].tuples)
    finally:
        client.close()


def test_kafka_image_answers_produce_and_consume_through_its_service(
    node: Node,  # noqa: F811 (test_node's fixture)
    backends: dict[str, str],
    deployed: list[dict[str, Any]],
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    stack = stack_for(backends)
    users = {u: PASSWORD for u in (*kafka_builder.SCRAM_USERS, kafka_builder.CONTROLLER_USER)}
    deployed += [secret(kafka_builder.users_secret_name(stack), users)]
    manifests = on_node(kafka_builder.build(stack))
    # The Service first: the broker advertises its ClusterIP instead of the pod's DNS name (the test's
    # client runs on the host, which does not use the cluster's DNS, and must reach the advertised address).
    services = [m for m in manifests if m["kind"] == "Service"]
    apply(node.cluster, *services)
    address = cluster_ip(node, "demo-kafka")
    for manifest in manifests:
        if manifest["kind"] == "StatefulSet":
            env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
            next(e for e in env if e["name"] == "ADVERTISED_HOST")["value"] = address
    deployed += manifests
    apply(node.cluster, *deployed)
    ready(node, "demo-kafka-0", 240)
    broker = kafka_builder.BROKER_USER

    async def round_trip() -> bytes:
        login = {
            "bootstrap_servers": f"{address}:{kafka_builder.CLIENT_PORT}",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": kafka_builder.SASL_MECHANISM,
            "sasl_plain_username": broker,
            "sasl_plain_password": PASSWORD,
        }
        producer = AIOKafkaProducer(**login, request_timeout_ms=30000)
        try:  # stopped even when start fails (a broker not answering yet): no unclosed producer
            await producer.start()
            await producer.send_and_wait("node-image-test", b"hello")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("node-image-test", **login, auto_offset_reset="earliest", group_id=None)
        try:
            await consumer.start()
            message = await asyncio.wait_for(consumer.getone(), 60)
            return bytes(message.value or b"")
        finally:
            await consumer.stop()

    def answered() -> bool:
        try:
            return asyncio.run(round_trip()) == b"hello"
        except Exception:  # noqa: BLE001 (endpoints, topic creation and leader election settle)
            return False

    wait_until("a produce/consume through the Kafka Service", answered, timeout=120)
