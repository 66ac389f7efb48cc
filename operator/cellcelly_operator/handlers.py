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


@dataclasses.dataclass
class Runtime:
    """What the handlers share between calls, kept in kopf's memo (put there at startup, before kopf
    watches anything: each object's memo is a shallow copy of that one, so all see this same object)."""

    probe: failover.Probe = failover.tcp_probe  # a test with no primary to unplug gives its own
    info: kopf.ConnectionInfo | None = None
    client: Kube | None = None
    locks: dict[tuple[str, str], asyncio.Lock] = dataclasses.field(default_factory=dict)
    # conditions told (an Event posted) per (namespace, stack, condition type): the reason told
    told: dict[tuple[str, str, str], str] = dataclasses.field(default_factory=dict)

    def kube(self) -> Kube:
        if self.client is None:
            if self.info is None:
                raise kopf.TemporaryError("not logged in yet", delay=1)
            self.client = Kube(self.info)
        return self.client

    def lock(self, stack: spec.Stack) -> asyncio.Lock:
        """One pass at a time per stack: kopf runs the timer beside the change handlers, and a tick still
        applying while the pause is acknowledged would change things after ReconciliationPaused=True."""
        return self.locks.setdefault((stack.namespace, stack.name), asyncio.Lock())

    def forget(self, stack: spec.Stack) -> None:
        self.locks.pop((stack.namespace, stack.name), None)
        for key in [k for k in self.told if k[:2] == (stack.namespace, stack.name)]:
            del self.told[key]


def runtime(memo: Any) -> Runtime:
    rt: Runtime = memo["runtime"]
    return rt


def plain(obj: Any) -> Any:
    """kopf hands out read-only views; the pure functions take plain dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    memo["runtime"] = Runtime()
    settings.persistence.finalizer = FINALIZER
    # kopf's own Events (core/v1, on the stack) from its log: a handler failing and its retry show in
    # `kubectl describe`. Off in kopf by default (posting.loggers); warnings and errors only: at INFO it
    # would post one for every handler that succeeds, each timer tick included
    settings.posting.loggers = True
    settings.posting.level = logging.WARNING
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
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    rt = runtime(memo)
    # kopf logs in again when the credentials stop working: our client must take the new ones too
    old, rt.info, rt.client = rt.client, info, None
    if old is not None:
        await old.close()
    return info


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    client, rt.client = rt.client, None
    if client is not None:
        await client.close()


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
    rt: Runtime,
    applied: reconcile.Applied,
    stack: spec.Stack,
    current: dict[str, Any],
    patch: kopf.Patch,
    exhausted: tuple[str, ...] = (),
) -> None:
    comps = reconcile.observe(stack, applied.live)
    record_oracle = stack.spec.record_component == oracle.COMPONENT  # PostgreSQL has no standby
    on_standby = record_oracle and stack.spec.oracle.mode == "external" and stack.oracle_active == "standby"
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
        await _tell_once(rt, stack, monitoring, previous, now)
    patch.status["conditions"] = conds
    patch.status["phase"] = phase
    patch.status["observedGeneration"] = stack.generation
    patch.status["version"] = stack.spec.version
    patch.status["components"] = {n: {"ready": r.ready, "desired": r.desired} for n, r in comps.items()}
    patch.status.setdefault("oracle", {})["active"] = stack.oracle_active


async def _tell_once(
    rt: Runtime, stack: spec.Stack, cond: dict[str, Any], previous: list[dict[str, Any]], now: float
) -> None:
    """A warning and an Event when a condition turns False, not on every tick it stays so. Status says
    what was told before this process started; memory covers a handler that runs on a body older than
    the last status written (an event already in flight when that status was patched)."""
    told = rt.told
    key = (stack.namespace, stack.name, str(cond["type"]))
    before = next((c for c in previous if c.get("type") == cond["type"]), None)
    if cond["status"] == "True":
        told.pop(key, None)
        return
    if told.get(key) == cond["reason"] or (before and before.get("reason") == cond["reason"]):
        return
    told[key] = cond["reason"]
    log.warning("stack %s/%s: %s: %s", stack.namespace, stack.name, cond["reason"], cond["message"])
    await reconcile.post_event(rt.kube(), stack, cond["reason"], cond["message"], "Warning", "Reconcile", now)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def apply_stack(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    stack, current = _stack(body)
    rt = runtime(memo)
    async with rt.lock(stack):
        await _apply_stack(rt, stack, current, patch)


async def _apply_stack(rt: Runtime, stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch) -> None:
    if stack.paused:
        _pause(stack, current, patch)
        return
    k = rt.kube()
    if oracle.failover_possible(stack):
        # a switch-back asked through spec is acted on now, not at the next tick; on the status as it is
        # now, which a tick may have changed (a failover) after kopf read this body
        fresh = await k.get(_path(stack))
        if fresh is not None:
            stack, current = _stack(fresh)
        stack = await _check_failover(rt, stack, current, patch, time.time())
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
    await _write_status(rt, applied, stack, current, patch)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_stack(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # deletion is the user's explicit wish: it is carried out even when paused. The children go with the
    # stack (owner references, the garbage collector); only the claims are ours to remove (cleanup)
    stack, _current = _stack(body)
    rt = runtime(memo)
    async with rt.lock(stack):
        result = await reconcile.cleanup(rt.kube(), stack)
    rt.forget(stack)
    log.info("stack %s/%s deleted: %d claims removed", stack.namespace, stack.name, len(result.deleted))


async def _check_failover(
    rt: Runtime, stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch, now: float
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
        up = await rt.probe(host, port, min(5.0, float(stack.spec.oracle.failover.primary_check_seconds)))
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
    k = rt.kube()
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
async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Drift, readiness, self-healing, failover: what no watch event tells us about in time."""
    stack, _current = _stack(body)
    rt = runtime(memo)
    async with rt.lock(stack):
        # the stack as it is now: the body kopf gave may predate a pause or a deletion handled meanwhile
        fresh = await rt.kube().get(_path(stack))
        if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
            return
        await _tick(rt, *_stack(fresh), patch)


async def _tick(rt: Runtime, stack: spec.Stack, current: dict[str, Any], patch: kopf.Patch) -> None:
    if stack.paused:
        _pause(stack, current, patch)
        return
    now = time.time()
    k = rt.kube()
    stack = await _check_failover(rt, stack, current, patch, now)
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
    await _write_status(rt, applied, stack, current, patch, exhausted)
