"""The real node of `scripts/k8s.sh up --node`: kubelet, containerd, bridge CNI and kube-proxy run real
pods from a local image beside kwok's fake node, CoreDNS on the host answers their cluster names (and
nothing else), and `down` leaves none of what it made on the machine.

One control plane with its node for the whole file (its own, not the session's kwok-only cluster: only
one node can run per machine, and the other cluster tests need none). Needs root, containerd, runc,
the CNI plugins and podman with the project's debootstrap base (scripts/images.sh base)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from k8s_cluster import HELM_SH, K8S_SH, ROOT, Cluster, fetched, script

from cellcelly_testing import DOWNLOADS, require

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NODE = "cellcelly-node"
TAINT = "cellcelly.io/real-node"
IMAGE = "localhost/cellcelly-node-test:1"
BASE = "localhost/python-bookworm:3.11"
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "vm.overcommit_memory",
    "kernel.panic",
)
# answers GET with the pod's hostname, so a test can tell the replicas apart behind one Service
SERVER = (
    "import socket, http.server as h\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(socket.gethostname().encode())\n"
    "h.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
)
ON_NODE = {
    "nodeSelector": {"kubernetes.io/hostname": NODE},
    "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
}


class Node:
    def __init__(self, cluster: Cluster, before: dict[str, str]) -> None:
        self.cluster = cluster
        self.directory = cluster.directory
        self.sysctls_before = before


def sysctls() -> dict[str, str]:
    return {key: Path("/proc/sys", key.replace(".", "/")).read_text().strip() for key in SYSCTLS}


def run(*args: str, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "images" / "podman" / "containers.conf")}
    return subprocess.run(list(args), input=stdin, capture_output=True, env=env, check=False, timeout=timeout)


def missing_tools() -> list[str]:
    tools = ("containerd", "ctr", "runc", "conntrack", "podman", "nft", "iptables-save", "ip", "go")
    return [tool for tool in tools if shutil.which(tool) is None]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require(fetched(), "the Kubernetes control plane is not built: run scripts/k8s.sh fetch (~10 min cold)")
    for binary in ("kubelet", "coredns"):
        require(any(DOWNLOADS.glob(f"k8s/v*/bin/{binary}")), f"{binary} not built: run scripts/k8s.sh fetch")
    require(os.geteuid() == 0, "the real node needs root (bridges, netns, mounts, cgroups)")
    missing = missing_tools()
    require(
        not missing,
        f"{missing} not found: apt-get install containerd runc containernetworking-plugins conntrack podman",
    )
    kubectl = script(HELM_SH, "kubectl")
    require(kubectl.returncode == 0, "kubectl not fetched: run scripts/helm.sh fetch")
    if run("podman", "image", "exists", BASE).returncode != 0:
        base = run("bash", str(ROOT / "scripts" / "images.sh"), "base", timeout=1200)
        require(base.returncode == 0, f"scripts/images.sh base failed: {base.stderr.decode()[-2000:]}")
    context = tmp_path_factory.mktemp("node-image")
    (context / "server.py").write_text(SERVER)
    (context / "Containerfile").write_text(
        f'FROM {BASE}\nCOPY server.py /server.py\nCMD ["python3", "/server.py"]\n'
    )
    built = run("podman", "build", "-q", "--format", "docker", "-t", IMAGE, str(context))
    require(built.returncode == 0, f"podman build of {IMAGE} failed: {built.stderr.decode()[-2000:]}")

    before = sysctls()
    directory = tmp_path_factory.mktemp("k8s-node")
    up = script(K8S_SH, "up", "--node", str(directory))
    if up.returncode != 0:
        script(K8S_SH, "down", str(directory))
    require(up.returncode == 0, f"scripts/k8s.sh up --node failed: {up.stderr[-3000:]}")
    try:
        loaded = script(K8S_SH, "load", str(directory), IMAGE)
        assert loaded.returncode == 0, loaded.stderr
        cluster = Cluster(directory, Path(kubectl.stdout.strip()), tmp_path_factory.mktemp("k8s-node-home"))
        yield Node(cluster, before)
    finally:
        down = script(K8S_SH, "down", str(directory))
        assert down.returncode == 0, down.stderr


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.5)


def apply(cluster: Cluster, *objects: dict[str, object]) -> None:
    done = cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    assert done.returncode == 0, done.stderr


def web(name: str, replicas: int) -> tuple[dict[str, object], dict[str, object]]:
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    **ON_NODE,
                    "containers": [
                        {
                            "name": "web",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return deployment, service


@pytest.fixture(scope="module")
def service(node: Node) -> tuple[str, list[str]]:
    """A 2-replica Deployment of the local image behind a ClusterIP Service: (cluster IP, pod names)."""
    cluster = node.cluster
    apply(cluster, *web("web", 2))
    cluster.ok("rollout", "status", "deployment/web", "--timeout=120s")
    pods = cluster.get("pods", "-l", "app=web")["items"]
    assert {pod["spec"]["nodeName"] for pod in pods} == {NODE}
    return cluster.get("service", "web")["spec"]["clusterIP"], sorted(pod["metadata"]["name"] for pod in pods)


def test_the_node_is_ready_tainted_and_kwok_keeps_the_other_pods(node: Node) -> None:
    cluster = node.cluster
    real = cluster.get("node", NODE)
    assert {"key": TAINT, "value": "true", "effect": "NoSchedule"} in real["spec"]["taints"]
    assert real["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
    assert real["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    # a pod that does not tolerate the taint (every other cluster test's) lands on kwok's fake node
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "elsewhere"},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/never-pulled:1"}]},
        },
    )
    cluster.ok("wait", "--for=condition=Ready", "pod/elsewhere", "--timeout=60s")
    assert cluster.get("pod", "elsewhere")["spec"]["nodeName"] == "kwok-node-0"


def get_from_host(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/", timeout=3) as response:  # noqa: S310 (a ClusterIP)
        body: bytes = response.read()
        return body.decode()


def test_a_clusterip_service_answers_from_the_host_through_kube_proxy(
    node: Node, service: tuple[str, list[str]]
) -> None:
    address, pods = service
    seen: set[str] = set()

    def both_answered() -> bool:
        try:
            seen.add(get_from_host(address))
        except OSError:
            pass  # kube-proxy gets the endpoints ~1 s after the rollout is done
        return seen == set(pods)

    wait_until(f"both replicas behind {address}", both_answered, timeout=60)


def python_in(cluster: Cluster, pod: str, code: str) -> str:
    """What `code`, run by the pod's python3, prints."""
    return cluster.ok("exec", pod, "--", "python3", "-c", code)


