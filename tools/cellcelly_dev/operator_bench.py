"""Operator figures with `kopf run -A` in a subprocess, on kmock (a fake API server, in this process) and
then on a real API server (Kubernetes from scripts/k8s.sh, started in a temporary directory and stopped
after; kwok runs the pods the controllers make). The same three figures on each:

    python -m cellcelly_dev.operator_bench [--stacks 50] [--json] [--no-real]

1. one stack: time from the CR created to every child created (median of a few);
2. N stacks created at once: time until every child of every stack exists;
3. reconcile time of N converged stacks (apply_all: one list per kind, compare, nothing to patch),
   in this process against the same server, beside a baseline: the same requests sent raw.
Needs the dev dependency kmock; the real server's figures need scripts/k8s.sh fetch (else "skipped").
kmock's own cost per request grows with the objects it holds (it filters every list in Python).

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
import uuid
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
    "v1/events": ("Event", True),  # kopf's own Events
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


APPLY = "application/apply-patch+yaml"
_EMULATOR: type | None = None


def emulator_class() -> type:
    """kmock's `KubernetesEmulator` with what a real API server does and the operator relies on, so the
    operator need not bend for the fake: a random uid on create, a name from generateName (kopf's own
    Events), server-side apply creating an absent object, label selectors on lists, and the garbage
    collector's cascade through owner references. Applying stays a merge here (a field dropped from the
    manifest is not removed: that is proven on the real server, tests/cluster/)."""
    global _EMULATOR
    if _EMULATOR is not None:
        return _EMULATOR
    from kmock import KubernetesEmulator, action

    class Emulator(KubernetesEmulator):
        async def _handle(self, request: Any) -> Any:
            if request.resource is not None:
                await self._as_a_server(request)
            try:
                return await super()._handle(request)
            finally:
                if request.action in (action.DELETE, action.UPDATE) and request.name is not None:
                    key = (request.resource, request.namespace, request.name)
                    if key in self._objects and self._objects[key].deleted:
                        await self._collect_garbage()

        async def _as_a_server(self, request: Any) -> None:
            data = request.data
            if not isinstance(data, dict):
                return
            meta = data.setdefault("metadata", {})
            if request.action == action.CREATE:
                meta["uid"] = str(uuid.uuid4())  # the server's, whatever the client sent
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
            elif request.action == action.UPDATE and request.headers.get("Content-Type") == APPLY:
                key = (request.resource, request.namespace, request.name)
                async with self._lock:
                    if key in self._objects and not self._objects[key].deleted:
                        return
                meta["uid"] = str(uuid.uuid4())
                # served from here on as the create it is (request is a frozen attrs class)
                object.__setattr__(request, "action", action.CREATE)

        async def _serve_list(self, request: Any) -> Any:
            got: Any = await super()._serve_list(request)
            wanted = _selector(request.params.get("labelSelector", ""))
            got["items"] = [i for i in got["items"] if wanted.items() <= _labels(i).items()]
            return got

        async def _collect_garbage(self) -> None:
            """Delete, until none is left, every object whose owners are all gone."""
            while True:
                async with self._lock:
                    live = {k: o for k, o in self._objects.items() if not o.deleted}
                    uids = {(o.get("metadata") or {}).get("uid") for o in live.values()}
                    orphans = [
                        (k, o)
                        for k, o in live.items()
                        if (refs := (o.get("metadata") or {}).get("ownerReferences"))
                        and not any(r.get("uid") in uids for r in refs)
                    ]
                    for key, obj in orphans:
                        obj.delete()
                        await self._buses[key[0]].put({"type": "DELETED", "object": obj.last.raw})
                if not orphans:
                    return

    _EMULATOR = Emulator
    return Emulator


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _selector(text: str) -> dict[str, str]:
    """An equality-based label selector (the only kind the operator sends)."""
    out = {}
    for term in filter(None, text.split(",")):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            raise ValueError(f"unsupported label selector {text!r}")
        out[key] = value
    return out


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
    # kmock gives no resourceVersion; kopf's JSON patches test it: one that never changes
    return {
        "apiVersion": "cellcelly.io/v1alpha1",
        "kind": "CellCellyStack",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
        "spec": {"version": "0.1.0"},
    }


def _expected(name: str) -> set[tuple[str, str]]:
    """(plural, name) of every child: names repeat across kinds (demo-kafka: Service, StatefulSet, PDB).
    Names only: the uid (the server's) does not matter here."""
    body = _body(name)
    body["metadata"]["uid"] = str(uuid.UUID(int=0))
    stack = spec.from_body(body)
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
    from kmock import Server

    async with emulator_class()() as server, Server(server) as srv:
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
                stacks = [await kube.get(f"{collection}/{name}") for name in names]  # with the server's uids
                steady, per = await _steady_passes(kube, stacks)
            finally:
                await kube.close()
            async with aiohttp.ClientSession() as session:
                baseline = await _replay(session, url, kube.sent)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        children_per_stack = len(_expected("x"))
        return {
            "children_per_stack": children_per_stack,
            **_figures(n_stacks, single, many, steady, per, baseline),
            "objects_in_fake_server": len(server.objects),
        }


class _Recording(Kube):
    """The operator's client, noting each request it sends: the baseline replays exactly those."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        super().__init__(info)
        self.sent: list[tuple[str, str, dict[str, str] | None]] = []

    async def _call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **kw: Any
    ) -> dict[str, Any] | None:
        self.sent.append((method, path, kw.get("params")))
        return await super()._call(method, path, body, content_type, **kw)


async def _steady_passes(kube: _Recording, stacks: list[dict[str, Any] | None]) -> tuple[float, list[float]]:
    """One converged reconcile pass a stack, in turn: the whole time and each pass's. Only those passes'
    requests stay recorded, for the baseline to replay."""
    kube.sent.clear()
    per: list[float] = []
    start = time.perf_counter()
    for body in stacks:
        assert body is not None
        t = time.perf_counter()
        result = await reconcile.apply_all(kube, spec.from_body(body))
        per.append(time.perf_counter() - t)
        assert not result.created and not result.patched, (result.created, result.patched)
    return time.perf_counter() - start, per


async def _replay(
    session: aiohttp.ClientSession, base: str, sent: list[tuple[str, str, dict[str, str] | None]]
) -> float:
    """Baseline: the requests of the reconcile passes (all reads: nothing was patched), sent raw, with
    no decoding and no comparing."""
    assert all(method == "GET" for method, _, _ in sent), "a converged pass only reads"
    start = time.perf_counter()
    for _, path, params in sent:
        async with session.get(base + path, params=params) as rsp:
            await rsp.read()
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------ real API server

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "cellcellystacks.cellcelly.io.yaml"


def _k8s_built() -> bool:
    cache = Path(os.environ.get("CELLCELLY_DOWNLOADS", Path.home() / ".cache" / "cellcelly"))
    return any(cache.glob("k8s/v*/.complete"))


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def login(kubeconfig: Path) -> kopf.ConnectionInfo:
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    try:
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    finally:
        if old is None:
            del os.environ["KUBECONFIG"]
        else:
            os.environ["KUBECONFIG"] = old
    if info is None:
        raise RuntimeError(f"no login in {kubeconfig}")
    return info


async def _present_real(kube: Kube, wanted: set[tuple[str, str]]) -> int:
    """Children the server holds, one list per kind (polling costs the server, as a user's would)."""
    found: set[tuple[str, str]] = set()
    for kind_name in children.OWNED_KINDS:
        kind = children.KINDS[kind_name]
        if kind_name == "ServiceMonitor":
            continue  # not made by these stacks (monitoring off), and not served without its CRD
        items = await kube.list(kind.collection(NS), "app.kubernetes.io/part-of=cellcelly")
        found |= {(kind.plural, i["metadata"]["name"]) for i in items} & wanted
    return len(found)


async def _wait_real(kube: Kube, stacks: list[str], timeout: float) -> float:
    want: set[tuple[str, str]] = set().union(*(_expected(s) for s in stacks))
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if await _present_real(kube, want) >= len(want):
            return time.perf_counter() - start
        await asyncio.sleep(0.1)
    raise TimeoutError(f"children of {len(stacks)} stacks not all created in {timeout}s")


async def run_real(n_stacks: int, singles: int) -> dict[str, Any]:
    """The same figures on a real API server (Kubernetes from scripts/k8s.sh, started in a temporary
    directory and stopped after; kwok runs the pods the controllers make, so the server is as busy as with
    a cluster's controllers). {"skipped": why} when the control plane is not built."""
    if not _k8s_built():
        return {"skipped": "the control plane is not built (scripts/k8s.sh fetch)"}
    kubectl = _script("helm.sh", "kubectl")
    if kubectl.returncode != 0:
        return {"skipped": "kubectl not fetched (scripts/helm.sh fetch)"}
    directory = Path(tempfile.mkdtemp(prefix="cellcelly-bench-k8s-"))
    up = _script("k8s.sh", "up", str(directory))
    try:
        if up.returncode != 0:
            raise RuntimeError(f"scripts/k8s.sh up failed: {up.stderr[-2000:]}")
        return await _run_real(directory / "kubeconfig", Path(kubectl.stdout.strip()), n_stacks, singles)
    finally:
        _script("k8s.sh", "down", str(directory))


def _user_body(name: str) -> dict[str, Any]:
    body = _body(name)
    del body["metadata"]["resourceVersion"]  # kmock's stand-in: a real server refuses one on create
    return body


async def _run_real(kubeconfig: Path, kubectl: Path, n_stacks: int, singles: int) -> dict[str, Any]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    for args in (
        ["apply", "-f", str(CRD)],
        ["wait", "--for=condition=Established", "crd/cellcellystacks.cellcelly.io", "--timeout=60s"],
        ["create", "namespace", NS],
    ):
        done = subprocess.run([str(kubectl), *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
    tmp = kubeconfig.parent
    proc = start_operator(kubeconfig, tmp / "operator.log", tick=3600)
    collection = f"/apis/cellcelly.io/v1alpha1/namespaces/{NS}/cellcellystacks"
    kube = _Recording(login(kubeconfig))
    try:
        await asyncio.sleep(2.0)  # the operator starting and watching
        single: list[float] = []
        for i in range(singles):
            name = f"single{i}"
            start = time.perf_counter()
            await kube.create(collection, _user_body(name))
            await _wait_real(kube, [name], 120)
            single.append(time.perf_counter() - start)
        names = [f"s{i:03d}" for i in range(n_stacks)]
        start = time.perf_counter()
        for name in names:
            await kube.create(collection, _user_body(name))
        await _wait_real(kube, names, 900)
        many = time.perf_counter() - start
        proc.terminate()
        proc.wait(timeout=20)
        stacks = [await kube.get(f"{collection}/{name}") for name in names]
        steady, per = await _steady_passes(kube, stacks)
        baseline = await _replay(kube._session, kube._base, kube.sent)  # the client's own TLS login
    finally:
        await kube.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return _figures(n_stacks, single, many, steady, per, baseline)


def _figures(
    n_stacks: int, single: list[float], many: float, steady: float, per: list[float], baseline: float
) -> dict[str, Any]:
    """The same figures from both servers, so the rows of one run compare key by key."""
    return {
        "single_stack_created_to_children_s": {
            "median": round(statistics.median(single), 3),
            "min": round(min(single), 3),
            "max": round(max(single), 3),
            "runs": len(single),
        },
        f"{n_stacks}_stacks_created_to_all_children_s": round(many, 2),
        f"{n_stacks}_stacks_steady_reconcile_s": round(steady, 2),
        "steady_reconcile_per_stack_ms": {
            "median": round(statistics.median(per) * 1000, 1),
            "max": round(max(per) * 1000, 1),
        },
        f"{n_stacks}_stacks_same_requests_raw_s": round(baseline, 2),
        "steady_reconcile_vs_raw_requests": round(steady / baseline, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellcelly_dev.operator_bench", description=__doc__)
    parser.add_argument("--stacks", type=int, default=50)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-real", action="store_true", help="kmock only, no real API server")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures: dict[str, Any] = {"kmock": asyncio.run(run(args.stacks, args.singles))}
    if not args.no_real:
        figures["real_api_server"] = asyncio.run(run_real(args.stacks, args.singles))
    lines = [f"{where} {k}: {v}" for where, got in figures.items() for k, v in got.items()]
    text = json.dumps(figures, indent=2) if args.json else "\n".join(lines)
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
