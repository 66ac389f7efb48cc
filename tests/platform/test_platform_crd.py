"""The CellCellyStack CRD: a valid apiextensions/v1 object, samples accepted, bad stacks rejected.

Schema checks use `jsonschema` on the CRD's own openAPIV3Schema after API-server-style defaulting; the CEL
rules (`x-kubernetes-validations`) are evaluated with `celpy` (cel-python), which implements CEL's core
language and macros (`has`, `size`) the rules use.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from platform_crd import (
    CRD_PATH,
    cel_errors,
    crd,
    default_rule_errors,
    defaulted,
    rules,
    samples,
    schema,
    schema_errors,
)

pytestmark = [pytest.mark.platform, pytest.mark.timeout(300)]

K8S_VERSION = "1.31"
COMPONENTS = ["kafka", "voltdb", "hazelcast", "oracle", "postgresql"]
SERVICES = ["ocs", "dgw", "mw", "sf", "notifier", "sms", "ivr"]


def accepted(resource: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """Default, validate and CEL-check like the API server; the defaulted object when accepted."""
    obj = defaulted(resource)
    assert schema_errors(obj) == []
    old_obj = defaulted(old) if old is not None else None
    assert cel_errors(obj, old_obj) == []
    return obj


def rejections(resource: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    obj = defaulted(resource)
    return schema_errors(obj) + cel_errors(obj, defaulted(old) if old is not None else None)


def minimal() -> dict[str, Any]:
    return copy.deepcopy(samples()["minimal"])


@pytest.mark.parametrize("version", ["1.25", K8S_VERSION, "1.35"])
def test_crd_is_a_valid_apiextensions_v1_object(version: str) -> None:
    assert kubernetes_validate.validate(crd(), version, strict=True) == version


def test_crd_names_scope_and_version() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "cellcellystacks.cellcelly.io"
    assert spec["group"] == "cellcelly.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "CellCellyStack" and spec["names"]["plural"] == "cellcellystacks"
    assert spec["names"]["shortNames"] == ["ccs"] and "cellcelly" in spec["names"]["categories"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Phase": ".status.phase",
        "Record": ".spec.record",
        "Version": ".status.version",
        "Age": ".metadata.creationTimestamp",
    }


def _structural_problems(node: dict[str, Any], path: str) -> list[str]:
    """A structural schema: every node typed (or int-or-string / preserve-unknown-fields), every default
    valid against its own node."""
    problems = []
    if "type" not in node and not node.get("x-kubernetes-int-or-string") and path != "":
        problems.append(f"{path}: no type")
    if "default" in node:
        errors = list(jsonschema.Draft202012Validator(node).iter_errors(node["default"]))
        problems += [f"{path}: default invalid: {e.message}" for e in errors]
    for name, sub in node.get("properties", {}).items():
        problems += _structural_problems(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems += _structural_problems(node[key], f"{path}[{key}]")
    return problems


def test_schema_is_structural_and_defaults_are_valid() -> None:
    assert _structural_problems(schema(), "") == []


def test_every_spec_section_of_the_agreed_shape_is_there() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    expected = {"version", "images", "services", "secrets", "selfHealing", "monitoring", "storage"}
    expected |= {"networkPolicies", "podDisruptionBudgets", "record", "placement"}
    expected |= set(COMPONENTS)
    assert set(spec) == expected
    for component in COMPONENTS:
        assert spec[component]["properties"]["mode"]["enum"] == ["managed", "external"]
        assert "external" in spec[component]["properties"]
    assert set(spec["services"]["properties"]) == set(SERVICES)
    status = schema()["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "phase",
        "version",
        "conditions",
        "components",
        "healing",
        "restarts",
        "restartBaseline",
        "oracle",
    }
    condition = status["conditions"]["items"]
    assert set(condition["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize(
    "name",
    ["minimal", "full-managed", "external-failover", "paused", "postgresql-managed", "postgresql-external"],
)
def test_samples_are_accepted(name: str) -> None:
    accepted(samples()[name])


def test_the_samples_named_in_the_brief_exist() -> None:
    assert {"minimal", "full-managed", "external-failover", "paused"} <= set(samples())
    assert samples()["paused"]["metadata"]["annotations"]["cellcelly.io/paused"] == "true"


def test_defaults_fill_a_minimal_stack() -> None:
    spec = accepted(minimal())["spec"]
    assert spec["images"]["registry"] == "ghcr.io/cellcelly"
    assert spec["images"]["pullPolicy"] == "IfNotPresent"
    assert spec["images"]["kafka"] == "apache/kafka:4.0.0"
    assert (spec["kafka"]["mode"], spec["kafka"]["replicas"]) == ("managed", 3)
    assert spec["kafka"]["storage"] == {"size": "10Gi", "storageClassName": ""}
    assert spec["kafka"]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert spec["kafka"]["ui"] == {"enabled": False}
    voltdb = spec["voltdb"]
    assert (voltdb["replicas"], voltdb["kfactor"], voltdb["sitesPerHost"]) == (3, 1, 4)
    # no `active`: the side in force lives in status.oracle, which nothing re-applying the spec can revert
    assert spec["oracle"]["failover"] == {"enabled": False, "primaryCheckSeconds": 10}
    # the record is Oracle unless chosen: a stack written before PostgreSQL existed keeps its meaning
    assert spec["record"] == "Oracle"
    assert spec["postgresql"]["mode"] == "managed" and spec["postgresql"]["database"] == "cellcelly"
    assert spec["images"]["postgresql"] == "postgres:16-bookworm"
    replicas = {name: spec["services"][name]["replicas"] for name in SERVICES}
    assert replicas == {"ocs": 2, "dgw": 2, "mw": 2, "sf": 2, "notifier": 1, "sms": 0, "ivr": 1}
    assert spec["services"]["dgw"]["service"] == {"type": "ClusterIP", "port": 3868}
    assert spec["services"]["mw"]["ingress"]["enabled"] is False
    assert spec["secrets"]["tokenSecretRef"] == {"name": "cellcelly-mw", "key": "token-secret"}
    assert spec["selfHealing"] == {
        "enabled": True,
        "maxRestarts": 3,
        "windowSeconds": 600,
        "notReadySeconds": 300,
        "failoverDelaySeconds": 30,
    }
    assert spec["monitoring"] == {"enabled": False, "grafanaDashboard": True}
    assert spec["networkPolicies"] == {"enabled": True}  # least privilege unless the CNI cannot enforce it
    assert spec["podDisruptionBudgets"] == {"enabled": True}  # off only where a drain stops everything
    assert spec["storage"] == {"deletionPolicy": "Retain"}


def _set(resource: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = resource
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return resource


BAD_SCHEMA = {
    "no version": ("spec.version", None),
    "bad kafka mode": ("spec.kafka.mode", "embedded"),
    "bad pull policy": ("spec.images.pullPolicy", "Sometimes"),
    "network policies not a boolean": ("spec.networkPolicies.enabled", "yes"),
    "negative replicas": ("spec.services.ocs.replicas", -1),
    "too many replicas": ("spec.services.ocs.replicas", 101),
    "zero kafka brokers": ("spec.kafka.replicas", 0),
    "ten voltdb hosts": ("spec.voltdb.replicas", 10),
    "kfactor too big for any cluster": ("spec.voltdb.kfactor", 9),
    "negative kfactor": ("spec.voltdb.kfactor", -1),
    "replicas as text": ("spec.services.mw.replicas", "2"),
    "bad quantity": ("spec.kafka.storage.size", "ten gigs"),
    "bad deletion policy": ("spec.storage.deletionPolicy", "Keep"),
    "bad service type": ("spec.services.dgw.service.type", "ExternalName"),
    "port out of range": ("spec.services.ivr.service.port", 70000),
    "bad failover side": ("spec.oracle.failover.active", "tertiary"),
    "unknown record": ("spec.record", "MySQL"),
    "postgresql dsn of another database": ("spec.postgresql.external.dsn", "oracle+oracledb://@p:1521/"),
    "bad postgresql database name": ("spec.postgresql.database", "Cell-Celly"),
    "window too short": ("spec.selfHealing.windowSeconds", 5),
    "bad ingress host": ("spec.services.mw.ingress.host", "Not A Host"),
    "unknown phase": ("status.phase", "Sleeping"),
    "env value not text": ("spec.services.ocs.env", {"CELLCELLY_X": 1}),
}


def bad_schema_resource(case: str) -> dict[str, Any]:
    """The minimal stack with BAD_SCHEMA's `case` put into it (also sent to a real API server)."""
    path, value = BAD_SCHEMA[case]
    resource = minimal()
    if value is None:
        del resource["spec"]["version"]
    else:
        _set(resource, path, value)
    return resource