def test_a_clusterip_service_answers_from_a_pod(node: Node, service: tuple[str, list[str]]) -> None:
    address, pods = service
    fetch = (
        "import urllib.request as u\n"
        f"for _ in range(20): print(u.urlopen('http://{address}/', timeout=3).read().decode())"
    )
    answers = python_in(node.cluster, pods[0], fetch).split()
    assert set(answers) == set(pods)  # its own replica too: hairpin through the bridge


def test_logs_and_exec_reach_the_container(node: Node, service: tuple[str, list[str]]) -> None:
    _, pods = service
    cluster = node.cluster
    assert cluster.ok("exec", pods[1], "--", "hostname").strip() == pods[1]
    # the readiness probe's GETs, written by the server to stderr, read back through the kubelet
    assert re.search(r'"GET / HTTP/1.1" 200', cluster.ok("logs", pods[1]))


def test_a_pod_has_no_route_off_the_machine(node: Node, service: tuple[str, list[str]]) -> None:
    _, pods = service
    routes = node.cluster.ok("exec", pods[0], "--", "cat", "/proc/net/route").splitlines()[1:]
    assert routes and not any(line.split()[1] == "00000000" for line in routes), routes  # no default route
    probe = (
        "import socket\ns = socket.socket(); s.settimeout(3)\n"
        "try:\n    s.connect(('1.1.1.1', 80)); print('connected')\nexcept OSError as e:\n    print(e.errno)\n"
    )
    assert python_in(node.cluster, pods[0], probe).strip() == "101"  # ENETUNREACH


