"""What scripts/k8s.sh promises the later cluster tests: the fake node runs pods (kwok), a StatefulSet's
claims bind (hostPath provisioning), and the controller-manager collects what an owner leaves behind."""

from __future__ import annotations

import time

import pytest
from k8s_cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: basics, namespace: basics}
spec:
  replicas: 2
  serviceName: basics
  selector: {matchLabels: {app: basics}}
  template:
    metadata: {labels: {app: basics}}
    spec:
      containers: [{name: c, image: example.invalid/never-pulled:1}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def test_the_fake_node_is_ready(cluster: Cluster) -> None:
    node = cluster.get("node", "kwok-node-0")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_a_statefulset_runs_with_bound_claims_and_its_pods_are_collected(cluster: Cluster) -> None:
    cluster.ok("create", "namespace", "basics")
    try:
        cluster.ok("apply", "-f", "-", stdin=STATEFULSET)
        done = cluster.kubectl("rollout", "status", "statefulset/basics", "-n", "basics", "--timeout=90s")
        assert done.returncode == 0, done.stderr + cluster.ok("get", "pods,pvc", "-n", "basics", "-o", "wide")
        claims = cluster.get("pvc", "-n", "basics")["items"]
        assert sorted(c["metadata"]["name"] for c in claims) == ["data-basics-0", "data-basics-1"]
        assert {c["status"]["phase"] for c in claims} == {"Bound"}
        pods = cluster.get("pods", "-n", "basics", "-l", "app=basics")["items"]
        assert {p["status"]["phase"] for p in pods} == {"Running"}
        # garbage collection: the pods' owner goes, the controller-manager deletes the pods
        cluster.ok("delete", "statefulset", "basics", "-n", "basics", "--cascade=background")
        deadline = time.monotonic() + 60
        while cluster.get("pods", "-n", "basics", "-l", "app=basics")["items"]:
            assert time.monotonic() < deadline, "pods left after their StatefulSet was deleted"
            time.sleep(0.5)
    finally:
        cluster.kubectl("delete", "namespace", "basics", "--wait=false")
