"""What the handlers do with the API: apply the built children, read their state, heal, clean up.

Decisions live in the pure modules (children, status, healing, failover); this module only talks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cellcelly_operator import children, events, healing, kafka, oracle, postgresql, services, status, voltdb
from cellcelly_operator.kube import ApiError, Kube, UnknownCollection
from cellcelly_operator.labels import MANAGED_BY, Manifest, component_of
from cellcelly_operator.spec import Stack

log = logging.getLogger(__name__)

APPLIED = "cellcelly.io/applied-hash"


def contains(live: Any, desired: Any) -> bool:
    """Is everything we asked for in the live object? (The server adds defaults; those are not a diff.)"""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    live: dict[str, dict[str, Manifest]] = field(default_factory=dict)  # kind -> name -> object seen
    missing: list[str] = field(default_factory=list)  # kinds the server does not serve (CRD absent)
    not_applied: list[str] = field(default_factory=list)  # children of those kinds, left out


def _ref(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def applied_hash(manifest: Manifest) -> str:
    """What we last applied, kept on the child: a manifest that changed (a field dropped by a new operator
    version, which contains() cannot see) is applied again even where the live object still contains it."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def with_hash(manifest: Manifest) -> Manifest:
    meta = {**manifest["metadata"]}
    meta["annotations"] = {**meta.get("annotations", {}), APPLIED: applied_hash(manifest)}
    return {**manifest, "metadata": meta}


