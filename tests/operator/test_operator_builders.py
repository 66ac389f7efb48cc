"""Builders over a matrix of specs: every manifest valid against real Kubernetes schemas, wired right."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cellcelly_operator import children, hazelcast, kafka, oracle, postgresql, services, spec, voltdb
from cellcelly_operator.labels import CONFIG_HASH
from operator_kit import SPECS, apply_defaults, crd_schema, stack_body

from cellcelly_testing import require

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

K8S = "1.35"  # a recent release kubernetes-validate has schemas for (it has 1.25 to 1.37)
CRD_KINDS = {"ServiceMonitor"}  # Prometheus Operator's CRD: no built-in schema exists for it


def build(name: str, **meta: Any) -> tuple[spec.Stack, list[dict[str, Any]]]:
    stack = spec.from_body(stack_body("demo", SPECS[name], **meta))
    return stack, children.build(stack)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_manifest_is_valid_kubernetes(name: str) -> None:
    _, manifests = build(name)
    assert manifests
    for m in manifests:
        if m["kind"] in CRD_KINDS:
            continue  # not a built-in kind: checked by shape in test_monitoring_when_enabled
        try:
            kubernetes_validate.validate(m, K8S, strict=True)
        except kubernetes_validate.SchemaNotFoundError:  # a built-in kind without schema is our mistake
            pytest.fail(f"no schema for built-in kind {m['apiVersion']}/{m['kind']}")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_matrix_specs_are_valid_stacks_and_defaults_agree_with_the_crd(name: str) -> None:
    schema = crd_schema()
    require(schema is not None, "crds/cellcellystacks.cellcelly.io.yaml missing")
    assert schema is not None
    body = stack_body("demo", SPECS[name])
    jsonschema.validate(body, schema)
    defaulted = apply_defaults(schema["properties"]["spec"], SPECS[name])
    # the operator's model must read a spec the API server defaulted exactly as one it did not
    assert spec.StackSpec.model_validate(defaulted) == spec.StackSpec.model_validate(SPECS[name])


def test_the_crd_samples_build() -> None:
    from operator_kit import ROOT

    samples = sorted((ROOT / "crds" / "samples").glob("*.yaml"))
    require(bool(samples), "crds/samples/*.yaml missing")
    for path in samples:
        for doc in yaml.safe_load_all(path.read_text()):
            doc["metadata"]["uid"] = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"  # as served: the server's
            for m in children.build(spec.from_body(doc)):
                if m["kind"] not in CRD_KINDS:
                    kubernetes_validate.validate(m, K8S, strict=True)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_children_are_owned_labelled_and_uniquely_named(name: str) -> None:
    stack, manifests = build(name, uid="1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    seen = set()
    for m in manifests:
        meta = m["metadata"]
        key = (m["kind"], meta["name"])
        assert key not in seen, key
        seen.add(key)
        assert meta["namespace"] == "telco"
        assert meta["name"].startswith("demo-")
        (owner,) = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "cellcelly.io/v1alpha1",
            "kind": "CellCellyStack",
            "name": "demo",
            "uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        labels = meta["labels"]
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/part-of"] == "cellcelly"
        assert labels["app.kubernetes.io/managed-by"] == "cellcelly-operator"
        assert labels["app.kubernetes.io/version"] == stack.spec.version


def test_a_missing_uid_is_an_error_not_derived() -> None:
    """A real API server always gives one; a body without it was never served, and owner references or
    the Kafka cluster id made from a stand-in would not match the object."""
    body = stack_body("demo", {})
    assert spec.from_body(body).uid == body["metadata"]["uid"]
    del body["metadata"]["uid"]
    with pytest.raises(ValueError, match="no metadata.uid"):
        spec.from_body(body)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_pods_are_hardened_and_have_resources(name: str) -> None:
    _, manifests = build(name)
    for m in manifests:
        if m["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = m["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert c["resources"]["requests"]
        # the selector must select the template (the API server refuses it otherwise)
        sel = m["spec"]["selector"]["matchLabels"]
        assert sel.items() <= m["spec"]["template"]["metadata"]["labels"].items()


def test_kafka_is_kraft_with_a_quorum_of_pod_dns_names() -> None:
    stack, manifests = build("full")
    sts = next(m for m in manifests if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "demo-kafka")
    assert sts["spec"]["replicas"] == 5
    assert sts["spec"]["serviceName"] == "demo-kafka-headless"
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-kafka-config")
    props = dict(line.split("=", 1) for line in cm["data"]["server.properties"].splitlines())
    assert props["process.roles"] == "broker,controller"
    voters = props["controller.quorum.voters"].split(",")
    assert voters == [
        f"{i}@demo-kafka-{i}.demo-kafka-headless.telco.svc.cluster.local:9093" for i in range(5)
    ]
    assert props["min.insync.replicas"] == "2"
    assert len(env["CLUSTER_ID"]) == 22  # base64url of 16 bytes, unpadded
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    headless = next(m for m in manifests if m["metadata"]["name"] == "demo-kafka-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    assert any(
        m["kind"] == "PodDisruptionBudget" and m["metadata"]["name"] == "demo-kafka" for m in manifests
    )
    assert any(m["metadata"]["name"] == "demo-kafdrop" and m["kind"] == "Deployment" for m in manifests)
    assert kafka.bootstrap(stack) == "demo-kafka.telco.svc.cluster.local:9092"


def test_hazelcast_joins_by_kubernetes_dns() -> None:
    stack, manifests = build("minimal")
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-hazelcast-config")
    config = yaml.safe_load(cm["data"]["hazelcast.yaml"])["hazelcast"]
    assert config["network"]["join"]["multicast"]["enabled"] is False
    assert config["network"]["join"]["kubernetes"] == {
        "enabled": True,
        "service-dns": "demo-hazelcast-headless.telco.svc.cluster.local",
        "service-port": 5701,
    }
    assert hazelcast.members(stack) == "demo-hazelcast.telco.svc.cluster.local:5701"


def test_voltdb_kfactor_hostcount_and_start_args() -> None:
    stack, manifests = build("full")
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-voltdb-deployment")
    assert '<cluster hostcount="5" sitesperhost="8" kfactor="2"/>' in cm["data"]["deployment.xml"]
    # the community server's init refuses a command log (seen on the real node: the pod looped)
    assert '<commandlog enabled="false"/>' in cm["data"]["deployment.xml"]
    pod, pdb = voltdb_parts(manifests)
    script = pod["containers"][0]["command"][-1]
    assert "voltdb init --dir=/var/voltdb --config=/var/voltdb/deployment.xml" in script
    assert "voltdb start --dir=/var/voltdb --count=5 --host=demo-voltdb-0.demo-voltdb-headless" in script
    assert pdb["maxUnavailable"] == 2  # k-factor 2 survives two lost nodes
    assert len(voltdb.servers(stack).split(",")) == 5
    # k-safe: the other nodes serve while one stops, so its stop must not pause them all
    assert "lifecycle" not in pod["containers"][0]


def voltdb_parts(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    sts = next(m for m in manifests if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "demo-voltdb")
    pdb = next(
        m for m in manifests if m["kind"] == "PodDisruptionBudget" and m["metadata"]["name"] == "demo-voltdb"
    )
    return sts["spec"]["template"]["spec"], pdb["spec"]


def test_voltdb_without_k_safety_saves_a_snapshot_before_it_stops_and_may_be_drained() -> None:
    """k-factor 0 (the small stack, one node): a drain evicts the pod, so the PDB allows one, and
    the pod's preStop pauses the database and writes the snapshot `voltdb start` recovers from."""
    _, manifests = build("small")
    pod, pdb = voltdb_parts(manifests)
    assert pdb["maxUnavailable"] == 1  # was 0: `kubectl drain` of the one node waited forever
    (container,) = pod["containers"]
    drain = container["lifecycle"]["preStop"]["exec"]["command"]
    assert drain == ["voltdb", "drain", "--dir=/var/voltdb", "--user=cellcelly"]
    assert pod["terminationGracePeriodSeconds"] >= 60  # the pause and the snapshot, not 30 s
    # the wrapper reads the password the start script uses, from the same Secret
    assert any(e["name"] == "VOLTDB_PASSWORD" for e in container["env"])


