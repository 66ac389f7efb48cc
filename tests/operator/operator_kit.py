"""Helpers of the operator tests: a matrix of specs, the CRD, a small client of the fake API server."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cellcelly_dev import operator_bench as bench

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "cellcellystacks.cellcelly.io.yaml"
API = "/apis/cellcelly.io/v1alpha1"


def crd_schema() -> dict[str, Any] | None:
    if not CRD.exists():
        return None
    doc = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def pruned(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields a real API server would drop from `value` (a structural schema prunes what it does not
    declare). kmock keeps everything, so an undeclared status field works here and is lost on a cluster."""
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = []
        for key, item in value.items():
            if key in props:
                out += pruned(props[key], item, f"{path}.{key}")
            elif isinstance(extra, dict):
                out += pruned(extra, item, f"{path}.{key}")
            else:
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for i, item in enumerate(value) for p in pruned(schema["items"], item, f"{path}[{i}]")]
    return []


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural-schema defaulting as the API server does it (objects only; enough for our specs)."""
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    out = dict(value)
    for key, sub in (schema.get("properties") or {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if key in out:
            out[key] = apply_defaults(sub, out[key])
    return out


SPECS: dict[str, dict[str, Any]] = {
    "minimal": {"version": "0.1.0"},
    "small": {
        "version": "0.2.0",
        "kafka": {"replicas": 1},
        "voltdb": {"replicas": 1, "kfactor": 0},
        "hazelcast": {"replicas": 1},
        "services": {n: {"replicas": 1} for n in ("ocs", "dgw", "mw", "sf")},
        "storage": {"deletionPolicy": "Delete"},
    },
    "full": {
        "version": "0.1.0",
        "images": {"registry": "registry.example/cc", "pullPolicy": "Always"},
        "kafka": {
            "replicas": 5,
            "ui": {"enabled": True},
            "storage": {"size": "50Gi", "storageClassName": "fast"},
        },
        "voltdb": {"replicas": 5, "kfactor": 2, "sitesPerHost": 8},
        "services": {
            "mw": {
                "replicas": 3,
                "ingress": {
                    "enabled": True,
                    "host": "selfcare.example.com",
                    "className": "nginx",
                    "tls": {"secretName": "selfcare-tls"},
                },
            },
            "dgw": {"replicas": 4, "service": {"type": "LoadBalancer", "port": 3868}},
            "ivr": {"replicas": 2, "service": {"type": "LoadBalancer", "port": 5080}},
            "sms": {
                "replicas": 1,
                "smsc": {"host": "smsc.example", "port": 2775, "secretRef": {"name": "smsc"}},
            },
            "ocs": {"replicas": 3, "env": {"CELLCELLY_LOG_LEVEL": "DEBUG"}},
        },
        "monitoring": {"enabled": True, "grafanaDashboard": True},
        "placement": {
            "nodeSelector": {"cellcelly.io/telco": "true"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "telco", "effect": "NoSchedule"}
            ],
        },
    },
    # services given in part: per-service defaults (replicas, ports) still apply, as the CRD's do
    "partial": {
        "version": "0.1.0",
        "services": {
            "mw": {"ingress": {"enabled": True}},
            "dgw": {"service": {"type": "NodePort"}},
            "sms": {},
        },
    },
    "external": {
        "version": "0.1.0",
        "kafka": {"mode": "external", "external": {"bootstrapServers": "k0.example:9092,k1.example:9092"}},
        "voltdb": {"mode": "external", "external": {"servers": "v0.example:21212"}},
        "hazelcast": {"mode": "external", "external": {"members": "hz0.example:5701", "clusterName": "prod"}},
        "oracle": {
            "mode": "external",
            "external": {
                # on 127.0.0.1: an operator run on this matrix probes the primary and must reach nothing else
                "dsn": "oracle+oracledb://@127.0.0.1:1521/?service_name=CELLCELLY",
                "standbyDsn": "oracle+oracledb://@127.0.0.1:1522/?service_name=CELLCELLY",
                "secretRef": {"name": "oracle-creds"},
            },
            "failover": {"enabled": True, "failAfterSeconds": 30},
        },
    },
    # the record on PostgreSQL: one managed pod, or an existing server's DSN and login Secret
    "postgresql": {"version": "0.1.0", "record": "PostgreSQL", "postgresql": {"storage": {"size": "5Gi"}}},
    "postgresql-external": {
        "version": "0.1.0",
        "record": "PostgreSQL",
        "postgresql": {
            "mode": "external",
            "external": {
                "dsn": "postgresql+psycopg://pg.example:5432/prod",
                "secretRef": {"name": "pg-creds"},
            },
        },
    },
    # external back ends that ask for a login: Kafka SASL over TLS (protocol implied by the secretRef)
    "secured": {
        "version": "0.1.0",
        "kafka": {
            "mode": "external",
            "external": {"bootstrapServers": "k0.example:9093", "secretRef": {"name": "kafka-creds"}},
        },
        "voltdb": {
            "mode": "external",
            "external": {"servers": "v0.example:21212", "secretRef": {"name": "voltdb-creds"}},
        },
        "hazelcast": {
            "mode": "external",
            "external": {"members": "hz0.example:5701", "secretRef": {"name": "hz-creds"}},
        },
    },
}


def stack_body(name: str, spec: dict[str, Any], namespace: str = "telco", **meta: Any) -> dict[str, Any]:
    """A stack as the API server serves it (with a uid, stable per name for the pure tests). Sent to the
    fake server, the uid is replaced by a random one, as a real server gives on create (bench.Emulator)."""
    return {
        "apiVersion": "cellcelly.io/v1alpha1",
        "kind": "CellCellyStack",
        # kmock never sets a resourceVersion, and kopf's JSON patches test it: one that never changes.
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tests/{namespace}/{name}")),
            "resourceVersion": "1",
            **meta,
        },
        "spec": copy.deepcopy(spec),  # a test may change its body; SPECS is shared by every test
    }


# ---------------------------------------------------------------------------------------------- kmock

VERBS = bench.VERBS  # what kmock lets clients do with a kind (bench.declare declares them all)
TEST_AGENT = "cellcelly-tests"  # User-Agent of the tests' own requests (Api); all others are the operator's


def spec_writes(requests: Iterable[Any], *, agent_excluded: str | None = TEST_AGENT) -> list[str]:
    """Writes to a CellCellyStack that touch its spec, from kmock's record of every request (what kmock
    adds here: a real server keeps no such record). The operator must send none: spec is the user's,
    and what the operator writes there a GitOps tool reverts."""
    out = []
    for r in requests:
        method = str(getattr(r.method, "value", r.method))
        if method not in ("POST", "PUT", "PATCH"):
            continue
        if "/cellcellystacks" not in str(r.url.path):
            continue
        if agent_excluded is not None and r.headers.get("User-Agent") == agent_excluded:
            continue
        data = r.data
        if data is None and r.body:
            try:
                data = json.loads(r.body)
            except ValueError:
                data = None
        touches = (isinstance(data, dict) and "spec" in data) or (
            isinstance(data, list) and any(str(op.get("path", "")).startswith("/spec") for op in data)
        )
        if touches:
            out.append(f"{method} {r.url.path} {str(data)[:200]}")
    return out


class Api:
    """The test's own client of the fake API server (over HTTP, as a user with kubectl would be)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def get(self, path: str) -> dict[str, Any] | None:
        async with self.session.get(self.url + path) as rsp:
            return None if rsp.status == 404 else await rsp.json()

    async def items(self, path: str) -> list[dict[str, Any]]:
        got = await self.get(path)
        return list((got or {}).get("items") or [])

    async def create(self, path: str, body: dict[str, Any]) -> None:
        async with self.session.post(self.url + path, json=body) as rsp:
            assert rsp.status < 300, await rsp.text()

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(self.url + path, json=body, headers=headers) as rsp:
            assert rsp.status < 300, await rsp.text()

    async def delete(self, path: str) -> None:
        async with self.session.delete(self.url + path) as rsp:
            assert rsp.status < 300, await rsp.text()

    def stack(self, name: str, namespace: str = "telco") -> str:
        return f"{API}/namespaces/{namespace}/cellcellystacks/{name}"


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until `check` returns something truthy; fail with what it last returned."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what or check}: last {last!r}")
