"""A typed, defaulted view of a CellCellyStack (crd_spec v1alpha1).

The CRD defaults most fields on a real API server, but the fake one (and an old object) may not: the
builders read the stack only through these models so every default lives in one place.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

Mode = Literal["managed", "external"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretRef(_Model):
    name: str = ""
    key: str = ""


class Storage(_Model):
    size: str = "10Gi"
    storage_class_name: str = ""


class Resources(_Model):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in (("requests", self.requests), ("limits", self.limits)) if v}


def _res(cpu: str, memory: str, limit: str) -> Resources:
    return Resources(requests={"cpu": cpu, "memory": memory}, limits={"memory": limit})


class Images(_Model):
    registry: str = "ghcr.io/cellcelly"
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    services: str = ""
    kafka: str = "apache/kafka:4.0.0"
    hazelcast: str = "hazelcast/hazelcast:5.5"
    voltdb: str = "voltdb/voltdb-community:10.1.1"
    oracle: str = "gvenzl/oracle-free:23-slim"
    postgresql: str = "postgres:16-bookworm"
    kafdrop: str = "obsidiandynamics/kafdrop:4.0.2"


KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


class KafkaExternal(_Model):
    bootstrap_servers: str = ""
    security_protocol: KafkaProtocol | None = None  # None: SASL_SSL with a secretRef, else PLAINTEXT
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    secret_ref: SecretRef = SecretRef()


class Toggle(_Model):
    enabled: bool = False


class Kafka(_Model):
    mode: Mode = "managed"
    replicas: int = Field(default=3, ge=1, le=9)
    storage: Storage = Storage()
    resources: Resources = _res("500m", "1Gi", "2Gi")
    external: KafkaExternal = KafkaExternal()
    ui: Toggle = Toggle()


class VoltExternal(_Model):
    servers: str = ""
    secret_ref: SecretRef = SecretRef()


class VoltDB(_Model):
    mode: Mode = "managed"
    replicas: int = Field(default=3, ge=1)
    kfactor: int = Field(default=1, ge=0)
    sites_per_host: int = Field(default=4, ge=1)
    storage: Storage = Storage()
    resources: Resources = _res("500m", "2Gi", "4Gi")
    external: VoltExternal = VoltExternal()


class HazelExternal(_Model):
    members: str = ""
    cluster_name: str = "cellcelly"
    secret_ref: SecretRef = SecretRef()


class Hazelcast(_Model):
    mode: Mode = "managed"
    replicas: int = Field(default=3, ge=1)
    resources: Resources = _res("250m", "512Mi", "1Gi")
    external: HazelExternal = HazelExternal()


class OracleExternal(_Model):
    dsn: str = ""
    standby_dsn: str = ""
    secret_ref: SecretRef = SecretRef()


class Failover(_Model):
    enabled: bool = False
    primary_check_seconds: int = Field(default=10, ge=1)
    fail_after_seconds: int | None = Field(default=None, ge=0)  # None: selfHealing.failoverDelaySeconds
    switch_back_requested: str | None = Field(default=None, max_length=64)  # a new value: back to the primary
    # deprecated: the side in force is status.oracle.active; read only to seed it (see from_body)
    active: Literal["primary", "standby"] | None = None


class Oracle(_Model):
    mode: Mode = "managed"
    storage: Storage = Storage(size="20Gi")
    resources: Resources = _res("1", "2Gi", "4Gi")
    external: OracleExternal = OracleExternal()
    failover: Failover = Failover()


class PostgresExternal(_Model):
    dsn: str = ""
    secret_ref: SecretRef = SecretRef()


class PostgreSQL(_Model):
    """The record on PostgreSQL (spec.record: PostgreSQL): an existing server, or one pod for trials."""

    mode: Mode = "managed"
    database: str = "cellcelly"
    storage: Storage = Storage()
    resources: Resources = _res("250m", "512Mi", "1Gi")
    external: PostgresExternal = PostgresExternal()


Record = Literal["Oracle", "PostgreSQL"]


class ServiceExposure(_Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = 0


class Smsc(_Model):
    host: str = ""
    port: int = 2775
    secret_ref: SecretRef = SecretRef()


class IngressTls(_Model):
    secret_name: str = ""


class MwIngress(_Model):
    enabled: bool = False
    host: str = ""
    class_name: str = ""
    tls: IngressTls = IngressTls()


class App(_Model):
    replicas: int = Field(default=1, ge=0, le=100)
    resources: Resources = _res("100m", "128Mi", "512Mi")
    env: dict[str, str] = Field(default_factory=dict)
    service: ServiceExposure = ServiceExposure()
    ingress: MwIngress = MwIngress()
    smsc: Smsc = Smsc()


class Dgw(App):
    # CELLCELLY_DGW_ALLOWED_PEERS, one entry an item; none by default (the DGW then refuses every peer)
    allowed_peers: tuple[str, ...] = ()


class Ivr(App):
    # CELLCELLY_IVR_TRUSTED_PEERS, one address or network an item; none by default (the IVR then
    # answers every INVITE 403). Checked here as the IVR parses them, so a typo stops the reconcile
    # with a clear error instead of an IVR pod failing at start.
    trusted_peers: tuple[str, ...] = ()

    @field_validator("trusted_peers")
    @classmethod
    def _addresses_or_networks(cls, peers: tuple[str, ...]) -> tuple[str, ...]:
        for peer in peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError as exc:
                raise ValueError(f"trustedPeers: {peer!r} is not an IP address or network ({exc})") from exc
        return peers


# replicas and service port of each service when not given (as the CRD's defaults)
SERVICE_DEFAULTS = {
    "ocs": (2, 0),
    "dgw": (2, 3868),
    "mw": (2, 0),
    "sf": (2, 0),
    "notifier": (1, 0),
    "sms": (0, 0),  # off until an SMSC is configured
    "ivr": (1, 5060),
}


def _app(replicas: int) -> App:
    return App(replicas=replicas)


class Services(_Model):
    ocs: App = _app(2)
    dgw: Dgw = Dgw(replicas=2, service=ServiceExposure(port=3868))
    mw: App = _app(2)
    sf: App = _app(2)
    notifier: App = _app(1)
    sms: App = _app(0)  # off until an SMSC is configured
    ivr: Ivr = Ivr(replicas=1, service=ServiceExposure(port=5060))

    @model_validator(mode="before")
    @classmethod
    def _per_service_defaults(cls, data: Any) -> Any:
        """The CRD defaults replicas and ports inside a given `ocs: {...}`, per service; so does the model."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, (replicas, port) in SERVICE_DEFAULTS.items():
            given = out.get(name)
            if not isinstance(given, dict):
                continue
            app = dict(given)
            app.setdefault("replicas", replicas)
            if port:
                exposure = dict(app.get("service") or {})
                exposure.setdefault("port", port)
                app["service"] = exposure
            out[name] = app
        return out

    def get(self, name: str) -> App:
        app: App = getattr(self, name)
        return app


