"""The pure decisions behind the handlers: status conditions, the self-healing budget, Oracle failover."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from cellcelly_operator import children, failover, healing, kafka, reconcile, status
from cellcelly_operator.kube import MERGE, ApiError, Kube
from cellcelly_operator.spec import SelfHealing
from hypothesis import given
from hypothesis import strategies as st

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

NOW = 1_800_000_000.0
UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"  # a stack as served has the server's uid


def by_type(conds: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["type"]: c for c in conds}


# ------------------------------------------------------------------------------------------- status


def test_ready_when_every_component_is() -> None:
    comps = {"kafka": status.Readiness(3, 3), "ocs": status.Readiness(2, 2), "sms": status.Readiness(0, 0)}
    conds, phase = status.conditions(comps, generation=4, now=NOW, previous=[])
    got = by_type(conds)
    assert phase == "Ready"
    assert got["Ready"]["status"] == "True" and got["Progressing"]["status"] == "False"
    assert got["KafkaReady"]["status"] == "True" and got["SmsReady"]["reason"] == "Disabled"
    assert got["ReconciliationPaused"]["status"] == "False"
    assert all(c["observedGeneration"] == 4 for c in conds)
    assert "VoltDBReady" not in got  # only the components present


def test_progressing_names_what_it_waits_for() -> None:
    comps = {"kafka": status.Readiness(1, 3), "ocs": status.Readiness(2, 2)}
    conds, phase = status.conditions(comps, generation=1, now=NOW, previous=[])
    got = by_type(conds)
    assert phase == "Progressing"
    assert got["Ready"]["status"] == "False" and "kafka" in str(got["Ready"]["message"])
    assert got["KafkaReady"]["message"] == "1/3 ready"


def test_degraded_when_budget_spent_or_on_standby() -> None:
    comps = {"ocs": status.Readiness(1, 2)}
    conds, phase = status.conditions(comps, generation=1, now=NOW, previous=[], exhausted=("ocs",))
    assert phase == "Degraded" and "ocs" in str(by_type(conds)["Degraded"]["message"])
    conds, phase = status.conditions(
        {"ocs": status.Readiness(2, 2)}, generation=1, now=NOW, previous=[], on_standby=True
    )
    assert phase == "Degraded" and by_type(conds)["Ready"]["status"] == "True"


def test_transition_time_moves_only_on_a_change_of_status() -> None:
    first, _ = status.conditions({"ocs": status.Readiness(0, 2)}, generation=1, now=NOW, previous=[])
    same, _ = status.conditions({"ocs": status.Readiness(1, 2)}, generation=1, now=NOW + 60, previous=first)
    assert by_type(same)["Ready"]["lastTransitionTime"] == by_type(first)["Ready"]["lastTransitionTime"]
    flipped, _ = status.conditions(
        {"ocs": status.Readiness(2, 2)}, generation=2, now=NOW + 120, previous=same
    )
    assert by_type(flipped)["Ready"]["lastTransitionTime"] == status.timestamp(NOW + 120)


def test_paused_phase_and_condition() -> None:
    conds, phase = status.conditions(
        {"ocs": status.Readiness(2, 2)}, generation=1, now=NOW, previous=[], paused=True
    )
    assert phase == "Paused" and by_type(conds)["ReconciliationPaused"]["status"] == "True"


def test_monitoring_condition_only_when_asked_for_and_false_while_unserved() -> None:
    assert status.monitoring_condition(False, ["ServiceMonitor/demo-ocs"], 1, NOW, []) is None
    ok = status.monitoring_condition(True, [], 1, NOW, [])
    assert ok is not None and ok["status"] == "True"
    missing = status.monitoring_condition(
        True, ["ServiceMonitor/demo-ocs", "ServiceMonitor/demo-sf"], 1, NOW, []
    )
    assert missing is not None and missing["status"] == "False"
    assert missing["reason"] == status.MONITORING_MISSING and "demo-sf" in missing["message"]


def test_readiness_of_a_workload_without_status() -> None:
    assert status.readiness({"spec": {"replicas": 3}}) == status.Readiness(0, 3)
    assert status.readiness({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}}).ok
    assert not status.readiness(None).ok


# ------------------------------------------------------------------------------------------ healing


def pod(
    name: str, *, waiting: str = "", restarts: int = 0, ready: str | None = None, since: float = NOW
) -> dict:
    cs = {"name": "c", "restartCount": restarts, "state": {"waiting": {"reason": waiting}} if waiting else {}}
    conds = (
        []
        if ready is None
        else [{"type": "Ready", "status": ready, "lastTransitionTime": status.timestamp(since)}]
    )
    return {"metadata": {"name": name}, "status": {"containerStatuses": [cs], "conditions": conds}}


def test_diagnoses() -> None:
    assert (
        healing.diagnose(pod("a", waiting="CrashLoopBackOff"), "ocs", NOW, 300, None).reason
        == "CrashLoopBackOff"
    )
    assert healing.diagnose(pod("a", restarts=4), "ocs", NOW, 300, 2).reason == "RestartsGrowing"
    assert healing.diagnose(pod("a", restarts=4), "ocs", NOW, 300, 4) is None
    assert healing.diagnose(pod("a", restarts=4), "ocs", NOW, 300, None) is None  # first look: no baseline
    assert (
        healing.diagnose(pod("a", ready="False", since=NOW - 301), "ocs", NOW, 300, None).reason == "NotReady"
    )
    assert healing.diagnose(pod("a", ready="False", since=NOW - 100), "ocs", NOW, 300, None) is None
    assert healing.diagnose(pod("a", ready="True", since=NOW - 1000), "ocs", NOW, 300, None) is None
    going = pod("a", waiting="CrashLoopBackOff")
    going["metadata"]["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    assert healing.diagnose(going, "ocs", NOW, 300, None) is None


def test_budget_per_component_per_window() -> None:
    cfg = SelfHealing(max_restarts=2, window_seconds=600)
    sick = [healing.Verdict(f"ocs-{i}", "ocs", "CrashLoopBackOff") for i in range(3)]
    sick.append(healing.Verdict("mw-0", "mw", "NotReady"))
    p = healing.plan(sick, {}, cfg, NOW)
    assert [v.pod for v in p.restart] == ["ocs-0", "ocs-1", "mw-0"]
    assert [v.pod for v in p.skipped] == ["ocs-2"] and p.exhausted == ("ocs",)
    assert p.restarts["ocs"]["count"] == 2 and p.restarts["mw"]["count"] == 1
    # still inside the window: nothing for ocs
    again = healing.plan([healing.Verdict("ocs-3", "ocs", "NotReady")], p.restarts, cfg, NOW + 599)
    assert not again.restart and again.exhausted == ("ocs",)
    # a new window: budget back
    later = healing.plan([healing.Verdict("ocs-3", "ocs", "NotReady")], p.restarts, cfg, NOW + 600)
    assert [v.pod for v in later.restart] == ["ocs-3"] and later.restarts["ocs"]["count"] == 1


def test_healing_off_restarts_nothing() -> None:
    p = healing.plan([healing.Verdict("a", "ocs", "NotReady")], {}, SelfHealing(enabled=False), NOW)
    assert not p.restart and not p.skipped


@given(st.lists(st.sampled_from(["ocs", "mw", "sf"]), max_size=40), st.integers(0, 5))
def test_budget_is_never_exceeded(components: list[str], budget: int) -> None:
    sick = [healing.Verdict(f"{c}-{i}", c, "NotReady") for i, c in enumerate(components)]
    p = healing.plan(sick, {}, SelfHealing(max_restarts=budget), NOW)
    for c in set(components):
        assert sum(v.component == c for v in p.restart) == min(budget, components.count(c))
    assert len(p.restart) + len(p.skipped) == len(sick)


def test_history_keeps_the_last_twenty() -> None:
    history: list[dict[str, object]] = []
    for i in range(25):
        history = healing.record(history, healing.Verdict(f"p{i}", "ocs", "NotReady"), "deleted", NOW + i)
    assert len(history) == 20 and history[-1]["pod"] == "p24" and history[0]["pod"] == "p5"


def test_restart_baseline_round_trips_through_status_and_survives_hand_edits() -> None:
    seen = {"demo-ocs-b": 3, "demo-ocs-a": 0}
    listed = healing.baseline_status(seen)
    assert listed == [{"pod": "demo-ocs-a", "restarts": 0}, {"pod": "demo-ocs-b", "restarts": 3}]
    assert healing.baseline_of({"restartBaseline": listed}) == seen
    edited = {"restartBaseline": [*listed, {"pod": "x", "restarts": "many"}, "junk", {"restarts": 1}]}
    assert healing.baseline_of(edited) == seen
    assert healing.baseline_of({}) == {}
    many = {f"p{i:04}": i for i in range(600)}
    assert len(healing.baseline_status(many)) == healing.BASELINE


# ----------------------------------------------------------------------------------------- failover


def decide(**kw: object) -> failover.Decision:
    args: dict[str, object] = dict(
        active="primary",
        requested=None,
        handled=None,
        primary_up=True,
        down_since=None,
        now=NOW,
        fail_after=30,
        iso=status.timestamp,
    )
    args.update(kw)
    return failover.decide(**args)  # type: ignore[arg-type]


def test_failover_waits_fail_after_seconds_then_switches() -> None:
    first = decide(primary_up=False)
    assert first.active == "primary" and first.primary_down_since == status.timestamp(NOW)
    assert decide(primary_up=False, down_since=NOW, now=NOW + 29).active == "primary"
    switched = decide(primary_up=False, down_since=NOW, now=NOW + 30)
    assert switched.active == "standby" and switched.switched


def test_status_records_when_the_services_last_switched() -> None:
    waiting = failover.status_of(decide(primary_up=False), "t0")
    assert waiting == {"active": "primary", "primaryDownSince": status.timestamp(NOW)}
    switched = failover.status_of(decide(primary_up=False, down_since=NOW, now=NOW + 30), "t1")
    assert switched == {"active": "standby", "primaryDownSince": None, "lastSwitchTime": "t1"}
    back = failover.status_of(decide(active="standby", requested="r1", primary_up=True), "t2")
    assert back == {
        "active": "primary",
        "primaryDownSince": None,
        "switchBackHandled": "r1",
        "lastSwitchTime": "t2",
    }


def test_fail_after_is_the_oracle_setting_else_the_stack_wide_delay() -> None:
    from cellcelly_operator import spec

    def fail_after(**spec_: object) -> int:
        body = {"metadata": {"name": "demo", "namespace": "telco", "uid": UID}, "spec": spec_}
        return spec.from_body(body).spec.oracle_fail_after

    assert fail_after() == 30
    assert fail_after(selfHealing={"failoverDelaySeconds": 5}) == 5
    both = {"oracle": {"failover": {"failAfterSeconds": 7}}, "selfHealing": {"failoverDelaySeconds": 5}}
    assert fail_after(**both) == 7


def test_a_primary_back_in_time_resets_the_clock() -> None:
    assert decide(primary_up=True, down_since=NOW).primary_down_since is None


def test_back_to_primary_only_on_a_new_request_and_only_if_the_primary_answers() -> None:
    # on the standby with no request, or the one already handled: stay, nothing probed
    assert not failover.wants_switch_back("standby", None, None)
    assert not failover.wants_switch_back("standby", "r1", "r1")
    assert not failover.wants_switch_back("primary", "r2", "r1")
    assert failover.wants_switch_back("standby", "r2", "r1")
    stay = decide(active="standby", requested="r1", handled="r1", primary_up=None)
    assert (stay.active, stay.handled, stay.switched_back) == ("standby", "r1", False)
    back = decide(active="standby", requested="r2", handled="r1", primary_up=True)
    assert (back.active, back.handled, back.switched_back) == ("primary", "r2", True)
    # asked while the primary is still down: refused and handled, never acted on later by itself
    refused = decide(active="standby", requested="r2", handled="r1", primary_up=False)
    assert (refused.active, refused.handled, refused.refused) == ("standby", "r2", True)
    later = decide(active="standby", requested="r2", handled=refused.handled, primary_up=None)
    assert later.active == "standby" and not later.switched_back


def test_a_request_already_there_does_not_undo_a_later_failover() -> None:
    """A value in Git before any failover is handled on the primary as nothing to do, so the failover
    that comes later is not undone by it at the next pass (a GitOps re-apply brings the same value)."""
    on_primary = decide(requested="2026-12-01T00:00:00Z")
    assert on_primary.handled == "2026-12-01T00:00:00Z"
    failed = decide(requested="2026-12-01T00:00:00Z", primary_up=False, down_since=NOW - 30)
    assert failed.switched and failed.handled == "2026-12-01T00:00:00Z"
    after = decide(
        active="standby", requested="2026-12-01T00:00:00Z", handled=failed.handled, primary_up=True
    )
    assert after.active == "standby"


@given(
    steps=st.lists(
        st.tuples(st.sampled_from([None, "a", "b", "c"]), st.sampled_from([None, True, False])),
        max_size=30,
    )
)
def test_the_standby_is_left_only_for_a_request_not_handled_before(
    steps: list[tuple[str | None, bool | None]],
) -> None:
    """Whatever the spec says over time and whether the primary answers: leaving the standby takes a
    request value different from the one handled, and the primary answering (what GitOps re-applies,
    the same value, never counts twice)."""
    active: failover.Side = "standby"
    handled: str | None = None
    for requested, up in steps:
        probed = (
            up if (active == "primary" or failover.wants_switch_back(active, requested, handled)) else None
        )
        d = decide(
            active=active, requested=requested, handled=handled, primary_up=probed, down_since=NOW - 60
        )
        if active == "standby" and d.active == "primary":
            assert requested is not None and requested != handled and probed is True and d.switched_back
        if active == "standby" and not (requested and requested != handled):
            assert d.active == "standby"
        active, handled = d.active, d.handled


def test_the_side_comes_from_status_and_spec_only_seeds_a_stack_without_one() -> None:
    """Migration: operators before this wrote spec.oracle.failover.active; status wins whenever it has
    the side, so a GitOps tool putting `active: primary` back in spec switches nothing."""
    from cellcelly_operator import spec

    def side(failover_: dict[str, object], status_: dict[str, object] | None) -> str:
        body = {
            "metadata": {"name": "demo", "namespace": "telco", "uid": UID},
            "spec": {"oracle": {"failover": failover_}},
            "status": status_ or {},
        }
        return spec.from_body(body).oracle_active

    assert side({"active": "primary"}, {"oracle": {"active": "standby"}}) == "standby"
    assert side({"active": "standby"}, {"oracle": {"active": "primary"}}) == "primary"
    assert side({"active": "standby"}, None) == "standby"  # seeded once; the first status write keeps it
    assert side({}, None) == "primary"


def test_dsn_host_port() -> None:
    from cellcelly_operator import oracle

    assert oracle.host_port("oracle+oracledb://u@db.example:1522/?service_name=X") == ("db.example", 1522)
    assert oracle.host_port("oracle+oracledb://db.example/?service_name=X") == ("db.example", 1521)
    with pytest.raises(ValueError):
        oracle.host_port("not a dsn")


# ----------------------------------------------------------------------------------------- applying


def test_contains_ignores_server_defaults_but_sees_changes() -> None:
    desired = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    live = {
        "metadata": {"uid": "u"},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "template": {
                "spec": {"containers": [{"name": "a", "image": "x", "terminationMessagePath": "/t"}]}
            },
        },
    }
    assert reconcile.contains(live, desired)
    live["spec"]["replicas"] = 3
    assert not reconcile.contains(live, desired)
    live["spec"]["replicas"] = 2
    live["spec"]["template"]["spec"]["containers"].append({"name": "b"})
    assert not reconcile.contains(live, desired)


# ---------------------------------------------------------------------- logins a newer version adds


def _kafka_stack() -> Any:
    from cellcelly_operator import spec

    return spec.from_body({"metadata": {"name": "demo", "namespace": "telco", "uid": UID}, "spec": {}})


def _as_left_by_an_older_version(made: dict[str, Any], without: str) -> dict[str, Any]:
    """The Secret as the server serves it: base64 `data` (its own passwords), no `stringData`."""
    data = {k: base64.b64encode(f"old-{k}".encode()).decode() for k in made["stringData"] if k != without}
    meta = {**made["metadata"], "resourceVersion": "41"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def test_a_generated_secret_gets_only_the_entries_it_lacks() -> None:
    made = kafka.generated_users_secret(_kafka_stack(), lambda: "new")
    live = _as_left_by_an_older_version(made, without="dgw")
    assert children.secret_additions(made, live) == {"dgw": "new"}  # none of the others: never rotated
    live["data"]["dgw"] = base64.b64encode(b"old-dgw").decode()
    assert children.secret_additions(made, live) == {}
    assert children.secret_additions(made, {"metadata": {}}) == made["stringData"]  # an empty Secret


class _Calls(Kube):
    """The operator's client with its transport replaced: records each request, answers `status`."""

    def __init__(self, status: int = 200) -> None:  # no session: nothing leaves the process
        self.status = status
        self.sent: list[tuple[str, str, Any, str]] = []

    async def _call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **kw: Any
    ) -> dict[str, Any] | None:
        self.sent.append((method, path, body, content_type))
        if self.status >= 400:
            raise ApiError(self.status, "conflict")
        return {}