@pytest.mark.parametrize("case", sorted(BAD_SCHEMA))
def test_schema_rejects(case: str) -> None:
    assert schema_errors(defaulted(bad_schema_resource(case))) != []


def test_condition_needs_the_metav1_fields() -> None:
    resource = minimal()
    resource["status"] = {"conditions": [{"type": "Ready", "status": "Yes"}]}
    errors = schema_errors(defaulted(resource))
    assert any("lastTransitionTime" in e for e in errors) and any("'Yes'" in e for e in errors)


def test_healing_keeps_at_most_20() -> None:
    entry = {"time": "2026-12-01T09:00:00Z", "component": "ocs", "reason": "CrashLoopBackOff"}
    entry["action"] = "deleted"
    resource = minimal()
    resource["status"] = {"healing": [entry] * 20}
    assert schema_errors(defaulted(resource)) == []
    resource["status"]["healing"].append(entry)
    assert schema_errors(defaulted(resource)) != []


def test_cel_rules_the_brief_asks_for_exist() -> None:
    found = {(".".join(r.path), r.rule) for r in rules()}
    assert ("spec.voltdb.kfactor", "self == oldSelf") in found
    # rules across a section's fields sit on spec, which has no default (see default_rule_errors)
    assert ("spec", "self.voltdb.mode == 'external' || self.voltdb.kfactor < self.voltdb.replicas") in found
    for component in COMPONENTS:
        needle = f"has(self.{component}.external)"
        assert any(path == "spec" and needle in rule for path, rule in found), component
    assert any(path == "spec" and "self.services.mw.ingress.host" in rule for path, rule in found)
    assert all(r.message for r in rules())