def test_a_pod_resolves_and_reaches_services_by_name_through_the_search_path(
    node: Node, service: tuple[str, list[str]]
) -> None:
    address, pods = service
    lookup = (
        "import json, socket, urllib.request as u\n"
        "names = ('kubernetes.default.svc.cluster.local', 'web', 'web.default', 'web.default.svc')\n"
        "out = {n: socket.gethostbyname(n) for n in names}\n"
        "get = [u.urlopen(f'http://{n}/', timeout=3) for n in ('web', 'web.default')]\n"
        "out['get'] = [answer.read().decode() for answer in get]\n"
        "out['reverse'] = socket.gethostbyaddr(out['web'])[0]\n"
        "out['resolv.conf'] = open('/etc/resolv.conf').read()\n"
        "print(json.dumps(out))\n"
    )
    found = json.loads(python_in(node.cluster, pods[0], lookup))
    assert "nameserver 10.244.0.1" in found["resolv.conf"]
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in found["resolv.conf"]
    assert found["kubernetes.default.svc.cluster.local"] == "10.0.0.1"
    assert found["web"] == found["web.default"] == found["web.default.svc"] == address
    assert set(found["get"]) <= set(pods)
    assert found["reverse"] == "web.default.svc.cluster.local"


def peer_set(name: str, publish_not_ready: bool) -> tuple[dict[str, object], dict[str, object]]:
    """A one-pod StatefulSet that never gets ready, and its headless Service."""
    labels = {"app": name}
    statefulset: dict[str, object] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    **ON_NODE,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "c",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "infinity"],
                            "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    headless: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": publish_not_ready,
            "selector": labels,
            "ports": [{"name": "peer", "port": 9093}],
        },
    }
    return statefulset, headless


def test_a_statefulset_pod_not_yet_ready_resolves_by_its_headless_name(
    node: Node, service: tuple[str, list[str]]
) -> None:
    """As a Kafka voter or VoltDB host needs before it is ready: only with publishNotReadyAddresses."""
    cluster = node.cluster
    _, pods = service
    apply(cluster, *peer_set("peer", publish_not_ready=True), *peer_set("shy", publish_not_ready=False))

    def running() -> bool:  # the StatefulSet controller makes the pods a moment after the apply
        ips = cluster.kubectl("get", "pod", "peer-0", "shy-0", "-o", "jsonpath={.items[*].status.podIP}")
        return len(ips.stdout.split()) == 2

    wait_until("peer-0 and shy-0 running", running)
    peer = cluster.get("pod", "peer-0")["status"]
    assert {c["type"]: c["status"] for c in peer["conditions"]}["Ready"] == "False"
    resolve = (
        "import socket, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        print(socket.gethostbyname(name))\n"
        "    except OSError:\n        print('-')\n"
    )

    def lookup(*names: str) -> list[str]:
        return cluster.ok("exec", pods[0], "--", "python3", "-c", resolve, *names).split()

    fqdn = "peer-0.peer.default.svc.cluster.local"
    wait_until(f"{fqdn} resolving", lambda: lookup(fqdn) == [peer["podIP"]], timeout=30)
    assert lookup("peer-0.peer", "shy-0.shy.default.svc.cluster.local") == [peer["podIP"], "-"]


