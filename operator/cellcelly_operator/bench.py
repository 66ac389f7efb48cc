"""Operator figures on kmock (a fake API server, in this process) with `kopf run -A` in a subprocess.

    python -m cellcelly_operator.bench [--stacks 50] [--json]

1. one stack: time from the CR created to every child created (median of a few);
2. N stacks created at once: time until every child of every stack exists;
3. reconcile time of N converged stacks (apply_all: one list per kind, compare, nothing to patch),
   in this process against the same server, beside a baseline: the same requests sent raw.
Needs the dev dependency kmock. These are figures about the operator on a fake server whose own cost
per request grows with the objects it holds; a real API server answers differently.

kmock keeps every request it has served and, for each new one, scans that whole log against each of its
reactions: its cost per request grows with the requests served so far (40 stacks took 232 s to create
that way). The bench keeps only the last few requests in that log (nothing here asserts on it), so the
figures are the operator's and the emulator's, not the request log's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import yaml

from cellcelly_operator import children, reconcile, spec
from cellcelly_operator.kube import Kube

log = logging.getLogger(__name__)

NS = "bench"
VERBS = {"get", "list", "watch", "create", "patch", "delete"}
# what kmock must serve: a kind it does not declare lists as 404, which the operator reads as "CRD absent"
RESOURCES = {
    "v1/namespaces": ("Namespace", False),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    **{f"{k.api_version}/{k.plural}": (k.kind, True) for k in children.KINDS.values()},
}


def declare(server: Any) -> None:
    """Declare on kmock (`KubernetesEmulator`) the stack's kind and every kind the operator uses."""
    from kmock import ResourceInfo

    server.resources["cellcelly.io/v1alpha1/cellcellystacks"] = ResourceInfo(
        kind="CellCellyStack", namespaced=True, verbs=VERBS, subresources={"status"}
    )
    for key, (kind, namespaced) in RESOURCES.items():
        server.resources[key] = ResourceInfo(kind=kind, namespaced=namespaced, verbs=VERBS)


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig for the fake API server at `url` (no credentials: kmock asks for none)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "kmock", "user": {}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def start_operator(kubeconfig: Path, log: Path, tick: float) -> subprocess.Popen[bytes]:
    """`kopf run -A --standalone -m cellcelly_operator.handlers` against that kubeconfig, its output
    appended to `log`."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CELLCELLY_OPERATOR_TICK=str(tick))
    command = [sys.executable, "-m", "kopf", "run", "-A", "--standalone", "-m", "cellcelly_operator.handlers"]
    with log.open("a") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _body(name: str) -> dict[str, Any]:
    # kmock gives no resourceVersion; kopf's JSON patches test it: one that never changes.
    # kmock gives no uid either, and kopf keys its per-object memory by uid alone (uid or ""): without
    # one all stacks share one memory and one live body, so in a burst one stack's patches land on
    # another and a stack is never handled. The uid is the one the operator derives (spec.stack_uid).
    meta = {"name": name, "namespace": NS, "resourceVersion": "1"}
    return {
        "apiVersion": "cellcelly.io/v1alpha1",
        "kind": "CellCellyStack",
        "metadata": {**meta, "uid": spec.stack_uid(meta)},
        "spec": {"version": "0.1.0"},
    }


def _expected(name: str) -> set[tuple[str, str]]:
    """(plural, name) of every child: names repeat across kinds (demo-kafka: Service, StatefulSet, PDB)."""
    stack = spec.from_body(_body(name))
    return {(children.kind_of(m).plural, m["metadata"]["name"]) for m in children.build(stack)}


def _present(server: Any, wanted: set[tuple[str, str]]) -> int:
    """Children kmock holds (read in-process: polling over HTTP would slow the operator down)."""
    found = set()
    for (resource, namespace, name), obj in list(server.objects.items()):
        key = (resource.plural, name)
        if namespace == NS and key in wanted and not obj.deleted:
            found.add(key)
    return len(found)


async def _wait(server: Any, stacks: list[str], timeout: float) -> float:
    want = {s: _expected(s) for s in stacks}
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if all(_present(server, want[s]) >= len(want[s]) for s in stacks):
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"children of {len(stacks)} stacks not all created in {timeout}s")


async def run(n_stacks: int, singles: int) -> dict[str, Any]:
    from kmock import KubernetesEmulator, Server

    async with KubernetesEmulator() as server, Server(server) as srv:
        # a request is matched in the same loop step it is logged in, so a short log is enough
        object.__setattr__(server, "_requests", collections.deque(maxlen=16))
        declare(server)
        url = str(srv.url).rstrip("/")
        tmp = Path(tempfile.mkdtemp(prefix="cellcelly-bench-"))
        # the timer stays out of the way: these figures are the create/update handler's
        proc = start_operator(write_kubeconfig(tmp / "kubeconfig", url), tmp / "operator.log", tick=3600)
        collection = f"/apis/cellcelly.io/v1alpha1/namespaces/{NS}/cellcellystacks"
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(2.0)  # the operator starting and watching
                single: list[float] = []
                for i in range(singles):
                    name = f"single{i}"
                    start = time.perf_counter()
                    async with session.post(url + collection, json=_body(name)) as rsp:
                        rsp.raise_for_status()
                    await _wait(server, [name], 60)
                    single.append(time.perf_counter() - start)
                names = [f"s{i:03d}" for i in range(n_stacks)]
                start = time.perf_counter()
                for name in names:
                    async with session.post(url + collection, json=_body(name)) as rsp:
                        rsp.raise_for_status()
                await _wait(server, names, 600)
                many = time.perf_counter() - start
            proc.terminate()
            proc.wait(timeout=20)
            # steady state: every stack converged, a reconcile pass finds nothing to change
            kube = _Recording(kopf.ConnectionInfo(server=url))
            try:
                per: list[float] = []
                start = time.perf_counter()
                for name in names:
                    t = time.perf_counter()
                    result = await reconcile.apply_all(kube, spec.from_body(_body(name)))
                    per.append(time.perf_counter() - t)
                    assert not result.created and not result.patched, (result.created, result.patched)
                steady = time.perf_counter() - start
            finally:
                await kube.close()
            baseline = await _replay(url, kube.sent)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        children_per_stack = len(_expected("x"))
        return {
            "children_per_stack": children_per_stack,
            "single_stack_created_to_children_s": {
                "median": round(statistics.median(single), 3),
                "min": round(min(single), 3),
                "max": round(max(single), 3),
                "runs": singles,
            },
            f"{n_stacks}_stacks_created_to_all_children_s": round(many, 2),
            f"{n_stacks}_stacks_steady_reconcile_s": round(steady, 2),
            "steady_reconcile_per_stack_ms": {
                "median": round(statistics.median(per) * 1000, 1),
                "max": round(max(per) * 1000, 1),
            },
            f"{n_stacks}_stacks_same_requests_raw_s": round(baseline, 2),
            "steady_reconcile_vs_raw_requests": round(steady / baseline, 2),
            "objects_in_fake_server": len(server.objects),
        }


class _Recording(Kube):
    """The operator's client, noting each request it sends: the baseline replays exactly those."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        super().__init__(info)
        self.sent: list[tuple[str, str, dict[str, str] | None]] = []

    async def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any] | None:
        self.sent.append((method, path, kw.get("params")))
        return await super()._call(method, path, body, **kw)


async def _replay(url: str, sent: list[tuple[str, str, dict[str, str] | None]]) -> float:
    """Baseline: the requests of the reconcile passes (all reads: nothing was patched), sent raw, with
    no decoding and no comparing."""
    assert all(method == "GET" for method, _, _ in sent), "a converged pass only reads"
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        for _, path, params in sent:
            async with session.get(url + path, params=params) as rsp:
                await rsp.read()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellcelly_operator.bench", description=__doc__)
    parser.add_argument("--stacks", type=int, default=50)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures = asyncio.run(run(args.stacks, args.singles))
    text = json.dumps(figures, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items())
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
