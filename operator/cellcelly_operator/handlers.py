"""The kopf handlers: thin, each one reads the stack, calls reconcile/pure functions, writes status.

Run: `kopf run -A --standalone -m cellcelly_operator.handlers` (or `python -m cellcelly_operator`).
CELLCELLY_OPERATOR_TICK (seconds, default 10) paces the timer that re-applies children, reads their
readiness, heals pods and checks the Oracle primary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf
import pydantic

from cellcelly_operator import failover, healing, oracle, reconcile, spec, status
from cellcelly_operator import settings as operator_settings
from cellcelly_operator.healing import parse_time
from cellcelly_operator.kube import ApiError, Kube
from cellcelly_operator.labels import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

TICK = float(os.environ.get("CELLCELLY_OPERATOR_TICK", "10"))
FINALIZER = "cellcelly.io/finalizer"
PROBE: failover.Probe = failover.tcp_probe  # swapped in tests that have no primary to unplug

_state: dict[str, Any] = {}


def plain(obj: Any) -> Any:
    """kopf hands out read-only views; the pure functions take plain dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # kopf's own events use generateName; ours are named (events.py), and the fake API server needs that
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    operator_settings.tune(settings, os.environ.get(operator_settings.SCOPE_ENV, "cluster"))
    await _require_crd(settings)