def test_every_cel_rule_holds_on_every_default_as_the_api_server_checks_it() -> None:
    """The API server refuses a CRD when a rule fails on a `default` taken as written (no nested
    defaults inside it): `default: {}` on voltdb with a rule reading self.mode there was refused with
    'no such key: mode'. cel-python on defaulted objects never saw it."""
    assert default_rule_errors() == []


def test_the_default_check_finds_the_bug_it_is_for() -> None:
    """The check can fail: the rule as it once sat on voltdb, beside voltdb's `default: {}`."""
    voltdb = schema()["properties"]["spec"]["properties"]["voltdb"]
    voltdb["x-kubernetes-validations"] = [
        {"rule": "self.mode == 'external' || self.kfactor < self.replicas", "message": "kfactor"}
    ]
    try:
        errors = default_rule_errors()
    finally:
        del voltdb["x-kubernetes-validations"]
    assert len(errors) == 1 and errors[0].startswith("spec.voltdb.default:") and "mode" in errors[0], errors


def test_no_cel_rule_iterates() -> None:
    """The API server refuses a CRD whose rules' estimated cost is too high; a rule looping over map keys
    (unbounded strings) is the usual way to get there, so none does."""
    for rule in rules():
        assert not any(macro in rule.rule for macro in (".all(", ".exists(", ".map(", ".filter(")), rule


def test_every_cel_rule_compiles() -> None:
    import celpy

    env = celpy.Environment()
    for rule in rules():
        env.compile(rule.rule)  # raises on a syntax error


