"""The CellCelly services: one image, one Deployment per service (`cellcelly <svc>`), wired by env vars.

Non-secret configuration is the `<stack>-config` ConfigMap (envFrom); secrets come by secretKeyRef.
The pod template carries a hash of the configuration, so a change (e.g. an Oracle failover) rolls the pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cellcelly_operator import hazelcast, kafka, oracle, postgresql, voltdb, workloads
from cellcelly_operator.labels import CONFIG_HASH, Manifest, metadata, selector
from cellcelly_operator.spec import SERVICES, App, Stack, short_hash
from cellcelly_operator.workloads import container_security, http_probe, pdb, pod_security, service, tcp_probe

SERVICES_UID = 10001  # the non-root user of the CellCelly image (images/)
DATA_DIR = "/var/lib/cellcelly"
OCS_API_KEY_VAR = "CELLCELLY_OCS_API_KEY"
OCS_API_KEY_COMPONENT = "ocs-api-key"

# The back ends each service dials (cellcelly/deploy/<service>.py's `alone`): a service's
# env carries only those logins, and a back end's NetworkPolicy admits only those services' pods. The DGW
# tails the ledger on Kafka (every replica hears every top-up and suspension: RAR/ASR) and answers an
# unknown MSISDN from its subscriber cache (Hazelcast), which loads a miss from VoltDB. Hazelcast admits
# the services that look a subscriber up; of them only the DGW dials it today (docs/architecture.md).
BACKEND_USERS: dict[str, tuple[str, ...]] = {
    "kafka": ("ocs", "dgw", "sf", "notifier"),
    "voltdb": ("ocs", "dgw", "mw", "notifier", "sms", "ivr"),
    "oracle": ("ocs", "mw", "sf", "notifier", "sms", "ivr"),
    "postgresql": ("ocs", "mw", "sf", "notifier", "sms", "ivr"),  # the record too: the same clients
    "hazelcast": ("ocs", "dgw", "mw", "sms", "ivr"),
}


def uses(svc: str, backend: str) -> bool:
    return svc in BACKEND_USERS[backend]


def record_url(stack: Stack) -> str:
    """CELLCELLY_DATABASE_URL: the chosen record's DSN, without a login (the services join it)."""
    if stack.spec.record_component == postgresql.COMPONENT:
        return postgresql.database_url(stack)
    return oracle.database_url(stack)


def record_credentials(stack: Stack) -> tuple[str, str, str]:
    """(secret, username key, password key) of the chosen record's login."""
    if stack.spec.record_component == postgresql.COMPONENT:
        return postgresql.credentials_secret(stack)
    return oracle.credentials_secret(stack)


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: str = "TCP"


DGW_METRICS_PORT = 9103
# the ports the network reaches, in the Service of the service's `service.type` (a LoadBalancer,
# say); its other ports (the DGW's metrics) go in a ClusterIP Service of their own
EDGE_PORTS = {"dgw": ("diameter",), "ivr": ("sip",)}


def ports(stack: Stack, svc: str) -> list[Port]:
    app = stack.spec.services.get(svc)
    match svc:
        case "ocs":
            return [Port("http", 8081), Port("wire", 8082)]
        case "dgw":
            return [Port("diameter", app.service.port or 3868), Port("metrics", DGW_METRICS_PORT)]
        case "mw":
            return [Port("http", 8080)]
        case "sf":
            return [Port("metrics", 9102)]
        case "ivr":
            return [Port("sip", app.service.port or 5060, "UDP")]
    return []  # notifier and sms only dial out


def config_name(stack: Stack) -> str:
    return f"{stack.name}-config"


STARTUP_WAIT_SECONDS = 300  # how long a service waits for its back ends when the stack starts


def config_data(stack: Stack) -> dict[str, str]:
    spec = stack.spec
    sms = spec.services.sms.smsc
    data = {
        "CELLCELLY_EVENT_BUS": "kafka",
        **kafka.client_config(stack),
        "CELLCELLY_BALANCE_STORE": "voltdb",
        "CELLCELLY_VOLTDB_SERVERS": voltdb.servers(stack),
        "CELLCELLY_CACHE": "hazelcast",
        "CELLCELLY_HAZELCAST_MEMBERS": hazelcast.members(stack),
        "CELLCELLY_HAZELCAST_CLUSTER": hazelcast.cluster_name(stack),
        "CELLCELLY_DATABASE_URL": record_url(stack),
        "CELLCELLY_DATA_DIR": DATA_DIR,
        "CELLCELLY_LOG_FORMAT": "json",
        # pods start together: each waits for its back ends (and loads VoltDB's schema if none has)
        # instead of crash-looping until they answer
        "CELLCELLY_STARTUP_WAIT_SECONDS": str(STARTUP_WAIT_SECONDS),
        "CELLCELLY_OCS_HOST": "0.0.0.0",
        "CELLCELLY_OCS_PORT": "8081",
        "CELLCELLY_OCS_WIRE_PORT": "8082",
        "CELLCELLY_MW_HOST": "0.0.0.0",
        "CELLCELLY_MW_PORT": "8080",
        "CELLCELLY_DGW_HOST": "0.0.0.0",
        "CELLCELLY_DGW_PORT": str(ports(stack, "dgw")[0].port),
        "CELLCELLY_DGW_OCS_ENDPOINTS": f"{stack.dns(stack.child('ocs'))}:8082",
        "CELLCELLY_DGW_ALLOWED_PEERS": ",".join(spec.services.dgw.allowed_peers),
        "CELLCELLY_SF_METRICS_HOST": "0.0.0.0",
        "CELLCELLY_SF_METRICS_PORT": "9102",
        "CELLCELLY_DGW_METRICS_HOST": "0.0.0.0",
        "CELLCELLY_DGW_METRICS_PORT": str(DGW_METRICS_PORT),
        "CELLCELLY_IVR_HOST": "0.0.0.0",
        "CELLCELLY_IVR_PORT": str(ports(stack, "ivr")[0].port),
        "CELLCELLY_IVR_TRUSTED_PEERS": ",".join(spec.services.ivr.trusted_peers),
    }
    if sms.host:
        data["CELLCELLY_SMSC_HOST"] = sms.host
        data["CELLCELLY_SMSC_PORT"] = str(sms.port)
    return data