class Secrets(_Model):
    token_secret_ref: SecretRef = SecretRef(name="cellcelly-mw", key="token-secret")
    admin_token_ref: SecretRef = SecretRef(name="cellcelly-admin", key="token")
    # the OCS API key: the user's Secret, or (no name) one the operator makes per stack
    ocs_api_key_ref: SecretRef = SecretRef()


class SelfHealing(_Model):
    enabled: bool = True
    max_restarts: int = Field(default=3, ge=0)
    window_seconds: int = Field(default=600, ge=1)
    not_ready_seconds: int = Field(default=300, ge=0)
    failover_delay_seconds: int = Field(default=30, ge=0)


class Monitoring(_Model):
    enabled: bool = False
    grafana_dashboard: bool = True


class NetworkPolicies(_Model):
    # on by default; off for a cluster whose CNI does not enforce them (the objects would only mislead)
    enabled: bool = True


class PodDisruptionBudgets(_Model):
    # on by default; off on a one-node cluster (a drain there evicts everything: a budget only blocks it)
    enabled: bool = True


class Placement(_Model):
    """Where every pod of the stack may run (the core/v1 fields, passed through as written)."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()


class StackStorage(_Model):
    deletion_policy: Literal["Retain", "Delete"] = "Retain"


class StackSpec(_Model):
    version: str = "0.1.0"
    images: Images = Images()
    kafka: Kafka = Kafka()
    voltdb: VoltDB = VoltDB()
    hazelcast: Hazelcast = Hazelcast()
    record: Record = "Oracle"
    oracle: Oracle = Oracle()
    postgresql: PostgreSQL = PostgreSQL()
    services: Services = Services()
    secrets: Secrets = Secrets()
    self_healing: SelfHealing = SelfHealing()
    monitoring: Monitoring = Monitoring()
    network_policies: NetworkPolicies = NetworkPolicies()
    pod_disruption_budgets: PodDisruptionBudgets = PodDisruptionBudgets()
    storage: StackStorage = StackStorage()
    placement: Placement = Placement()

    @property
    def oracle_fail_after(self) -> int:
        """Seconds the Oracle primary must be unreachable: its own setting, else the stack-wide delay."""
        own = self.oracle.failover.fail_after_seconds
        return self.self_healing.failover_delay_seconds if own is None else own

    @property
    def record_component(self) -> str:
        """The back end that holds the record: its section is read, the other one's ignored."""
        return "postgresql" if self.record == "PostgreSQL" else "oracle"

    def backend_modes(self) -> dict[str, Mode]:
        """Mode of each back end the stack uses (the record not chosen is no back end of it)."""
        names = ("kafka", "voltdb", "hazelcast", self.record_component)
        return {name: getattr(self, name).mode for name in names}

    @property
    def services_image(self) -> str:
        return self.images.services or f"{self.images.registry}/cellcelly:{self.version}"