@pytest.mark.parametrize("status", [200, 409])
def test_an_existing_login_secret_is_patched_with_the_missing_user_only(status: int) -> None:
    made = kafka.generated_users_secret(_kafka_stack(), lambda: "new")
    live = _as_left_by_an_older_version(made, without="dgw")
    kube, result = _Calls(status), reconcile.Applied()
    asyncio.run(reconcile.apply(kube, made, live, result, create_only=True))
    ((method, path, body, content_type),) = kube.sent
    assert (method, content_type) == ("PATCH", MERGE) and path.endswith("/secrets/demo-kafka-users")
    # only the new entry, and only over the version read (a concurrent pass's write is a 409, not lost)
    assert body == {"metadata": {"resourceVersion": "41"}, "stringData": {"dgw": "new"}}
    assert (result.patched, result.unchanged) == (
        (["Secret/demo-kafka-users"], []) if status == 200 else ([], ["Secret/demo-kafka-users"])
    )
    # complete: nothing sent
    complete = _as_left_by_an_older_version(made, without="none")
    kube = _Calls()
    asyncio.run(reconcile.apply(kube, made, complete, reconcile.Applied(), create_only=True))
    assert kube.sent == []


def test_the_start_script_adds_each_client_user_the_cluster_lacks_before_the_acls() -> None:
    """A log formatted by an older version has no credential for a user added since
    (`--ignore-formatted` adds none): the job beside the broker adds it, and only where the describe of
    every user shows none, so no existing password is set again."""
    script = kafka.start_script(_kafka_stack())
    job = script[script.index("(until ") : script.index("; do sleep")]
    describe = job.index("--describe --entity-type users)")
    for user in kafka.CLIENT_USERS:
        found = f"grep -q \"user-principal '{user}' .*SCRAM-SHA-512=\" || "
        password = f"${kafka.password_var(user)}"
        add = f'--entity-name {user} --add-config "SCRAM-SHA-512=[password={password}]"'
        assert f"{found}{kafka.BIN_DIR}/kafka-configs.sh" in job and add in job, user
        assert describe < job.index(found) < job.index(add) < job.index("kafka-acls.sh"), user
    assert job.count("--alter") == len(kafka.CLIENT_USERS) and "--entity-name broker" not in job