def test_managed_oracle_reads_its_password_from_a_secret() -> None:
    stack, manifests = build("minimal")
    sts = next(m for m in manifests if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "demo-oracle")
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    password = next(e for e in env if e["name"] == "ORACLE_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "demo-oracle", "key": "password"}
    assert not any("value" in e for e in env)  # nothing secret inline
    # no login in the URL: the services take it from CELLCELLY_DATABASE_USERNAME/PASSWORD (Settings.sor_url)
    assert oracle.database_url(stack) == (
        "oracle+oracledb://demo-oracle.telco.svc.cluster.local:1521/?service_name=FREEPDB1"
    )


def test_managed_postgresql_is_the_record_with_its_login_from_a_secret() -> None:
    stack, manifests = build("postgresql")
    made = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    # the record chosen is the only one built: no Oracle beside it
    assert not any("oracle" in name for _, name in made)
    assert {("StatefulSet", "demo-postgresql"), ("Service", "demo-postgresql")} <= made
    sts = next(
        m for m in manifests if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "demo-postgresql"
    )
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "postgres:16-bookworm"
    env = {e["name"]: e for e in container["env"]}
    for var, key in (("POSTGRES_USER", "username"), ("POSTGRES_PASSWORD", "password")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "demo-postgresql", "key": key}
    assert env["POSTGRES_DB"]["value"] == "cellcelly"
    # initdb refuses a volume's root with lost+found in it: the data in a subdirectory of the mount
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["PGDATA"]["value"].startswith(mounts["data"] + "/")
    assert (
        "$POSTGRES_USER" in container["readinessProbe"]["exec"]["command"][-1]
    )  # through sh: no $(VAR) there
    assert pod["securityContext"]["runAsNonRoot"] is True
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-config")["data"]
    assert (
        cm["CELLCELLY_DATABASE_URL"]
        == "postgresql+psycopg://demo-postgresql.telco.svc.cluster.local:5432/cellcelly"
    )
    for svc in services.BACKEND_USERS["postgresql"]:
        dep = next(
            m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == f"demo-{svc}"
        )
        svc_env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert (
            svc_env["CELLCELLY_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "demo-postgresql"
        )
    # the login made once per stack, as the other managed back ends'
    secret = postgresql.generated_secret(stack, "pw")
    assert secret["metadata"]["name"] == "demo-postgresql" and secret["stringData"]["password"] == "pw"
    assert not oracle.failover_possible(stack)
    assert children.workloads(stack)["postgresql"] == ("StatefulSet", "demo-postgresql")


def test_external_postgresql_is_the_dsn_and_the_users_secret() -> None:
    stack, manifests = build("postgresql-external")
    assert not any(m["kind"] == "StatefulSet" and "postgresql" in m["metadata"]["name"] for m in manifests)
    assert not any("oracle" in m["metadata"]["name"] for m in manifests)
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-config")["data"]
    assert cm["CELLCELLY_DATABASE_URL"] == "postgresql+psycopg://pg.example:5432/prod"
    assert services.record_credentials(stack) == ("pg-creds", "username", "password")
    # an external record is ready as far as the operator is concerned; Oracle is no component of the stack
    from cellcelly_operator import reconcile

    observed = reconcile.observe(stack, {})
    assert observed["postgresql"].ok and "oracle" not in observed


def test_an_oracle_stack_keeps_its_record_unchanged() -> None:
    stack, manifests = build("minimal")
    assert stack.spec.record == "Oracle" and stack.spec.record_component == "oracle"
    assert not any("postgresql" in m["metadata"]["name"] for m in manifests)
    assert postgresql.build(stack) == []


def test_services_are_wired_to_the_back_ends_by_configuration() -> None:
    stack, manifests = build("external")
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-config")["data"]
    assert cm["CELLCELLY_EVENT_BUS"] == "kafka"
    assert cm["CELLCELLY_KAFKA_BOOTSTRAP"] == "k0.example:9092,k1.example:9092"
    assert cm["CELLCELLY_BALANCE_STORE"] == "voltdb" and cm["CELLCELLY_VOLTDB_SERVERS"] == "v0.example:21212"
    assert cm["CELLCELLY_CACHE"] == "hazelcast" and cm["CELLCELLY_HAZELCAST_MEMBERS"] == "hz0.example:5701"
    assert cm["CELLCELLY_HAZELCAST_CLUSTER"] == "prod"
    assert "@127.0.0.1:1521/" in cm["CELLCELLY_DATABASE_URL"]
    # managed back ends are absent when external
    assert not any(m["kind"] == "StatefulSet" for m in manifests)
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    assert set(deployments) == {f"demo-{s}" for s in spec.SERVICES}
    for svc in spec.SERVICES:
        c = deployments[f"demo-{svc}"]["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == ["cellcelly", svc]
        assert c["envFrom"] == [{"configMapRef": {"name": "demo-config"}}]
        env = {e["name"]: e for e in c["env"]}
        if svc == "dgw":  # it dials only the OCS: no database login
            assert "CELLCELLY_DATABASE_PASSWORD" not in env
            continue
        assert env["CELLCELLY_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "oracle-creds",
            "key": "password",
        }
        assert env["CELLCELLY_DATABASE_USERNAME"]["valueFrom"]["secretKeyRef"]["key"] == "username"
        assert "CELLCELLY_DATABASE_URL" not in env  # the ConfigMap's, with no login in it
    mw_env = {
        e["name"]: e for e in deployments["demo-mw"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert mw_env["CELLCELLY_MW_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "cellcelly-mw",
        "key": "token-secret",
    }
    # the MW's admin routes (vouchers, roles) have no other first administrator than the token

    for svc in ("ocs", "mw"):
        admin = {
            e["name"]: e
            for e in deployments[f"demo-{svc}"]["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert admin["CELLCELLY_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "cellcelly-admin",
            "key": "token",
            "optional": True,
        }


def test_the_notifier_gets_the_smsc_login_as_the_sms_gateway_does() -> None:
    """With an SMSC set, the notifier's SMS channel binds to it too: without the login a real SMSC
    refuses it and no notice goes out."""
    _, manifests = build("full")
    for svc in ("sms", "notifier"):
        d = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == f"demo-{svc}")
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["CELLCELLY_SMSC_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "smsc",
            "key": "password",
        }


def test_http_services_probe_healthz_and_readyz() -> None:
    _, manifests = build("full")
    for svc in ("ocs", "mw", "sf"):
        d = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == f"demo-{svc}")
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    dgw = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "demo-dgw")
    assert dgw["spec"]["type"] == "LoadBalancer" and dgw["spec"]["ports"][0]["port"] == 3868
    # the network reaches Diameter only: the DGW's /metrics is in a ClusterIP Service of its own
    assert [p["name"] for p in dgw["spec"]["ports"]] == ["diameter"]
    inner = next(
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "demo-dgw-metrics"
    )
    assert inner["spec"]["type"] == "ClusterIP" and inner["spec"]["selector"] == dgw["spec"]["selector"]
    assert [(p["name"], p["port"]) for p in inner["spec"]["ports"]] == [("metrics", 9103)]
    ivr = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "demo-ivr")
    assert ivr["spec"]["ports"][0] == {"name": "sip", "port": 5080, "targetPort": "sip", "protocol": "UDP"}


def test_ingress_only_when_enabled() -> None:
    _, full = build("full")
    (ing,) = [m for m in full if m["kind"] == "Ingress"]
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["rules"][0]["host"] == "selfcare.example.com"
    assert ing["spec"]["tls"] == [{"hosts": ["selfcare.example.com"], "secretName": "selfcare-tls"}]
    _, minimal = build("minimal")
    assert not [m for m in minimal if m["kind"] == "Ingress"]


def test_monitoring_when_enabled() -> None:
    _, full = build("full")
    monitors = [m for m in full if m["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {"demo-ocs", "demo-sf", "demo-dgw"}
    for m in monitors:
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        assert m["spec"]["endpoints"][0]["path"] == "/metrics"
    cm = next(m for m in full if m["metadata"]["name"] == "demo-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(cm["data"]["cellcelly-charging.json"])
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for metric in (
        "cellcelly_charging_requests_total",
        "cellcelly_charging_seconds_bucket",
        "cellcelly_outbox_pending",
        "cellcelly_sf_lag_records",
        "cellcelly_dgw_too_busy_total",
        "cellcelly_dgw_doic_reduction_percent",
    ):
        assert metric in exprs
    _, minimal = build("minimal")
    assert not [m for m in minimal if m["kind"] == "ServiceMonitor"]


def test_dashboard_metrics_exist_in_the_services() -> None:
    """The dashboard's metric names are the ones the OCS and the DGW really export."""
    from prometheus_client import generate_latest

    from cellcelly.ocs.metrics import OcsMetrics

    m = OcsMetrics()
    m.charged("INITIAL", 2001, 0.001)
    text = generate_latest(m.registry).decode()
    for name in (
        "cellcelly_charging_requests_total",
        "cellcelly_charging_seconds_bucket",
        "cellcelly_outbox_pending",
    ):
        assert name in text
    from prometheus_client import CollectorRegistry

    from cellcelly.dgw.gateway import Gateway
    from cellcelly.dgw.metrics import DgwCollector
    from cellcelly.dgw.ocs_client import NoopOcs
    from cellcelly.diameter.peer import LocalPeer

    dgw = CollectorRegistry()
    dgw.register(DgwCollector(Gateway(LocalPeer("dgw.test", "cellcelly.local"), NoopOcs())))
    text = generate_latest(dgw).decode()
    for name in ("cellcelly_dgw_too_busy_total", "cellcelly_dgw_doic_reduction_percent"):
        assert name in text


def test_a_configuration_change_rolls_the_deployments() -> None:
    body = stack_body("demo", SPECS["external"])
    primary = spec.from_body(body)
    body["status"] = {"oracle": {"active": "standby"}}
    standby = spec.from_body(body)
    a = services.deployment(primary, "ocs")["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    b = services.deployment(standby, "ocs")["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    assert a != b
    assert "@127.0.0.1:1522/" in services.config_data(standby)["CELLCELLY_DATABASE_URL"]
    # and the same spec renders the same hash (no needless rollouts)
    assert (
        a
        == services.deployment(spec.from_body(stack_body("demo", SPECS["external"])), "ocs")["spec"][
            "template"
        ]["metadata"]["annotations"][CONFIG_HASH]
    )


def test_sms_off_by_default_has_no_pdb_and_zero_replicas() -> None:
    _, manifests = build("minimal")
    sms = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "demo-sms")
    assert sms["spec"]["replicas"] == 0
    assert not [
        m for m in manifests if m["kind"] == "PodDisruptionBudget" and m["metadata"]["name"] == "demo-sms"
    ]


def test_deletion_policy_is_the_statefulsets_own_pvc_policy() -> None:
    _, small = build("small")
    _, minimal = build("minimal")
    for manifests, when in ((small, "Delete"), (minimal, "Retain")):
        for m in manifests:
            if m["kind"] == "StatefulSet" and "volumeClaimTemplates" in m["spec"]:
                assert m["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == when


def test_every_pod_goes_where_the_placement_says() -> None:
    stack, manifests = build("full")
    placement = stack.spec.placement
    pods = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
    assert len(pods) >= 10  # every back end and service of the full stack
    for m in pods:
        pod = m["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == placement.node_selector, m["metadata"]["name"]
        assert pod["tolerations"] == list(placement.tolerations), m["metadata"]["name"]
    _, unplaced = build("small")
    assert not [
        m for m in unplaced if "nodeSelector" in m.get("spec", {}).get("template", {}).get("spec", {})
    ]


def test_an_invalid_spec_is_refused_clearly() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="replicas"):
        spec.from_body(stack_body("demo", {"kafka": {"replicas": 0}}))
    with pytest.raises(pydantic.ValidationError, match="mode"):
        spec.from_body(stack_body("demo", {"voltdb": {"mode": "sideways"}}))


def test_external_back_ends_get_their_logins_from_their_secrets() -> None:
    _stack, manifests = build("secured")
    cm = next(m for m in manifests if m["metadata"]["name"] == "demo-config")["data"]
    assert cm["CELLCELLY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"  # a login, no protocol given
    assert cm["CELLCELLY_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert cm["CELLCELLY_KAFKA_SSL_CAFILE"] == "/etc/cellcelly/kafka/ca.crt"
    ocs = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "demo-ocs")
    pod = ocs["spec"]["template"]["spec"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["containers"][0]["env"] if "valueFrom" in e}
    assert env["CELLCELLY_KAFKA_USERNAME"] == {"name": "kafka-creds", "key": "username", "optional": True}
    assert env["CELLCELLY_KAFKA_PASSWORD"] == {"name": "kafka-creds", "key": "password", "optional": True}
    assert env["CELLCELLY_VOLTDB_USERNAME"] == {"name": "voltdb-creds", "key": "username"}
    assert env["CELLCELLY_VOLTDB_PASSWORD"] == {"name": "voltdb-creds", "key": "password"}
    assert env["CELLCELLY_HAZELCAST_USERNAME"] == {"name": "hz-creds", "key": "username"}
    assert env["CELLCELLY_HAZELCAST_PASSWORD"] == {"name": "hz-creds", "key": "password"}
    # a login only where its back end is dialled (services.BACKEND_USERS): the SF uses no cache
    sf = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "demo-sf")
    sf_env = {e["name"] for e in sf["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "CELLCELLY_HAZELCAST_PASSWORD" not in sf_env and "CELLCELLY_KAFKA_PASSWORD" in sf_env
    (ca,) = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
    assert ca["secret"] == {
        "secretName": "kafka-creds",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
        "optional": True,
    }
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kafka-ca")
    assert mount["mountPath"] + "/ca.crt" == cm["CELLCELLY_KAFKA_SSL_CAFILE"]


def test_settings_the_operator_writes_are_settings_the_services_read() -> None:
    """Every CELLCELLY_ name in the ConfigMap and env is a field of the services' Settings."""
    from cellcelly.settings import Settings

    fields = {f"CELLCELLY_{name.upper()}" for name in Settings.model_fields}
    for name in sorted(SPECS):
        _stack, manifests = build(name)
        cm = next(m for m in manifests if m["metadata"]["name"] == "demo-config")["data"]
        names = set(cm)
        for m in manifests:
            if m["kind"] == "Deployment" and m["metadata"]["name"].split("-", 1)[1] in spec.SERVICES:
                names |= {e["name"] for e in m["spec"]["template"]["spec"]["containers"][0]["env"]}
        user_env = {k for s in SPECS[name].get("services", {}).values() for k in s.get("env", {})}
        assert names - user_env <= fields, (name, sorted(names - user_env - fields))


@pytest.mark.parametrize(
    ("external", "protocol", "cafile"),
    [
        ({"bootstrapServers": "k:9092"}, "PLAINTEXT", False),
        ({"bootstrapServers": "k:9092", "securityProtocol": "SSL"}, "SSL", False),
        (
            {"bootstrapServers": "k:9092", "securityProtocol": "SASL_PLAINTEXT", "secretRef": {"name": "k"}},
            "SASL_PLAINTEXT",
            False,
        ),
        ({"bootstrapServers": "k:9092", "securityProtocol": "SSL", "secretRef": {"name": "k"}}, "SSL", True),
    ],
)
def test_kafka_security_protocol_and_ca(external: dict[str, Any], protocol: str, cafile: bool) -> None:
    body = stack_body("demo", {"kafka": {"mode": "external", "external": external}})
    config = kafka.client_config(spec.from_body(body))
    assert config["CELLCELLY_KAFKA_SECURITY_PROTOCOL"] == protocol
    assert ("CELLCELLY_KAFKA_SSL_CAFILE" in config) is cafile
    assert ("CELLCELLY_KAFKA_SASL_MECHANISM" in config) is protocol.startswith("SASL_")


def test_the_dgw_allows_the_peers_the_stack_names() -> None:
    """spec.services.dgw.allowedPeers becomes CELLCELLY_DGW_ALLOWED_PEERS; none by default (the DGW
    then refuses every CER with 3010), and the CRD refuses an entry that is not a name pattern."""
    plain = spec.from_body(stack_body("demo", SPECS["external"]))
    assert services.config_data(plain)["CELLCELLY_DGW_ALLOWED_PEERS"] == ""
    body = stack_body("demo", SPECS["external"])
    peers_given = ["pgw1.epc.example.net", "@example.net"]
    body["spec"].setdefault("services", {})["dgw"] = {"allowedPeers": peers_given}
    named = spec.from_body(body)
    assert services.config_data(named)["CELLCELLY_DGW_ALLOWED_PEERS"] == "pgw1.epc.example.net,@example.net"
    assert named.spec.services.dgw.replicas == 2  # the per-service defaults still apply
    schema = crd_schema()
    require(schema is not None, "crds/cellcellystacks.cellcelly.io.yaml missing")
    assert schema is not None
    peers = schema["properties"]["spec"]["properties"]["services"]["properties"]["dgw"]["properties"]
    jsonschema.validate(["traffic.cellcelly.local", "*@realm.test"], peers["allowedPeers"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(["a,b"], peers["allowedPeers"])


def _env_of(manifests: list[dict[str, Any]], svc: str) -> dict[str, Any]:
    d = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == f"demo-{svc}")
    return {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_ocs_and_dgw_share_the_ocs_api_key_from_a_secret_the_operator_makes() -> None:
    """Charging needs CELLCELLY_OCS_API_KEY (issue 12 §5): OCS and DGW read the same Secret key, never
    an inline value; no other service gets it; by default the stack's own Secret, made once."""
    stack, manifests = build("minimal")
    for svc in ("ocs", "dgw"):
        ref = _env_of(manifests, svc)["CELLCELLY_OCS_API_KEY"]
        assert ref == {
            "name": "CELLCELLY_OCS_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "demo-ocs-api-key", "key": "key"}},  # not optional
        }
    for svc in set(spec.SERVICES) - {"ocs", "dgw"}:
        assert "CELLCELLY_OCS_API_KEY" not in _env_of(manifests, svc)
    secret = services.generated_ocs_api_key(stack, "k" * 43)
    assert secret is not None
    kubernetes_validate.validate(secret, K8S, strict=True)
    assert secret["metadata"]["name"] == "demo-ocs-api-key" and secret["stringData"] == {"key": "k" * 43}
    (owner,) = secret["metadata"]["ownerReferences"]  # goes with the stack
    assert owner["kind"] == "CellCellyStack" and owner["name"] == "demo"
    assert not any(m["kind"] == "Secret" for m in manifests)  # not a child to patch: made once (reconcile)


def test_a_users_ocs_api_key_secret_replaces_the_generated_one() -> None:
    schema = crd_schema()
    require(schema is not None, "crds/cellcellystacks.cellcelly.io.yaml missing")
    assert schema is not None
    for ref, expected in (
        ({"name": "my-ocs-key"}, {"name": "my-ocs-key", "key": "key"}),
        ({"name": "my-ocs-key", "key": "shared"}, {"name": "my-ocs-key", "key": "shared"}),
    ):
        raw = {"version": "0.1.0", "secrets": {"ocsApiKeyRef": ref}}
        jsonschema.validate(stack_body("demo", raw), schema)
        for body in (raw, apply_defaults(schema["properties"]["spec"], raw)):  # as sent, as defaulted
            stack = spec.from_body(stack_body("demo", body))
            manifests = children.build(stack)
            for svc in ("ocs", "dgw"):
                assert (
                    _env_of(manifests, svc)["CELLCELLY_OCS_API_KEY"]["valueFrom"]["secretKeyRef"] == expected
                )
            assert services.generated_ocs_api_key(stack, "k" * 43) is None
    with pytest.raises(jsonschema.ValidationError):
        nameless = {"version": "0.1.0", "secrets": {"ocsApiKeyRef": {"key": "key"}}}
        jsonschema.validate(stack_body("demo", nameless), schema)


def test_the_ivr_trusts_the_peers_the_stack_names() -> None:
    """spec.services.ivr.trustedPeers becomes CELLCELLY_IVR_TRUSTED_PEERS; none by default (the IVR
    then answers every INVITE 403), an entry that is no address or network is refused by the model
    (before the IVR pod would fail to start on it) and, by its characters, by the CRD."""
    import pydantic

    plain = spec.from_body(stack_body("demo", SPECS["external"]))
    assert services.config_data(plain)["CELLCELLY_IVR_TRUSTED_PEERS"] == ""
    body = stack_body("demo", SPECS["external"])
    peers_given = ["10.20.0.5", "10.30.0.0/16", "fd00::/8"]
    body["spec"].setdefault("services", {})["ivr"] = {"trustedPeers": peers_given}
    named = spec.from_body(body)
    assert services.config_data(named)["CELLCELLY_IVR_TRUSTED_PEERS"] == "10.20.0.5,10.30.0.0/16,fd00::/8"
    assert named.spec.services.ivr.replicas == 1  # the per-service defaults still apply
    assert named.spec.services.ivr.service.port == 5060
    for wrong in ("sbc.example.net", "10.0.0.0/33", "10.0.0.1,10.0.0.2", ""):
        body["spec"]["services"]["ivr"] = {"trustedPeers": [wrong]}
        with pytest.raises(pydantic.ValidationError, match="trusted"):
            spec.from_body(body)
    schema = crd_schema()
    require(schema is not None, "crds/cellcellystacks.cellcelly.io.yaml missing")
    assert schema is not None
    peers = schema["properties"]["spec"]["properties"]["services"]["properties"]["ivr"]["properties"]
    good = ["192.0.2.10", "198.51.100.0/24", "2001:db8::1", "2001:db8::/32"]
    jsonschema.validate(good, peers["trustedPeers"])
    for wrong in ("sbc.example.net", "10.0.0.1,10.0.0.2", "10.0.0.0/1234", ""):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([wrong], peers["trustedPeers"])


def test_pod_disruption_budgets_can_be_turned_off_for_a_one_node_cluster() -> None:
    """On by default (one pod of a component at a time); off, no budget at all: on one node a
    budget keeping one of two OCS pods up would make `kubectl drain` wait forever."""
    two = {**SPECS["small"], "services": {"ocs": {"replicas": 2}, "dgw": {"replicas": 2}}}
    manifests = children.build(spec.from_body(stack_body("demo", two)))
    budgets = {m["metadata"]["name"] for m in manifests if m["kind"] == "PodDisruptionBudget"}
    assert {"demo-voltdb", "demo-kafka", "demo-ocs", "demo-dgw"} <= budgets
    off = children.build(
        spec.from_body(stack_body("demo", {**two, "podDisruptionBudgets": {"enabled": False}}))
    )
    assert [m for m in off if m["kind"] == "PodDisruptionBudget"] == []
    assert len(off) == len(manifests) - len(budgets)  # nothing else changes
