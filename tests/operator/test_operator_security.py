"""The builders' least privilege: NetworkPolicies that admit exactly the pods that dial each component
(checked against the pods' own labels, as a CNI would select them), the managed Kafka's listeners all
SASL, the managed back ends' logins only by secretKeyRef and only to the services that use them.
What these policies and logins do on real servers: tests/integration/test_operator_backend_logins.py
and tests/cluster/test_cluster_security.py."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from cellcelly_operator import children, kafka, networkpolicy, postgresql, services, spec, voltdb
from operator_kit import SPECS, stack_body

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def stack_of(extra: dict[str, Any] | None = None, base: str = "minimal") -> spec.Stack:
    return spec.from_body(stack_body("demo", {**SPECS[base], **(extra or {})}))


def pods(stack: spec.Stack) -> dict[str, dict[str, str]]:
    """component -> the labels of its pods (what a NetworkPolicy's podSelector is matched against)."""
    out = {}
    for m in children.build(stack):
        if m["kind"] in ("Deployment", "StatefulSet"):
            out[m["metadata"]["labels"]["app.kubernetes.io/name"]] = m["spec"]["template"]["metadata"][
                "labels"
            ]
    return out


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the builders use no matchExpressions
    return selector.get("matchLabels", {}).items() <= labels.items()


def admitted(stack: spec.Stack, component: str, port: int, protocol: str = "TCP") -> set[str]:
    """The components whose pods may open `port` on `component`'s pods, as NetworkPolicy semantics
    say: allowed when any policy selecting the pod has a rule admitting the peer on that port; "*" for
    any source (a rule without `from`, or one admitting every namespace)."""
    labels = pods(stack)
    policies = [m for m in children.build(stack) if m["kind"] == "NetworkPolicy"]
    target = labels[component]
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], target)]
    assert selecting, f"no policy selects {component}: it would take anything"
    out: set[str] = set()
    for p in selecting:
        for rule in p["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(r["port"] == port and r["protocol"] == protocol for r in ports):
                continue
            if "from" not in rule:
                out.add("*")
                continue
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    out.add("*")
                else:
                    out |= {c for c, lab in labels.items() if selects(peer["podSelector"], lab)}
    return out


def test_every_pod_of_the_stack_is_under_the_default_deny() -> None:
    stack = stack_of(base="full")
    deny = next(m for m in networkpolicy.build(stack) if m["metadata"]["name"] == "demo-default-deny")
    assert deny["spec"] == {"podSelector": deny["spec"]["podSelector"], "policyTypes": ["Ingress"]}
    for component, labels in pods(stack).items():
        assert selects(deny["spec"]["podSelector"], labels), component


def test_back_ends_take_only_the_services_that_dial_them_and_their_peers() -> None:
    stack = stack_of(
        {"kafka": {"ui": {"enabled": True}}, "services": {"sms": {"replicas": 1, "smsc": {"host": "s"}}}}
    )
    assert admitted(stack, "kafka", kafka.CLIENT_PORT) == {"kafka", "ocs", "dgw", "sf", "notifier", "kafdrop"}
    assert admitted(stack, "kafka", kafka.CONTROLLER_PORT) == {"kafka"}  # the quorum: peers only
    voltdb_users = {"voltdb", "ocs", "dgw", "mw", "notifier", "sms", "ivr"}  # the DGW: its cache's misses
    assert admitted(stack, "voltdb", voltdb.CLIENT_PORT) == voltdb_users
    assert admitted(stack, "voltdb", voltdb.INTERNAL_PORT) == {"voltdb"}
    # every service that looks a subscriber up shares the cache; the SF and notifier look none up
    assert admitted(stack, "hazelcast", 5701) == {"hazelcast", "ocs", "dgw", "mw", "sms", "ivr"}
    assert admitted(stack, "oracle", 1521) == {"ocs", "mw", "sf", "notifier", "sms", "ivr"}
    # the services' own ports: the edge from anywhere, the OCS wire from the DGWs only
    assert admitted(stack, "dgw", 3868) == {"*"}
    assert admitted(stack, "mw", 8080) == {"*"}
    assert admitted(stack, "ivr", 5060, "UDP") == {"*"}
    assert admitted(stack, "ocs", 8082) == {"dgw"}
    assert admitted(stack, "ocs", 8081) == set()  # metrics only with monitoring
    assert admitted(stack, "sf", 9102) == set()
    for quiet in ("notifier", "sms", "kafdrop"):
        assert admitted(stack, quiet, 9000) == set()


def test_a_managed_postgresql_record_takes_only_the_services_that_dial_the_record() -> None:
    stack = stack_of({"services": {"sms": {"replicas": 1, "smsc": {"host": "s"}}}}, base="postgresql")
    assert admitted(stack, "postgresql", postgresql.PORT) == {"ocs", "mw", "sf", "notifier", "sms", "ivr"}
    assert admitted(stack, "postgresql", 9000) == set()
    assert "oracle" not in pods(stack)
    names = {m["metadata"]["name"] for m in networkpolicy.build(stack_of(base="postgresql-external"))}
    assert "demo-postgresql-ingress" not in names and "demo-default-deny" in names


def test_monitoring_opens_the_scraped_ports_from_any_namespace() -> None:
    stack = stack_of({"monitoring": {"enabled": True}})
    assert admitted(stack, "ocs", 8081) == {"*"}
    assert admitted(stack, "sf", 9102) == {"*"}
    assert admitted(stack, "ocs", 8082) == {"dgw"}


def test_a_service_scaled_to_zero_is_not_admitted_and_external_back_ends_have_no_policy() -> None:
    stack = stack_of(base="external")
    names = {m["metadata"]["name"] for m in networkpolicy.build(stack)}
    assert not names & {"demo-kafka-ingress", "demo-voltdb-ingress", "demo-hazelcast-ingress"}
    assert "demo-oracle-ingress" not in names and "demo-default-deny" in names
    assert "sms" not in networkpolicy.users(stack_of(), "voltdb")  # sms has 0 replicas by default


def test_policies_off_builds_none() -> None:
    stack = stack_of({"networkPolicies": {"enabled": False}})
    assert not [m for m in children.build(stack) if m["kind"] == "NetworkPolicy"]
    assert stack_of().spec.network_policies.enabled is True  # on by default


def test_every_managed_kafka_listener_asks_for_a_login() -> None:
    props = dict(line.split("=", 1) for line in kafka.server_properties(stack_of()).splitlines())
    listeners = [entry.split("://")[0] for entry in props["listeners"].split(",")]
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert set(listeners) == set(protocols)
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "${env:" in props["listener.name.controller.plain.sasl.jaas.config"]  # no password in it
    config = services.config_data(stack_of())
    assert config["CELLCELLY_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config["CELLCELLY_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"


def test_the_start_script_creates_every_scram_user_at_format_time() -> None:
    script = kafka.start_script(stack_of())
    for user in kafka.SCRAM_USERS:
        assert f'--add-scram "SCRAM-SHA-512=[name={user},password=${kafka.password_var(user)}]"' in script
    assert "--ignore-formatted" in script
    # the broker is the container's main process (signals reach it); the ACL job runs beside it
    assert script.endswith(
        f"& exec {kafka.BIN_DIR}/kafka-server-start.sh {kafka.CONFIG_DIR}/server.properties"
    )


def test_logins_only_by_reference_and_only_to_the_services_that_use_them() -> None:
    stack = stack_of({"kafka": {"ui": {"enabled": True}}})
    users = kafka.generated_users_secret(stack, lambda: secrets.token_urlsafe(24))
    volt = voltdb.generated_secret(stack, secrets.token_urlsafe(24))
    built = children.build(stack)
    text = json.dumps(built)
    for password in [*users["stringData"].values(), volt["stringData"]["password"]]:
        assert password not in text  # generated per run: the manifests could not hold them
    made = {users["metadata"]["name"]: users, volt["metadata"]["name"]: volt}
    for m in built:
        if m["kind"] not in ("Deployment", "StatefulSet"):
            continue
        component = m["metadata"]["labels"]["app.kubernetes.io/name"]
        env = {e["name"]: e for c in m["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        for item in env.values():
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] in made:  # a generated Secret: the key exists in it
                assert ref["key"] in made[ref["name"]]["stringData"], (component, item)
        if component in spec.SERVICES:
            kafka_login = env.get("CELLCELLY_KAFKA_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
            if services.uses(component, "kafka"):
                assert kafka_login == {"name": "demo-kafka-users", "key": component}
                assert env["CELLCELLY_KAFKA_USERNAME"]["value"] == component
            else:
                assert kafka_login is None
            assert ("CELLCELLY_VOLTDB_PASSWORD" in env) is services.uses(component, "voltdb")
            assert ("CELLCELLY_DATABASE_PASSWORD" in env) is services.uses(component, "oracle")
    dgw = next(m for m in built if m["metadata"]["name"] == "demo-dgw" and m["kind"] == "Deployment")
    names = {e["name"] for e in dgw["spec"]["template"]["spec"]["containers"][0]["env"]}
    # the DGW dials the OCS, tails the ledger (its own Kafka login) and loads its cache's misses from
    # VoltDB (read only: it charges through the OCS); no record
    assert names == {
        "CELLCELLY_OCS_API_KEY",
        "CELLCELLY_KAFKA_USERNAME",
        "CELLCELLY_KAFKA_PASSWORD",
        "CELLCELLY_VOLTDB_USERNAME",
        "CELLCELLY_VOLTDB_PASSWORD",
    }


def test_the_voltdb_deployment_turns_security_on_with_a_placeholder_only() -> None:
    stack = stack_of()
    cm = next(m for m in children.build(stack) if m["metadata"]["name"] == "demo-voltdb-deployment")
    xml = cm["data"]["deployment.xml"]
    assert '<security enabled="true" provider="hash"/>' in xml
    assert f'<user name="cellcelly" password="{voltdb.PASSWORD_PLACEHOLDER}" roles="administrator"/>' in xml
    sts = next(
        m for m in children.build(stack) if m["kind"] == "StatefulSet" and "voltdb" in m["metadata"]["name"]
    )
    script = sts["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    # the password goes in before init and the file with it is removed after
    assert (
        script.index("sed ") < script.index("voltdb init") < script.index("rm -f /var/voltdb/deployment.xml")
    )


def test_the_acls_name_the_services_own_topics_and_groups() -> None:
    """The operator does not import the services: its copies of their topic and group names must agree,
    and every topic the services use is granted to someone (else that service would be refused)."""
    from cellcelly.notifier.service import GROUP as NOTIFIER_GROUP
    from cellcelly.ports import event_bus
    from cellcelly.sf.sync import GROUP as SF_GROUP

    assert (kafka.USAGE, kafka.LEDGER, kafka.SUBSCRIBER, kafka.NOTIFICATIONS, kafka.DEAD_LETTER) == (
        event_bus.TOPICS
    )
    assert (kafka.SF_GROUP, kafka.NOTIFIER_GROUP) == (SF_GROUP, NOTIFIER_GROUP)
    granted = {
        part for _user, resources, _ops in kafka.ACLS for part in resources if part.startswith("cellcelly")
    }
    assert set(event_bus.TOPICS) | {SF_GROUP, NOTIFIER_GROUP} <= granted
    users = {user for user, _resources, _ops in kafka.ACLS}
    assert users == set(kafka.CLIENT_USERS)  # every client has its grants; the broker is a super user
    props = dict(line.split("=", 1) for line in kafka.server_properties(stack_of()).splitlines())
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:broker;User:controller"
    script = kafka.start_script(stack_of())
    assert script.count("kafka-acls.sh") == len(kafka.ACLS) and kafka.ACLS_DONE in script