SERVICES = ("ocs", "dgw", "mw", "sf", "notifier", "sms", "ivr")
BACKENDS = ("kafka", "voltdb", "hazelcast", "oracle", "postgresql")
PAUSE_ANNOTATION = "cellcelly.io/paused"


@dataclass(frozen=True)
class Stack:
    """One CellCellyStack: identity, the defaulted spec, and the Oracle side in force."""

    name: str
    namespace: str
    uid: str
    spec: StackSpec
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    oracle_active: Literal["primary", "standby"] = "primary"

    @property
    def paused(self) -> bool:
        return self.annotations.get(PAUSE_ANNOTATION, "").lower() == "true"

    def child(self, component: str) -> str:
        return f"{self.name}-{component}"

    def dns(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc.cluster.local"


def stack_uid(meta: dict[str, Any]) -> str:
    """The object's uid, as the API server gave it: every child's owner reference and the Kafka cluster
    id hang on it, so a body without one (never served by an API server) is refused, not patched up."""
    uid = meta.get("uid")
    if not uid:
        raise ValueError(f"stack {meta.get('namespace')}/{meta.get('name')} has no metadata.uid")
    return str(uid)


def from_body(body: dict[str, Any]) -> Stack:
    meta = body.get("metadata", {}) or {}
    spec = StackSpec.model_validate(body.get("spec", {}) or {})
    status = body.get("status", {}) or {}
    # status holds the side in force; spec.oracle.failover.active (written there by operators before
    # the move to status) only seeds a stack whose status has none yet; once status has it, never read
    active = (status.get("oracle") or {}).get("active") or spec.oracle.failover.active
    return Stack(
        name=meta["name"],
        namespace=meta.get("namespace") or "default",
        uid=stack_uid(meta),
        spec=spec,
        generation=int(meta.get("generation") or 1),
        annotations=dict(meta.get("annotations") or {}),
        oracle_active="standby" if active == "standby" else "primary",
    )


def short_hash(data: object) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()[:16]
