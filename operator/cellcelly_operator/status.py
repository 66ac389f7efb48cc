"""Status of a stack from its children: one condition per component, Ready/Progressing/Degraded/Paused.

Conditions follow metav1.Condition; lastTransitionTime changes only when a condition's status does, so
`kubectl wait --for=condition=Ready` and alerting on transitions behave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPONENT_CONDITIONS = {
    "kafka": "KafkaReady",
    "voltdb": "VoltDBReady",
    "hazelcast": "HazelcastReady",
    "oracle": "OracleReady",
    "postgresql": "PostgreSQLReady",
    "ocs": "OcsReady",
    "dgw": "DgwReady",
    "mw": "MwReady",
    "sf": "SfReady",
    "notifier": "NotifierReady",
    "sms": "SmsReady",
    "ivr": "IvrReady",
}


@dataclass(frozen=True)
class Readiness:
    ready: int
    desired: int

    @property
    def ok(self) -> bool:
        return self.ready >= self.desired


def readiness(workload: dict[str, Any] | None) -> Readiness:
    """readyReplicas against spec.replicas of a Deployment or StatefulSet (absent: nothing ready)."""
    if workload is None:
        return Readiness(0, 1)
    desired = int((workload.get("spec") or {}).get("replicas", 1))
    ready = int((workload.get("status") or {}).get("readyReplicas") or 0)
    return Readiness(ready, desired)


def timestamp(now: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(int(now), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    now: float,
    previous: list[dict[str, Any]],
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    since = before["lastTransitionTime"] if before and before.get("status") == status else timestamp(now)
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def external_components(modes: dict[str, str]) -> dict[str, Readiness]:
    """A back end run elsewhere counts as ready here: the operator does not own its health."""
    return {name: Readiness(1, 1) for name, mode in modes.items() if mode == "external"}


def conditions(
    components: dict[str, Readiness],
    *,
    generation: int,
    now: float,
    previous: list[dict[str, Any]],
    paused: bool = False,
    exhausted: tuple[str, ...] = (),
    on_standby: bool = False,
) -> tuple[list[dict[str, Any]], str]:
    """(conditions, phase). Degraded: healing budget spent somewhere or the database on its standby."""
    out: list[dict[str, Any]] = []
    for name, kind in COMPONENT_CONDITIONS.items():
        if name not in components:
            continue
        r = components[name]
        reason = "Disabled" if r.desired == 0 else ("Ready" if r.ok else "NotReady")
        msg = f"{r.ready}/{r.desired} ready"
        out.append(condition(kind, r.ok, reason, msg, generation, now, previous))
    waiting = sorted(n for n, r in components.items() if not r.ok)
    ready = not waiting
    degraded_why = [f"self-healing budget spent: {', '.join(exhausted)}"] if exhausted else []
    if on_standby:
        degraded_why.append("database on the standby")
    degraded = bool(degraded_why)
    out.append(
        condition(
            "Ready",
            ready,
            "AllComponentsReady" if ready else "ComponentsNotReady",
            "all components ready" if ready else f"waiting for {', '.join(waiting)}",
            generation,
            now,
            previous,
        )
    )
    out.append(
        condition(
            "Progressing",
            not ready and not paused,
            "Reconciling" if not ready else "Reconciled",
            "rolling out" if not ready else "nothing to do",
            generation,
            now,
            previous,
        )
    )
    out.append(
        condition(
            "Degraded",
            degraded,
            "Degraded" if degraded else "Healthy",
            "; ".join(degraded_why) or "healthy",
            generation,
            now,
            previous,
        )
    )
    out.append(paused_condition(paused, generation, now, previous))
    if paused:
        phase = "Paused"
    elif degraded:
        phase = "Degraded"
    elif ready:
        phase = "Ready"
    else:
        phase = "Progressing"
    return out, phase


def paused_condition(
    paused: bool, generation: int, now: float, previous: list[dict[str, Any]]
) -> dict[str, Any]:
    return condition(
        "ReconciliationPaused",
        paused,
        "PausedByAnnotation" if paused else "Reconciling",
        "cellcelly.io/paused is true: nothing is changed" if paused else "reconciling",
        generation,
        now,
        previous,
    )


def merge_conditions(previous: list[dict[str, Any]], updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace conditions by type, keep the others (a merge patch replaces the whole list)."""
    kinds = {c["type"] for c in updates}
    return [c for c in previous if c.get("type") not in kinds] + updates


MONITORING_MISSING = "PrometheusOperatorMissing"


def monitoring_condition(
    enabled: bool, not_applied: list[str], generation: int, now: float, previous: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Monitoring, when asked for: False while the ServiceMonitor CRD is not served. Ready does not wait
    on it: charging works unscraped, and the Grafana dashboard ConfigMap is made regardless."""
    if not enabled:
        return None
    monitors = [ref for ref in not_applied if ref.startswith("ServiceMonitor/")]
    if monitors:
        message = (
            "the API server does not serve monitoring.coreos.com/v1 ServiceMonitor (is the Prometheus "
            f"Operator installed?); not created: {', '.join(monitors)}"
        )
        return condition("Monitoring", False, MONITORING_MISSING, message, generation, now, previous)
    return condition("Monitoring", True, "ServiceMonitorsApplied", "scraped", generation, now, previous)
