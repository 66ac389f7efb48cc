"""The Helm charts, with the real helm 4 and helm 3: lint --strict and template over a matrix of values,
every rendered manifest validated offline (kubernetes-validate, strict, Kubernetes 1.31) and every
CellCellyStack against the CRD's own schema and CEL rules."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from platform_crd import CRD_PATH, cel_errors, defaulted, samples, schema_errors
from platform_helm import CHARTS, KUBE_VERSION, NAMESPACE, VALUES, Helm

pytestmark = [pytest.mark.platform, pytest.mark.timeout(300)]

CHART_CRD = CHARTS / "cellcelly-crds" / "crds" / CRD_PATH.name
# Kinds that are not built into Kubernetes: no kubernetes-validate schema exists for them. The
# CellCellyStack is checked against its CRD instead; ServiceMonitor (Prometheus Operator) has no schema
# here at all, so it is only skipped (the charts render none today; the operator may).
NOT_BUILT_IN = {"CellCellyStack", "ServiceMonitor"}
# the oldest release the charts allow (kubeVersion >=1.25), the one the brief names, a recent one
VALIDATE_VERSIONS = ("1.25", KUBE_VERSION, "1.35")

MATRIX: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (chart, values files under tests/platform/values, --set items)
    "crds": ("cellcelly-crds", [], []),
    "operator-default": ("cellcelly-operator", [], []),
    "operator-cluster": ("cellcelly-operator", ["operator-cluster.yaml"], []),
    "operator-namespaced": ("cellcelly-operator", ["operator-namespaced.yaml"], []),
    "operator-namespaced-release": ("cellcelly-operator", ["operator-namespaced-release.yaml"], []),
    "operator-peering": ("cellcelly-operator", ["operator-peering.yaml"], []),
    "operator-secret-names": ("cellcelly-operator", ["operator-secret-names.yaml"], []),
    "stack-managed": ("cellcelly-stack", [], []),
    "stack-external": ("cellcelly-stack", ["stack-external.yaml"], []),
    "stack-monitoring": ("cellcelly-stack", ["stack-monitoring.yaml"], []),
    "stack-ingress": ("cellcelly-stack", ["stack-ingress.yaml"], []),
    "stack-paused": ("cellcelly-stack", ["stack-paused.yaml"], []),
    "stack-postgresql": ("cellcelly-stack", ["stack-postgresql.yaml"], []),
    "stack-everything": (
        "cellcelly-stack",
        ["stack-external.yaml", "stack-monitoring.yaml", "stack-ingress.yaml", "stack-paused.yaml"],
        ["kafka.ui.enabled=false"],  # Kafdrop is not wired for an external Kafka with a login (a CEL rule)
    ),
}


def render(helm: Helm, case: str, crds: bool = False) -> list[dict[str, Any]]:
    chart, files, sets = MATRIX[case]
    return helm.template(chart, [VALUES / f for f in files], sets, crds=crds)


def validate(doc: dict[str, Any]) -> None:
    kind = doc["kind"]
    if kind == "CellCellyStack":
        obj = defaulted(doc)
        assert schema_errors(obj) == [], doc["metadata"]["name"]
        assert cel_errors(obj) == [], doc["metadata"]["name"]
    elif kind in NOT_BUILT_IN:
        return
    else:
        # raises SchemaNotFoundError for a kind it does not know: a failure, never a warning
        for version in VALIDATE_VERSIONS:
            assert kubernetes_validate.validate(doc, version, strict=True) == version


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_lint_strict(helm: Helm, case: str) -> None:
    chart, files, sets = MATRIX[case]
    done = helm.lint(chart, [VALUES / f for f in files], sets)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_rendered_manifest_is_valid(helm: Helm, case: str) -> None:
    docs = render(helm, case, crds=True)
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_standard_labels_and_a_chart_test(helm: Helm, case: str) -> None:
    docs = render(helm, case)
    chart = MATRIX[case][0]
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        assert labels.get("helm.sh/chart") == f"{chart}-0.1.0", doc["metadata"]["name"]
        assert labels.get("app.kubernetes.io/name") == chart
        assert labels.get("app.kubernetes.io/instance") == "demo"
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"
        assert labels.get("app.kubernetes.io/part-of") == "cellcelly"
        assert labels.get("app.kubernetes.io/version") == "0.1.0"
    tests = [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert any(d["kind"] == "Pod" for d in tests), "no chart test Pod"
    for pod in by_kind(docs, "Pod"):
        assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["securityContext"]["runAsNonRoot"]


def test_helm_binaries_are_the_versions_the_script_promises(helm: Helm) -> None:
    out = helm.run("version", "--short").stdout
    assert out.startswith(("v4.1.4", "v3.17.2")), out


# ---- cellcelly-crds -------------------------------------------------------------------------------


def test_chart_crd_is_byte_for_byte_the_source() -> None:
    assert CHART_CRD.is_file(), "run scripts/helm.sh sync-crds"
    source, copied = CRD_PATH.read_bytes(), CHART_CRD.read_bytes()
    assert hashlib.sha256(copied).hexdigest() == hashlib.sha256(source).hexdigest(), (
        "charts/cellcelly-crds/crds/ differs from crds/: run scripts/helm.sh sync-crds"
    )


def test_crds_chart_installs_the_crd_from_crds_dir(helm: Helm) -> None:
    # in crds/ (installed first, never upgraded or deleted by Helm), not in templates/
    without = render(helm, "crds")
    assert by_kind(without, "CustomResourceDefinition") == []
    (crd,) = by_kind(render(helm, "crds", crds=True), "CustomResourceDefinition")
    assert crd == yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    assert not list((CHARTS / "cellcelly-crds" / "templates").glob("*crd*.yaml"))


# ---- cellcelly-operator ---------------------------------------------------------------------------

# written out for the reader; test_platform_rbac.py derives the same from the operator's own calls
CHILD_VERBS = {"list", "create", "patch", "delete"}
NAMESPACED_RULES = {
    ("cellcelly.io", "cellcellystacks"): {"get", "list", "watch", "patch"},
    ("cellcelly.io", "cellcellystacks/status"): {"patch"},
    ("cellcelly.io", "cellcellystacks/finalizers"): {"update"},
    ("apps", "statefulsets"): CHILD_VERBS,
    ("apps", "deployments"): CHILD_VERBS,
    ("", "services"): CHILD_VERBS,
    ("", "configmaps"): CHILD_VERBS,
    ("", "secrets"): {"get", "create", "patch"},
    ("", "pods"): {"list", "delete"},
    ("", "persistentvolumeclaims"): {"list", "delete"},
    ("", "events"): {"create"},
    ("events.k8s.io", "events"): {"create"},
    ("policy", "poddisruptionbudgets"): CHILD_VERBS,
    ("networking.k8s.io", "ingresses"): CHILD_VERBS,
    ("networking.k8s.io", "networkpolicies"): CHILD_VERBS,
    ("monitoring.coreos.com", "servicemonitors"): CHILD_VERBS,
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
}
CLUSTER_ONLY_RULES = {
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
}


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def test_cluster_scope_rbac_is_exactly_what_the_operator_needs(helm: Helm) -> None:
    docs = render(helm, "operator-cluster")
    assert by_kind(docs, "Role") == [] and by_kind(docs, "RoleBinding") == []
    (role,) = by_kind(docs, "ClusterRole")
    assert grants(role) == NAMESPACED_RULES | CLUSTER_ONLY_RULES
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    (account,) = by_kind(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert all("*" not in verbs for verbs in grants(role).values())


def test_namespace_scope_rbac_is_a_role_per_watched_namespace(helm: Helm) -> None:
    docs = render(helm, "operator-namespaced")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["billing", "telco"]
    for role in roles:
        assert grants(role) == NAMESPACED_RULES
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["billing", "telco"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # nothing cluster-wide: the operator turns kopf's scanning of namespaces and CRDs off (settings.tune)
    assert by_kind(docs, "ClusterRole") == [] and by_kind(docs, "ClusterRoleBinding") == []
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert {"name": "CELLCELLY_OPERATOR_SCOPE", "value": "namespace"} in container["env"]
    release_only = render(helm, "operator-namespaced-release")
    assert [r["metadata"]["namespace"] for r in by_kind(release_only, "Role")] == [NAMESPACE]


def test_operator_defaults_to_the_release_namespace_only(helm: Helm) -> None:
    """Least privilege by default: no values give a Role in the release namespace and nothing
    cluster-wide; cluster scope is opt-in (watch.scope=cluster)."""
    docs = render(helm, "operator-default")
    assert [r["metadata"]["namespace"] for r in by_kind(docs, "Role")] == [NAMESPACE]
    assert [b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")] == [NAMESPACE]
    assert by_kind(docs, "ClusterRole") == [] and by_kind(docs, "ClusterRoleBinding") == []
    args = operator_container(docs)["args"]
    assert f"--namespace={NAMESPACE}" in args and "--all-namespaces" not in args


# the Secrets the operator makes per stack (the managed back ends' logins, the OCS API key); the real-server
# test runs the operator under the narrowed Role (tests/cluster/test_cluster_helm.py): a name missing here
# shows there as `forbidden`
MADE_SECRETS = ("oracle", "postgresql", "ocs-api-key", "kafka-users", "voltdb")


def test_secrets_get_is_narrowed_to_the_named_stacks(helm: Helm) -> None:
    """rbac.stacks: `get` and `patch` of Secrets by resourceNames only; `create` stays unnamed (RBAC
    cannot restrict a create by name). Without it (the stacks unknown at install) one rule grants all three
    on any Secret."""

    def secret_rules(case: str) -> list[dict[str, Any]]:
        (role,) = by_kind(render(helm, case), "Role")
        return [r for r in role["rules"] if r["resources"] == ["secrets"]]

    names = [f"{stack}-{made}" for stack in ("demo", "billing") for made in MADE_SECRETS]
    assert secret_rules("operator-secret-names") == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": names, "verbs": ["get", "patch"]},
    ]
    assert secret_rules("operator-default") == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]}
    ]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def test_operator_args_follow_the_scope(helm: Helm) -> None:
    cluster = operator_container(render(helm, "operator-cluster"))
    assert cluster["command"] == ["kopf"]
    assert cluster["args"] == [
        "run",
        "-m",
        "cellcelly_operator.main",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--standalone",
    ]
    namespaced = operator_container(render(helm, "operator-namespaced"))
    assert namespaced["args"][:5] == [
        "run",
        "-m",
        "cellcelly_operator.main",
        "--namespace=telco",
        "--namespace=billing",
    ]
    assert "--all-namespaces" not in namespaced["args"]
    peering = operator_container(render(helm, "operator-peering"))
    assert "--peering=cellcelly" in peering["args"] and "--standalone" not in peering["args"]
    assert "--verbose" in peering["args"] and "--log-format=json" in peering["args"]


def test_operator_pod_is_non_root_probed_and_bounded(helm: Helm) -> None:
    docs = render(helm, "operator-cluster")
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = operator_container(docs)
    assert container["image"] == "ghcr.io/cellcelly/cellcelly-operator:0.1.0"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == by_kind(docs, "ServiceAccount")[0]["metadata"]["name"]


def test_operator_with_an_existing_service_account(helm: Helm) -> None:
    docs = render(helm, "operator-peering")
    assert by_kind(docs, "ServiceAccount") == []
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "existing-operator"
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["subjects"][0]["name"] == "existing-operator"


# ---- cellcelly-stack ------------------------------------------------------------------------------


def the_stack(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (stack,) = by_kind(docs, "CellCellyStack")
    return stack


def test_stack_chart_defaults_are_the_crds(helm: Helm) -> None:
    stack = the_stack(render(helm, "stack-managed"))
    assert stack["metadata"] == {
        "name": "demo",
        "namespace": NAMESPACE,
        "labels": stack["metadata"]["labels"],
    }
    # every field is rendered, and with exactly the value the API server would default it to
    crd_defaults = defaulted({"spec": {"version": "0.1.0"}})["spec"]
    assert stack["spec"] == crd_defaults
    # so defaulting adds nothing
    assert defaulted(stack)["spec"] == stack["spec"]


def test_stack_chart_makes_no_secret_unless_asked(helm: Helm) -> None:
    assert by_kind(render(helm, "stack-managed"), "Secret") == []
    values = yaml.safe_load((CHARTS / "cellcelly-stack" / "values.yaml").read_text(encoding="utf-8"))
    for entry in values["createSecrets"].values():
        assert entry["enabled"] is False
        assert all(v == "" for k, v in entry.items() if k != "enabled"), "a default secret value"


def test_stack_chart_external_secrets_match_the_spec(helm: Helm) -> None:
    docs = render(helm, "stack-external")
    stack = the_stack(docs)["spec"]
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind(docs, "Secret")}
    assert secrets[stack["secrets"]["tokenSecretRef"]["name"]] == {"token-secret": "test-only-token-secret"}
    assert secrets[stack["secrets"]["adminTokenRef"]["name"]] == {"token": "test-only-admin-token"}
    for backend in ("kafka", "voltdb", "hazelcast", "oracle"):
        assert stack[backend]["mode"] == "external"
        assert set(secrets[stack[backend]["external"]["secretRef"]["name"]]) == {"username", "password"}
    assert set(secrets[stack["services"]["sms"]["smsc"]["secretRef"]["name"]]) == {"systemId", "password"}
    assert stack["oracle"]["failover"]["enabled"] is True
    assert all(s["type"] == "Opaque" for s in by_kind(docs, "Secret"))


def test_stack_chart_postgresql_record_and_its_login(helm: Helm) -> None:
    docs = render(helm, "stack-postgresql")
    stack = the_stack(docs)["spec"]
    assert stack["record"] == "PostgreSQL" and stack["postgresql"]["mode"] == "external"
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind(docs, "Secret")}
    assert secrets == {"cellcelly-pg": {"username": "cellcelly", "password": "test-only-pg-password"}}
    # the chart's oracle defaults stay as the CRD's: a PostgreSQL stack passes the one-record rule
    assert cel_errors(defaulted(the_stack(docs))) == []


def test_stack_chart_kafka_secret_carries_a_ca_only_when_given(helm: Helm) -> None:
    chart, files, _ = MATRIX["stack-external"]
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    with_ca = helm.template(chart, [VALUES / f for f in files], [f"createSecrets.kafka.caCrt={pem}"])
    ref = the_stack(with_ca)["spec"]["kafka"]["external"]["secretRef"]["name"]
    kafka = next(s for s in by_kind(with_ca, "Secret") if s["metadata"]["name"] == ref)
    assert kafka["stringData"]["ca.crt"] == pem
    without = next(
        s for s in by_kind(render(helm, "stack-external"), "Secret") if s["metadata"]["name"] == ref
    )
    assert "ca.crt" not in without["stringData"]


def test_stack_chart_paused_monitoring_ingress(helm: Helm) -> None:
    paused = the_stack(render(helm, "stack-paused"))
    assert paused["metadata"]["name"] == "frozen"
    assert paused["metadata"]["annotations"] == {
        "cellcelly.io/paused": "true",
        "example.com/owner": "platform",
    }
    assert paused["metadata"]["labels"]["example.com/team"] == "telco"
    assert "annotations" not in the_stack(render(helm, "stack-managed"))["metadata"]
    monitoring = the_stack(render(helm, "stack-monitoring"))["spec"]
    assert monitoring["monitoring"]["enabled"] is True and monitoring["kafka"]["ui"]["enabled"] is True
    ingress = the_stack(render(helm, "stack-ingress"))["spec"]["services"]["mw"]["ingress"]
    assert ingress == {
        "enabled": True,
        "host": "selfcare.example.com",
        "className": "nginx",
        "tls": {"secretName": "selfcare-tls"},
    }


@pytest.mark.parametrize("sample", ["minimal", "full-managed", "external-failover", "paused"])
def test_stack_chart_renders_each_sample(helm: Helm, sample: str, tmp_path: Path) -> None:
    """Values taken from a sample give back that sample's stack (after defaulting)."""
    resource = copy.deepcopy(samples()[sample])
    values = dict(resource["spec"])
    values["name"] = resource["metadata"]["name"]
    values["paused"] = resource["metadata"].get("annotations", {}).get("cellcelly.io/paused") == "true"
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    stack = the_stack(helm.template("cellcelly-stack", [path], []))
    validate(stack)
    assert stack["metadata"]["name"] == resource["metadata"]["name"]
    assert defaulted(stack)["spec"] == defaulted(resource)["spec"]