async def _require_crd(settings: kopf.OperatorSettings) -> None:
    """With scanning off kopf resolves the stacks' resource once, at start: begun without the CRD it would
    idle for good (and it exits when the CRD is deleted). So it does not start without it: the pod
    restarts until the CRD is installed, then serves."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        return  # kopf's own login fails next, with its own message
    client = Kube(info)
    try:
        served = await client.get(f"/apis/{GROUP}/{VERSION}")
    finally:
        await client.close()
    if served is None or not any(r.get("name") == PLURAL for r in served.get("resources") or []):
        raise kopf.PermanentError(f"the CRD {PLURAL}.{GROUP} ({VERSION}) is not installed: install it first")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    _state["info"] = info
    return info


async def kube() -> Kube:
    if "kube" not in _state:
        _state["kube"] = Kube(_state["info"])
    client: Kube = _state["kube"]
    return client


@kopf.on.cleanup()
async def close(**_: Any) -> None:
    client = _state.pop("kube", None)
    if client is not None:
        await client.close()


def _lock(stack: spec.Stack) -> asyncio.Lock:
    """One pass at a time per stack: kopf runs the timer beside the change handlers, and a tick still
    applying while the pause is acknowledged would change things after ReconciliationPaused=True."""
    locks: dict[tuple[str, str], asyncio.Lock] = _state.setdefault("locks", {})
    return locks.setdefault((stack.namespace, stack.name), asyncio.Lock())


def _path(stack: spec.Stack) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{stack.namespace}/{PLURAL}/{stack.name}"


def _stack(body: Any) -> tuple[spec.Stack, dict[str, Any]]:
    raw = plain(body)
    try:
        return spec.from_body(raw), dict(raw.get("status") or {})
    except pydantic.ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc.errors()[:3]}") from exc


def _pause(stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch) -> None:
    previous = list(current.get("conditions") or [])
    cond = status.paused_condition(True, stack.generation, time.time(), previous)
    patch.status["conditions"] = status.merge_conditions(previous, [cond])
    patch.status["phase"] = "Paused"


async def _write_status(
    k: Kube,
    applied: reconcile.Applied,
    stack: spec.Stack,
    current: dict[str, Any],
    patch: kopf.Patch,
    exhausted: tuple[str, ...] = (),
) -> None:
    comps = reconcile.observe(stack, applied.live)
    on_standby = stack.spec.oracle.mode == "external" and stack.oracle_active == "standby"
    now = time.time()
    previous = list(current.get("conditions") or [])
    conds, phase = status.conditions(
        comps,
        generation=stack.generation,
        now=now,
        previous=previous,
        exhausted=exhausted,
        on_standby=on_standby,
    )
    monitoring = status.monitoring_condition(
        stack.spec.monitoring.enabled, applied.not_applied, stack.generation, now, previous
    )
    if monitoring is not None:
        conds.append(monitoring)
        await _tell_once(k, stack, monitoring, previous, now)
    patch.status["conditions"] = conds
    patch.status["phase"] = phase
    patch.status["observedGeneration"] = stack.generation
    patch.status["version"] = stack.spec.version
    patch.status["components"] = {n: {"ready": r.ready, "desired": r.desired} for n, r in comps.items()}
    patch.status.setdefault("oracle", {})["active"] = stack.oracle_active


async def _tell_once(
    k: Kube, stack: spec.Stack, cond: dict[str, Any], previous: list[dict[str, Any]], now: float
) -> None:
    """A warning and an Event when a condition turns False, not on every tick it stays so. Status says
    what was told before this process started; memory covers a handler that runs on a body older than
    the last status written (an event already in flight when that status was patched)."""
    told: dict[tuple[str, str, str], str] = _state.setdefault("told", {})
    key = (stack.namespace, stack.name, str(cond["type"]))
    before = next((c for c in previous if c.get("type") == cond["type"]), None)
    if cond["status"] == "True":
        told.pop(key, None)
        return
    if told.get(key) == cond["reason"] or (before and before.get("reason") == cond["reason"]):
        return
    told[key] = cond["reason"]
    log.warning("stack %s/%s: %s: %s", stack.namespace, stack.name, cond["reason"], cond["message"])
    await reconcile.post_event(k, stack, cond["reason"], cond["message"], "Warning", "Reconcile", now)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def apply_stack(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    stack, current = _stack(body)
    async with _lock(stack):
        await _apply_stack(stack, current, patch)


async def _apply_stack(stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch) -> None:
    if stack.paused:
        _pause(stack, current, patch)
        return
    k = await kube()
    if oracle.failover_possible(stack):
        # a switch-back asked through spec is acted on now, not at the next tick; on the status as it is
        # now, which a tick may have changed (a failover) after kopf read this body
        fresh = await k.get(_path(stack))
        if fresh is not None:
            stack, current = _stack(fresh)
        stack = await _check_failover(k, stack, current, patch, time.time())
    applied = await reconcile.apply_all(k, stack)
    log.info(
        "stack %s/%s: %d created, %d patched, %d unchanged, pruned %s",
        stack.namespace,
        stack.name,
        len(applied.created),
        len(applied.patched),
        len(applied.unchanged),
        applied.deleted,
    )
    await _write_status(k, applied, stack, current, patch)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_stack(body: kopf.Body, **_: Any) -> None:
    # deletion is the user's explicit wish: it is carried out even when paused
    stack, _current = _stack(body)
    async with _lock(stack):
        result = await reconcile.cleanup(await kube(), stack)
    _state.get("locks", {}).pop((stack.namespace, stack.name), None)
    told = _state.get("told") or {}
    for key in [k for k in told if k[:2] == (stack.namespace, stack.name)]:
        del told[key]
    log.info("stack %s/%s deleted: %d children removed", stack.namespace, stack.name, len(result.deleted))


async def _check_failover(
    k: Kube, stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch, now: float
) -> spec.Stack:
    """The side in force from status (never spec: see failover.py); the primary probed on the primary
    side, and on the standby only when a new switch-back request asks for it. Only the primary's DSN
    (host and port, as the stack names it) is ever probed."""
    if not oracle.failover_possible(stack):
        return stack
    ostat = current.get("oracle") or {}
    side: failover.Side = stack.oracle_active
    requested = stack.spec.oracle.failover.switch_back_requested
    handled = ostat.get("switchBackHandled")
    up: bool | None = None
    if side == "primary" or failover.wants_switch_back(side, requested, handled):
        host, port = oracle.host_port(stack.spec.oracle.external.dsn)
        up = await PROBE(host, port, min(5.0, float(stack.spec.oracle.failover.primary_check_seconds)))
    decision = failover.decide(
        active=side,
        requested=requested,
        handled=handled,
        primary_up=up,
        down_since=parse_time(ostat.get("primaryDownSince")),
        now=now,
        fail_after=stack.spec.oracle_fail_after,
        iso=status.timestamp,
    )
    patch.status["oracle"] = failover.status_of(decision, status.timestamp(now))
    stack = dataclasses.replace(stack, oracle_active=decision.active)
    if decision.switched:
        note = f"Oracle primary unreachable for {stack.spec.oracle_fail_after}s: now on standby"
        await reconcile.post_event(k, stack, "OracleFailover", note, "Warning", "Failover", now)
    if decision.switched_back:
        note = f"back on the primary, as asked (switchBackRequested {requested})"
        await reconcile.post_event(k, stack, "OracleFailback", note, "Normal", "Failback", now)
    if decision.refused:
        note = (
            f"switchBackRequested {requested} refused: the primary does not answer; staying on the standby "
            "(set a new value once it is back)"
        )
        await reconcile.post_event(k, stack, "OracleFailbackRefused", note, "Warning", "Failback", now)
    return stack


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK, initial_delay=TICK, backoff=TICK)
async def tick(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Drift, readiness, self-healing, failover: what no watch event tells us about in time."""
    stack, _current = _stack(body)
    async with _lock(stack):
        # the stack as it is now: the body kopf gave may predate a pause or a deletion handled meanwhile
        k = await kube()
        fresh = await k.get(_path(stack))
        if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
            return
        await _tick(k, *_stack(fresh), patch)


async def _tick(k: Kube, stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch) -> None:
    if stack.paused:
        _pause(stack, current, patch)
        return
    now = time.time()
    stack = await _check_failover(k, stack, current, patch, now)
    try:
        applied = await reconcile.apply_all(k, stack)
    except ApiError as exc:
        log.warning("stack %s/%s: apply failed: %s", stack.namespace, stack.name, exc)
        return
    exhausted: tuple[str, ...] = ()
    if stack.spec.self_healing.enabled:
        # the baseline lives in status, not in memory: an operator restarted still sees restarts growing
        healed = await reconcile.heal(k, stack, current, healing.baseline_of(current), now)
        patch.status["restartBaseline"] = healing.baseline_status(healed.seen)
        patch.status["healing"] = healed.history
        patch.status["restarts"] = healed.restarts
        exhausted = healed.exhausted
    await _write_status(k, applied, stack, current, patch, exhausted)