BAD_CEL = {
    "kfactor equal to replicas": ({"voltdb": {"replicas": 2, "kfactor": 2}}, "voltdb.kfactor must be less"),
    "kfactor above replicas": ({"voltdb": {"replicas": 1}}, "voltdb.kfactor must be less"),
    "external kafka without servers": ({"kafka": {"mode": "external"}}, "kafka.external"),
    "external voltdb without servers": ({"voltdb": {"mode": "external"}}, "voltdb.external"),
    "external hazelcast without members": ({"hazelcast": {"mode": "external"}}, "hazelcast.external"),
    "external oracle without dsn": ({"oracle": {"mode": "external"}}, "oracle.external"),
    "failover without standby": (
        {
            "oracle": {
                "mode": "external",
                "external": {"dsn": "oracle+oracledb://@p:1521/", "secretRef": {"name": "o"}},
                "failover": {"enabled": True},
            }
        },
        "oracle.failover needs",
    ),
    "external postgresql without dsn": (
        {"record": "PostgreSQL", "postgresql": {"mode": "external"}},
        "postgresql.external",
    ),
    "postgresql set while the record is oracle": (
        {
            "postgresql": {
                "mode": "external",
                "external": {"dsn": "postgresql+psycopg://db:5432/c", "secretRef": {"name": "pg"}},
            }
        },
        "only with record PostgreSQL",
    ),
    "oracle external beside a postgresql record": (
        {
            "record": "PostgreSQL",
            "oracle": {
                "mode": "external",
                "external": {"dsn": "oracle+oracledb://@p:1521/", "secretRef": {"name": "o"}},
            },
        },
        "is for record Oracle",
    ),
    "failover of a postgresql record": (
        {"record": "PostgreSQL", "oracle": {"failover": {"enabled": True}}},
        "is for record Oracle",
    ),
    "failover of a managed oracle": ({"oracle": {"failover": {"enabled": True}}}, "oracle.failover needs"),
    "fail before the first check": (
        {"oracle": {"failover": {"primaryCheckSeconds": 60, "failAfterSeconds": 30}}},
        "failAfterSeconds",
    ),
    "kafka sasl without a login": (
        {
            "kafka": {
                "mode": "external",
                "external": {"bootstrapServers": "k:9092", "securityProtocol": "SASL_SSL"},
            }
        },
        "kafka.external.secretRef",
    ),
    "kafdrop over a kafka with a login": (
        {
            "kafka": {
                "mode": "external",
                "external": {"bootstrapServers": "k:9092", "secretRef": {"name": "k"}},
                "ui": {"enabled": True},
            }
        },
        "Kafdrop",
    ),
    "ingress without host": ({"services": {"mw": {"ingress": {"enabled": True}}}}, "ingress.host"),
    "sms without smsc": ({"services": {"sms": {"replicas": 1}}}, "smsc.host"),
}


@pytest.mark.parametrize("case", sorted(BAD_CEL))
def test_cel_rejects(case: str) -> None:
    patch, message = BAD_CEL[case]
    resource = minimal()
    resource["spec"].update(patch)
    obj = defaulted(resource)
    assert schema_errors(obj) == []  # only CEL can see these
    errors = cel_errors(obj)
    assert any(message in e for e in errors), errors


def test_name_longer_than_40_is_rejected() -> None:
    resource = minimal()
    resource["metadata"]["name"] = "s" * 41
    assert any("at most 40" in e for e in rejections(resource))
    resource["metadata"]["name"] = "s" * 40
    assert rejections(resource) == []


def test_kfactor_is_immutable_on_update() -> None:
    old = minimal()
    new = _set(minimal(), "spec.voltdb.kfactor", 2)
    assert cel_errors(defaulted(new)) == []  # a create with kfactor 2 of 3 replicas is fine
    assert "voltdb.kfactor is immutable" in rejections(new, old)
    # an update leaving kfactor alone passes, even with other fields changed
    same = _set(minimal(), "spec.services.ocs.replicas", 5)
    assert rejections(same, old) == []
    # the default counts as the old value: setting the default explicitly is no change
    explicit = _set(minimal(), "spec.voltdb.kfactor", 1)
    assert rejections(explicit, old) == []


def test_failover_to_standby_is_accepted_when_configured() -> None:
    resource = copy.deepcopy(samples()["external-failover"])
    resource["spec"]["oracle"]["failover"]["active"] = "standby"
    accepted(resource, old=samples()["external-failover"])
    managed = _set(minimal(), "spec.oracle.failover.active", "standby")
    assert any("standbyDsn" in e for e in rejections(managed))


def test_the_crd_file_is_what_the_tests_read() -> None:
    assert CRD_PATH.name == "cellcellystacks.cellcelly.io.yaml" and CRD_PATH.is_file()