async def apply(
    kube: Kube, manifest: Manifest, live: Manifest | None, result: Applied, create_only: bool = False
) -> None:
    """Server-side apply when absent or when it differs from what we want, else leave it (idempotent).
    `create_only`: made once and never rewritten (a generated Secret), so created by POST; an existing
    one only gets the entries it lacks (a login a newer version added), never a new value for one."""
    kind = children.kind_of(manifest)
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    if create_only:
        if live is not None:
            added = children.secret_additions(manifest, live)
            if not added:
                result.unchanged.append(_ref(manifest))
                return
            # the resourceVersion read: a pass adding the same entries meanwhile makes this one a 409,
            # so two passes never leave two different passwords for one user
            version = live.get("metadata", {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": version} if version else {}, "stringData": added}
            try:
                await kube.merge_patch(kind.item(ns, name), body)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                result.unchanged.append(_ref(manifest))  # the next pass sees what was written
                return
            log.info("added %s to %s (made by an earlier version)", sorted(added), _ref(manifest))
            result.patched.append(_ref(manifest))
            return
        try:
            await kube.create(kind.collection(ns), manifest)
        except ApiError as exc:
            if exc.status != 409:
                raise
            result.unchanged.append(_ref(manifest))  # made meanwhile by a concurrent pass
            return
        result.created.append(_ref(manifest))
        return
    desired = with_hash(manifest)
    if live is not None and contains(live, desired):
        result.unchanged.append(_ref(manifest))
        return
    await kube.apply(kind.item(ns, name), desired)
    (result.created if live is None else result.patched).append(_ref(manifest))


async def snapshot(kube: Kube, stack: Stack) -> tuple[dict[str, dict[str, Manifest]], list[str]]:
    """Our children by kind and name (one list per kind, not one read per child: fewer round trips),
    and the kinds the server does not serve at all."""
    out: dict[str, dict[str, Manifest]] = {}
    missing: list[str] = []
    for kind_name in children.OWNED_KINDS:
        try:
            out[kind_name] = {i["metadata"]["name"]: i for i in await owned(kube, stack, kind_name)}
        except UnknownCollection:
            missing.append(kind_name)
    return out, missing


async def apply_all(kube: Kube, stack: Stack) -> Applied:
    result = Applied()
    # the managed back ends' logins: made once, never rotated behind the back end's back (the database,
    # the formatted Kafka log and the initialised VoltDB root keep the first ones)
    made: list[Manifest] = []
    if stack.spec.record_component == "oracle" and stack.spec.oracle.mode == "managed":
        made.append(oracle.generated_secret(stack, secrets.token_urlsafe(18)))
    if stack.spec.record_component == "postgresql" and stack.spec.postgresql.mode == "managed":
        made.append(postgresql.generated_secret(stack, secrets.token_urlsafe(18)))
    if stack.spec.kafka.mode == "managed":
        made.append(kafka.generated_users_secret(stack, lambda: secrets.token_urlsafe(24)))
    if stack.spec.voltdb.mode == "managed":
        made.append(voltdb.generated_secret(stack, secrets.token_urlsafe(24)))
    for secret in made:
        existing = await kube.get(children.kind_of(secret).item(stack.namespace, secret["metadata"]["name"]))
        await apply(kube, secret, existing, result, create_only=True)
    # the key OCS and DGW share, when the user names no Secret of their own: made once, random per stack
    key_secret = services.generated_ocs_api_key(stack, secrets.token_urlsafe(32))
    if key_secret is not None:
        existing = await kube.get(
            children.kind_of(key_secret).item(stack.namespace, key_secret["metadata"]["name"])
        )
        await apply(kube, key_secret, existing, result, create_only=True)
    live, result.missing = await snapshot(kube, stack)
    desired = children.build(stack)
    for manifest in desired:
        if manifest["kind"] in result.missing:
            result.not_applied.append(_ref(manifest))  # status says so (monitoring.condition)
            continue
        await apply(kube, manifest, live.get(manifest["kind"], {}).get(manifest["metadata"]["name"]), result)
    await prune(kube, stack, {_ref(m) for m in desired}, result, live)
    result.live = live
    return result


async def owned(kube: Kube, stack: Stack, kind_name: str) -> list[Manifest]:
    """Our children of one kind: labelled for this stack and managed by us (a Helm release of the stack
    chart with the same name carries the same instance label, and is not ours to prune)."""
    kind = children.KINDS[kind_name]
    selector = (
        f"app.kubernetes.io/instance={stack.name},app.kubernetes.io/part-of=cellcelly,"
        f"app.kubernetes.io/managed-by={MANAGED_BY}"
    )
    items = await kube.list(kind.collection(stack.namespace), selector)
    for item in items:
        # a real API server's list items carry neither: without them every child differed from its
        # manifest (contains() compares apiVersion too) and was applied again on every pass
        item.setdefault("kind", kind_name)
        item.setdefault("apiVersion", kind.api_version)
    return items


async def prune(
    kube: Kube, stack: Stack, keep: set[str], result: Applied, live: dict[str, dict[str, Manifest]]
) -> None:
    """Delete our children the spec no longer asks for (an Ingress turned off, an external back end)."""
    for kind_name, objs in live.items():
        for name in objs:
            if f"{kind_name}/{name}" not in keep:
                await kube.delete(children.KINDS[kind_name].item(stack.namespace, name))
                result.deleted.append(f"{kind_name}/{name}")


async def cleanup(kube: Kube, stack: Stack) -> Applied:
    """What owner references do not: the children go with the stack by the garbage collector, but the
    StatefulSets' claims only where their own retention policy is in force (a cluster before 1.27 has
    it off; the charts allow 1.25), so claims follow storage.deletionPolicy here."""
    result = Applied()
    if stack.spec.storage.deletion_policy == "Delete":
        kind = children.KINDS["PersistentVolumeClaim"]
        for claim in await owned(kube, stack, "PersistentVolumeClaim"):
            await kube.delete(kind.item(stack.namespace, claim["metadata"]["name"]))
            result.deleted.append(f"PersistentVolumeClaim/{claim['metadata']['name']}")
    return result


def observe(stack: Stack, live: dict[str, dict[str, Manifest]]) -> dict[str, status.Readiness]:
    """Readiness of each component from the workloads seen in the snapshot."""
    out = status.external_components(dict(stack.spec.backend_modes()))
    for component, (kind_name, name) in children.workloads(stack).items():
        out[component] = status.readiness(live.get(kind_name, {}).get(name))
    return out


@dataclass
class HealResult:
    restarts: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    exhausted: tuple[str, ...]
    seen: dict[str, int]


async def heal(
    kube: Kube,
    stack: Stack,
    current: dict[str, Any],
    seen: dict[str, int],
    now: float,
) -> HealResult:
    """Restart (delete) sick pods of our workloads within budget; record each action and post an Event."""
    components = set(children.workloads(stack))
    pods = [p for p in await owned(kube, stack, "Pod") if component_of(p) in components]
    sick = []
    new_seen: dict[str, int] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        new_seen[name] = healing.restart_total(pod)
        verdict = healing.diagnose(
            pod, component_of(pod), now, stack.spec.self_healing.not_ready_seconds, seen.get(name)
        )
        if verdict is not None:
            sick.append(verdict)
    plan = healing.plan(sick, current.get("restarts") or {}, stack.spec.self_healing, now)
    history = list(current.get("healing") or [])
    pod_kind = children.KINDS["Pod"]
    for verdict in plan.restart:
        await kube.delete(pod_kind.item(stack.namespace, verdict.pod))
        new_seen.pop(verdict.pod, None)
        history = healing.record(history, verdict, "deleted", now)
        note = f"restarted pod {verdict.pod} of {verdict.component}: {verdict.reason}"
        await post_event(kube, stack, "PodRestarted", note, "Warning", "Restart", now)
        log.warning("self-healing: %s", note)
    for verdict in plan.skipped:
        if not any(h.get("pod") == verdict.pod and h.get("action") == "skipped" for h in history[-5:]):
            history = healing.record(history, verdict, "skipped", now)
            note = (
                f"pod {verdict.pod} of {verdict.component} is sick ({verdict.reason}); restart budget spent"
            )
            await post_event(kube, stack, "RestartBudgetSpent", note, "Warning", "Restart", now)
    return HealResult(plan.restarts, history, plan.exhausted, new_seen)


async def post_event(
    kube: Kube, stack: Stack, reason: str, note: str, kind: Any, action: str, now: float | None = None
) -> None:
    manifest = events.event(stack, reason, note, kind, action, time.time() if now is None else now)
    try:
        await kube.create(children.KINDS["Event"].collection(stack.namespace), manifest)
    except Exception:  # an event lost is no reason to fail the reconcile
        log.exception("could not post event %s", reason)