def test_a_name_outside_the_cluster_is_refused_in_the_machine(
    node: Node, service: tuple[str, list[str]]
) -> None:
    """No forwarder: CoreDNS answers REFUSED itself (a forwarded query would come back NOERROR/NXDOMAIN)."""
    _, pods = service
    ask = (
        "import socket, struct\n"
        "for name in ('example.com', '1.1.1.1.in-addr.arpa'):\n"
        "    query = struct.pack('>HHHHHH', 7, 0x100, 1, 0, 0, 0)\n"
        "    query += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\0\\0\\1\\0\\1'\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
        "    s.sendto(query, ('10.244.0.1', 53))\n"
        "    print(s.recv(512)[3] & 0xF)\n"
        "try:\n    print(socket.gethostbyname('example.com'))\nexcept OSError:\n    print('unresolved')\n"
    )
    assert python_in(node.cluster, pods[0], ask).split() == ["5", "5", "unresolved"]  # 5: REFUSED


def test_a_failing_liveness_probe_restarts_the_container(node: Node) -> None:
    cluster = node.cluster
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "alive"},
        "spec": {
            **ON_NODE,
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "touch /tmp/alive && exec sleep infinity"],
                    "livenessProbe": {
                        "exec": {"command": ["test", "-f", "/tmp/alive"]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }
    apply(cluster, pod)
    cluster.ok("wait", "--for=condition=Ready", "pod/alive", "--timeout=60s")
    assert cluster.get("pod", "alive")["status"]["containerStatuses"][0]["restartCount"] == 0
    cluster.ok("exec", "alive", "--", "rm", "/tmp/alive")

    def restarted() -> bool:
        return bool(cluster.get("pod", "alive")["status"]["containerStatuses"][0]["restartCount"] >= 1)

    wait_until("the container restarted by its liveness probe", restarted, timeout=60)


def leftovers(directory: Path) -> list[str]:
    """What of a node is still on the machine: rules, netns, bridges, mounts, processes, cgroups."""
    found: list[str] = []
    tables = run("nft", "list", "tables").stdout.decode()
    found += [line for line in tables.splitlines() if "kube-proxy" in line]
    for save in ("iptables-save", "ip6tables-save"):
        found += [f"{save}: {line}" for line in run(save).stdout.decode().splitlines() if "KUBE-" in line]
    netns = run("ip", "netns", "list").stdout.decode()
    found += [f"netns {line}" for line in netns.splitlines() if line.startswith("cni-")]
    found += [
        f"link {link}" for link in ("cc-node0", "cc-pods0") if run("ip", "link", "show", link).returncode == 0
    ]
    found += [
        f"mount {line}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if str(directory) in line
    ]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(directory) in cmdline.read_bytes().decode(errors="replace"):
                found.append(f"process {cmdline.parent.name}")
        except OSError:
            pass  # gone while we looked
    found += [f"cgroup {path}" for path in Path("/sys/fs/cgroup").glob("*/kubepods")]
    found += [f"file {path}" for path in Path("/run").glob("cellcelly-k8s-node.*")]  # lock, saved sysctls
    return found


def test_down_leaves_nothing_of_the_node(node: Node) -> None:
    """Last in the file: stops the shared node. Pods are still running, as after a test that failed."""
    assert run("ip", "link", "show", "cc-pods0").returncode == 0  # the check below can see a bridge
    assert leftovers(node.directory), "nothing to clean up: the check would prove nothing"
    # a pod sandbox's netns whose network never came up (only a loopback): one was left by an e2e
    # run's node, and the next run's check found it. Made as containerd makes one (a namespace
    # mounted on a file in /run/netns), not by `ip netns add`, which bind-mounts /run/netns over
    # itself and so hides the namespaces containerd mounted there before
    empty = Path("/run/netns/cni-cellcelly-test-empty")
    empty.touch()
    assert run("unshare", f"--net={empty}", "true").returncode == 0
    down = script(K8S_SH, "down", str(node.directory))
    assert down.returncode == 0, down.stderr
    assert leftovers(node.directory) == []
    assert sysctls() == node.sysctls_before
    again = script(K8S_SH, "down", str(node.directory))  # idempotent
    assert again.returncode == 0, again.stderr