def config_map(stack: Stack) -> Manifest:
    return workloads.config_map(stack, "config", config_name(stack), config_data(stack))


def ocs_api_key_secret(stack: Stack) -> tuple[str, str]:
    """(secret name, key) of the key the OCS and its DGWs share: the user's, or the stack's own."""
    ref = stack.spec.secrets.ocs_api_key_ref
    if ref.name:
        return ref.name, ref.key or "key"
    return stack.child(OCS_API_KEY_COMPONENT), "key"


def generated_ocs_api_key(stack: Stack, key: str) -> Manifest | None:
    """The stack's own OCS API key, made once when the user names none (never overwritten, so running
    OCS and DGW pods keep agreeing; owned by the stack, so it goes with it)."""
    if stack.spec.secrets.ocs_api_key_ref.name:
        return None
    name, item = ocs_api_key_secret(stack)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, OCS_API_KEY_COMPONENT, name),
        "type": "Opaque",
        "stringData": {item: key},
    }


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def env(stack: Stack, svc: str) -> list[dict[str, Any]]:
    """Explicit env: what comes from Secrets, then the service's own extra variables."""
    out: list[dict[str, Any]] = []
    if uses(svc, stack.spec.record_component):
        secret, user_key, password_key = record_credentials(stack)
        out += [
            _secret_env(oracle.USER_VAR, secret, user_key),
            _secret_env(oracle.PASSWORD_VAR, secret, password_key),
        ]
    out += backend_logins(stack, svc)
    refs = stack.spec.secrets
    if svc == "mw":
        out.append(
            _secret_env("CELLCELLY_MW_TOKEN_SECRET", refs.token_secret_ref.name, refs.token_secret_ref.key)
        )
    if svc in ("ocs", "mw"):
        # /admin (the OCS's, and the MW's vouchers, roles and catalogue) is off without a token: the
        # secret may be absent. Without it the MW has no first administrator to promote others
        out.append(
            _secret_env("CELLCELLY_ADMIN_TOKEN", refs.admin_token_ref.name, refs.admin_token_ref.key, True)
        )
    if svc in ("ocs", "dgw"):
        # not optional: without the key the OCS charges nobody and a DGW cannot charge, so a pod
        # waits (CreateContainerConfigError names the Secret) rather than start useless
        out.append(_secret_env(OCS_API_KEY_VAR, *ocs_api_key_secret(stack)))
    smsc = stack.spec.services.sms.smsc
    # the notifier binds to the SMSC too when one is set (its SMS channel): without the login a
    # real SMSC refuses it and no notice goes out
    if svc in ("sms", "notifier") and smsc.secret_ref.name:
        out.append(_secret_env("CELLCELLY_SMSC_SYSTEM_ID", smsc.secret_ref.name, "systemId", optional=True))
        out.append(_secret_env("CELLCELLY_SMSC_PASSWORD", smsc.secret_ref.name, "password"))
    app = stack.spec.services.get(svc)
    out += [{"name": k, "value": v} for k, v in sorted(app.env.items())]
    return out


def backend_logins(stack: Stack, svc: str) -> list[dict[str, Any]]:
    """The back-end logins of one service, each only to a service that dials it: the managed Kafka's
    per-service SCRAM user and the managed VoltDB's user (from the Secrets the operator makes), or an
    external back end's Secret (keys username, password). An external Kafka's are optional: its Secret
    may hold only a CA (TLS without SASL); SASL without a username fails clearly."""
    out: list[dict[str, Any]] = []
    if uses(svc, "kafka"):
        out += kafka.client_login(stack, svc)
    if uses(svc, "voltdb") and stack.spec.voltdb.mode == "managed":
        secret, user_key, password_key = voltdb.credentials_secret(stack) or ("", "", "")
        out.append(_secret_env("CELLCELLY_VOLTDB_USERNAME", secret, user_key))
        out.append(_secret_env("CELLCELLY_VOLTDB_PASSWORD", secret, password_key))
    for backend in ("kafka", "voltdb", "hazelcast"):
        part = getattr(stack.spec, backend)
        ref = part.external.secret_ref.name
        if part.mode != "external" or not ref or not uses(svc, backend):
            continue
        optional = backend == "kafka"
        prefix = f"CELLCELLY_{backend.upper()}"
        out.append(_secret_env(f"{prefix}_USERNAME", ref, "username", optional))
        out.append(_secret_env(f"{prefix}_PASSWORD", ref, "password", optional))
    return out


