"""Self-healing decisions: which pods to restart (delete), within a per-component budget per window."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from cellcelly_operator.spec import SelfHealing

HISTORY = 20  # status.healing keeps the last this many actions
BASELINE = 512  # status.restartBaseline's maxItems in the CRD


@dataclass(frozen=True)
class Verdict:
    pod: str
    component: str
    reason: str  # CrashLoopBackOff | RestartsGrowing | NotReady


@dataclass
class Plan:
    restart: list[Verdict] = field(default_factory=list)
    skipped: list[Verdict] = field(default_factory=list)  # sick, but the budget is spent
    restarts: dict[str, dict[str, Any]] = field(default_factory=dict)  # the new status.restarts
    exhausted: tuple[str, ...] = ()


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def restart_total(pod: dict[str, Any]) -> int:
    return sum(
        int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


def baseline_of(status: dict[str, Any]) -> dict[str, int]:
    """Pod -> restart total, from status.restartBaseline (a list: a merge patch replaces it whole, so
    pods gone drop out; a map's keys would linger)."""
    out: dict[str, int] = {}
    for entry in status.get("restartBaseline") or []:
        if isinstance(entry, dict) and isinstance(entry.get("pod"), str):
            try:
                out[entry["pod"]] = int(entry.get("restarts") or 0)
            except (TypeError, ValueError):
                continue  # hand-edited status: that pod just has no baseline
    return out


def baseline_status(seen: dict[str, int]) -> list[dict[str, Any]]:
    return [{"pod": pod, "restarts": n} for pod, n in sorted(seen.items())][:BASELINE]


def diagnose(
    pod: dict[str, Any], component: str, now: float, not_ready_seconds: int, seen_restarts: int | None
) -> Verdict | None:
    """Why this pod should be restarted, or None. `seen_restarts`: its restart total at the last look."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None  # already going
    name = str(meta.get("name", ""))
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            return Verdict(name, component, "CrashLoopBackOff")
    if seen_restarts is not None and restart_total(pod) > seen_restarts:
        return Verdict(name, component, "RestartsGrowing")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") != "True":
        since = parse_time(ready.get("lastTransitionTime"))
        if since is not None and now - since >= not_ready_seconds:
            return Verdict(name, component, "NotReady")
    return None


def plan(sick: list[Verdict], restarts: dict[str, dict[str, Any]], settings: SelfHealing, now: float) -> Plan:
    """Spend each component's budget (maxRestarts per windowSeconds) on its sick pods, oldest window first."""
    out = Plan(restarts={k: dict(v) for k, v in restarts.items()})
    if not settings.enabled:
        return out
    exhausted: set[str] = set()
    for verdict in sick:
        budget = out.restarts.get(verdict.component) or {}
        start = parse_time(budget.get("windowStart"))
        if start is None or now - start >= settings.window_seconds:
            budget = {"windowStart": _iso(now), "count": 0}
        if int(budget["count"]) < settings.max_restarts:
            budget = {"windowStart": budget["windowStart"], "count": int(budget["count"]) + 1}
            out.restart.append(verdict)
        else:
            out.skipped.append(verdict)
            exhausted.add(verdict.component)
        out.restarts[verdict.component] = budget
    out.exhausted = tuple(sorted(exhausted))
    return out


def record(history: list[dict[str, Any]], verdict: Verdict, action: str, now: float) -> list[dict[str, Any]]:
    entry = {"time": _iso(now), "component": verdict.component, "pod": verdict.pod, "reason": verdict.reason}
    entry["action"] = action
    return [*history, entry][-HISTORY:]


def _iso(now: float) -> str:
    return datetime.datetime.fromtimestamp(int(now), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