def test_stack_values_schema_is_generated_from_the_crd() -> None:
    import json

    generated = json.loads((CHARTS / "cellcelly-stack" / "values.schema.json").read_text(encoding="utf-8"))
    spec = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))["spec"]["versions"][0]["schema"]
    spec_props = spec["openAPIV3Schema"]["properties"]["spec"]["properties"]

    def enums(node: Any, path: str = "") -> dict[str, Any]:
        found: dict[str, Any] = {}
        if isinstance(node, dict):
            for key in ("enum", "minimum", "maximum", "default", "pattern", "required"):
                if key in node:
                    found[f"{path}/{key}"] = node[key]
            for key, value in node.items():
                if key in ("properties", "additionalProperties", "items") or path.endswith("properties"):
                    found |= enums(value, f"{path}/{key}")
        return found

    for name, sub in spec_props.items():
        assert enums(generated["properties"][name]) == enums(sub), f"{name}: run scripts/helm.sh sync-crds"


REFUSED = {
    "cellcelly-operator": {
        "unknown scope": (["watch.scope=galaxy"], "watch/scope"),
        "two replicas without peering": (["replicaCount=2"], "needs peering"),
        "bad namespace name": (["watch.scope=namespace", "watch.namespaces={Bad_NS}"], "namespaces"),
        "misspelt value": (["watchh.scope=cluster"], "watchh"),
        "stack name too long": (["rbac.stacks={" + "s" * 41 + "}"], "rbac/stacks"),
    },
    "cellcelly-stack": {
        "no brokers": (["kafka.replicas=0"], "kafka/replicas"),
        "negative replicas": (["services.ocs.replicas=-1"], "services/ocs/replicas"),
        "bad mode": (["oracle.mode=cloud"], "oracle/mode"),
        "bad enum": (["storage.deletionPolicy=Keep"], "deletionPolicy"),
        "name too long": (["name=" + "s" * 41], "name"),
        "misspelt field": (["kafka.replica=2"], "replica"),
        "token secret without a value": (
            ["createSecrets.mwToken.enabled=true"],
            "mw-token needs token-secret",
        ),
        "oracle secret without a ref": (
            [
                "createSecrets.oracle.enabled=true",
                "createSecrets.oracle.username=u",
                "createSecrets.oracle.password=p",
            ],
            "oracle.external.secretRef.name",
        ),
        "smsc secret without a password": (
            [
                "createSecrets.smsc.enabled=true",
                "createSecrets.smsc.systemId=x",
                "services.sms.smsc.host=smsc",
                "services.sms.smsc.secretRef.name=smsc",
            ],
            "smsc-credentials needs password",
        ),
    },
}


@pytest.mark.parametrize(
    ("chart", "case"), [(chart, case) for chart, cases in sorted(REFUSED.items()) for case in sorted(cases)]
)
def test_bad_values_are_refused(helm: Helm, chart: str, case: str) -> None:
    sets, expected = REFUSED[chart][case]
    error = helm.template_error(chart, sets)
    assert error, f"{chart} accepted {sets}"
    # helm 4 names the value /kafka/replicas, helm 3 kafka.replicas
    assert expected.replace(".", "/") in error.replace(".", "/"), error