def _kafka_ca(stack: Stack) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): the external Kafka Secret's optional ca.crt as a file, for TLS."""
    if kafka.ca_file(stack) is None:
        return [], []
    ref = stack.spec.kafka.external.secret_ref.name
    items = [{"key": "ca.crt", "path": "ca.crt"}]
    volume = {"name": "kafka-ca", "secret": {"secretName": ref, "items": items, "optional": True}}
    return [volume], [{"name": "kafka-ca", "mountPath": kafka.CA_DIR, "readOnly": True}]


def config_hash(stack: Stack) -> str:
    return short_hash((config_data(stack), stack.spec.secrets, stack.spec.services.sms.smsc))


def _probes(svc: str, first: Port | None) -> dict[str, Any]:
    """Readiness, liveness, and a startup probe as long as the start-up wait: liveness begins only
    once the service listens, so a pod waiting for its back ends is not killed for it."""
    if first is None or first.protocol != "TCP":
        return {}  # nothing listens (notifier, sms) or UDP only (ivr): the process exiting is the signal
    starting = STARTUP_WAIT_SECONDS // 5 + 6
    if svc in ("ocs", "mw", "sf"):
        return {
            "startupProbe": http_probe("/healthz", first.name, period=5, failures=starting),
            "readinessProbe": http_probe("/readyz", first.name, period=5),
            "livenessProbe": http_probe("/healthz", first.name, period=10, failures=6),
        }
    return {
        "startupProbe": tcp_probe(first.name, period=5, failures=starting),
        "readinessProbe": tcp_probe(first.name, period=5),
        "livenessProbe": tcp_probe(first.name, failures=6),
    }


def deployment(stack: Stack, svc: str) -> Manifest:
    app: App = stack.spec.services.get(svc)
    meta = metadata(stack, svc)
    svc_ports = ports(stack, svc)
    ca_volumes, ca_mounts = _kafka_ca(stack) if uses(svc, "kafka") else ([], [])
    container: dict[str, Any] = {
        "name": svc,
        "image": stack.spec.services_image,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "command": ["cellcelly", svc],
        "envFrom": [{"configMapRef": {"name": config_name(stack)}}],
        "env": env(stack, svc),
        "resources": app.resources.manifest(),
        "securityContext": container_security(read_only_root=True),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            *ca_mounts,
        ],
    }
    if svc_ports:
        container["ports"] = [
            {"name": p.name, "containerPort": p.port, "protocol": p.protocol} for p in svc_ports
        ]
    container.update(_probes(svc, svc_ports[0] if svc_ports else None))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": app.replicas,
            "selector": {"matchLabels": selector(stack, svc)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": meta["labels"], "annotations": {CONFIG_HASH: config_hash(stack)}},
                "spec": {
                    "securityContext": pod_security(SERVICES_UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                        *ca_volumes,
                    ],
                },
            },
        },
    }


def ingress(stack: Stack) -> Manifest:
    ing = stack.spec.services.mw.ingress
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": stack.child("mw"), "port": {"name": "http"}}},
                }
            ]
        }
    }
    if ing.host:
        rule["host"] = ing.host
    spec: dict[str, Any] = {"rules": [rule]}
    if ing.class_name:
        spec["ingressClassName"] = ing.class_name
    if ing.tls.secret_name:
        spec["tls"] = [{"hosts": [ing.host] if ing.host else [], "secretName": ing.tls.secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(stack, "mw"),
        "spec": spec,
    }


def build(stack: Stack) -> list[Manifest]:
    out: list[Manifest] = [config_map(stack)]
    for svc in SERVICES:
        app = stack.spec.services.get(svc)
        out.append(deployment(stack, svc))
        edge = EDGE_PORTS.get(svc)
        outer: list[tuple[str, int, str]] = []
        inner: list[tuple[str, int, str]] = []
        for p in ports(stack, svc):
            (inner if edge is not None and p.name not in edge else outer).append((p.name, p.port, p.protocol))
        if outer:
            out.append(service(stack, svc, outer, kind=app.service.type if edge else "ClusterIP"))
        if inner:
            out.append(service(stack, svc, inner, name=f"{stack.child(svc)}-metrics"))
        if app.replicas >= 2:
            out.append(pdb(stack, svc, 1))
    if stack.spec.services.mw.ingress.enabled:
        out.append(ingress(stack))
    return out
