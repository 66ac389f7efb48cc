"""Kafka in KRaft mode (every node broker and controller), and Kafdrop beside it when asked for."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

from cellcelly_operator.labels import Manifest, metadata, selector
from cellcelly_operator.spec import Stack
from cellcelly_operator.workloads import (
    config_map,
    container_security,
    headless_name,
    http_probe,
    pdb,
    pod_dns,
    pod_env_identity,
    pod_security,
    pvc_template,
    service,
    statefulset,
    tcp_probe,
)

COMPONENT = "kafka"
CLIENT_PORT = 9092
CONTROLLER_PORT = 9093
KAFKA_UID = 1000  # appuser in apache/kafka
DATA_DIR = "/var/lib/kafka/data"
CONFIG_DIR = "/etc/kafka/cellcelly"  # server.properties from the ConfigMap
BIN_DIR = "/opt/kafka/bin"  # the apache/kafka image's scripts
SASL_MECHANISM = "SCRAM-SHA-512"
USERS_COMPONENT = "kafka-users"
# One SCRAM user per client of the managed Kafka, each pod holding only its own password, and ACLs
# (StandardAuthorizer, nothing allowed without one) giving each only what its service does: see ACLS.
CLIENT_USERS = ("ocs", "dgw", "sf", "notifier", "kafdrop")
BROKER_USER = "broker"  # inter-broker, SCRAM on the client listener
CONTROLLER_USER = "controller"  # the controller quorum's PLAIN login
SCRAM_USERS = (*CLIENT_USERS, BROKER_USER)
# cellcelly.ports.event_bus's topics and the consumer groups of cellcelly.sf.sync and .notifier.service
# (the operator does not import the services; a test checks they agree)
USAGE, LEDGER, SUBSCRIBER = "cellcelly.usage.v1", "cellcelly.ledger.v1", "cellcelly.subscriber.v1"
NOTIFICATIONS, DEAD_LETTER = "cellcelly.notifications.v1", "cellcelly.dead-letter.v1"
SF_GROUP, NOTIFIER_GROUP = "cellcelly-sf", "cellcelly-notifier"


def _topics(*names: str) -> tuple[str, ...]:
    return tuple(arg for name in names for arg in ("--topic", name))


# (user, resources, operations): one `kafka-acls.sh --add` each. The OCS relays its outbox (writes
# usage, ledger, subscriber and notification events); the SF reads usage and ledger in its group and
# writes dead letters; the notifier reads notifications in its group; the DGW tails the ledger with no
# group (cellcelly.application.changes: every replica reads it whole); Kafdrop looks at everything.
# Create: every bus makes the topics it uses (KafkaBus.ensure_topics), producer or consumer.
ACLS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("ocs", _topics(USAGE, LEDGER, SUBSCRIBER, NOTIFICATIONS), ("Write", "Describe", "Create")),
    ("dgw", _topics(LEDGER), ("Read", "Describe", "Create")),
    ("sf", _topics(USAGE, LEDGER), ("Read", "Describe", "Create")),
    ("sf", _topics(DEAD_LETTER), ("Write", "Describe", "Create")),
    ("sf", ("--group", SF_GROUP), ("Read",)),
    ("notifier", _topics(NOTIFICATIONS), ("Read", "Describe", "Create")),
    ("notifier", ("--group", NOTIFIER_GROUP), ("Read",)),
    ("kafdrop", ("--topic", "*"), ("Read", "Describe", "DescribeConfigs")),
    ("kafdrop", ("--group", "*"), ("Describe",)),
    ("kafdrop", ("--cluster",), ("Describe", "DescribeConfigs")),
)
ACLS_DONE = "cellcelly: ACLs in place"  # the start script's line once every user and ACL is added


def cluster_id(stack: Stack) -> str:
    """KRaft wants a base64url UUID: the stack's uid (a UUID the API server gave), so a re-render never
    changes it."""
    return base64.urlsafe_b64encode(uuid.UUID(stack.uid).bytes).decode().rstrip("=")


def quorum_voters(stack: Stack) -> str:
    n = stack.spec.kafka.replicas
    return ",".join(f"{i}@{pod_dns(stack, COMPONENT, i)}:{CONTROLLER_PORT}" for i in range(n))


def bootstrap(stack: Stack) -> str:
    if stack.spec.kafka.mode == "external":
        return stack.spec.kafka.external.bootstrap_servers
    return f"{stack.dns(stack.child(COMPONENT))}:{CLIENT_PORT}"


CA_DIR = "/etc/cellcelly/kafka"  # where the services find the external Kafka's CA (the Secret's ca.crt)


def security_protocol(stack: Stack) -> str:
    """How the services reach Kafka: the managed one asks for a SCRAM login (no TLS in-cluster); an
    external one with a login and no protocol given is taken to want SASL over TLS (what managed Kafka
    offerings serve)."""
    if stack.spec.kafka.mode != "external":
        return "SASL_PLAINTEXT"
    ext = stack.spec.kafka.external
    if ext.security_protocol is not None:
        return ext.security_protocol
    return "SASL_SSL" if ext.secret_ref.name else "PLAINTEXT"


def ca_file(stack: Stack) -> str | None:
    """Where the services find the CA of an external Kafka over TLS (its Secret's ca.crt, mounted)."""
    if security_protocol(stack).endswith("SSL") and stack.spec.kafka.external.secret_ref.name:
        return f"{CA_DIR}/ca.crt"
    return None


def client_config(stack: Stack) -> dict[str, str]:
    """CELLCELLY_KAFKA_* the services read (the login itself comes from the Secret, as env)."""
    protocol = security_protocol(stack)
    out = {"CELLCELLY_KAFKA_BOOTSTRAP": bootstrap(stack), "CELLCELLY_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL_"):
        managed = stack.spec.kafka.mode != "external"
        out["CELLCELLY_KAFKA_SASL_MECHANISM"] = (
            SASL_MECHANISM if managed else stack.spec.kafka.external.sasl_mechanism
        )
    cafile = ca_file(stack)
    if cafile is not None:
        out["CELLCELLY_KAFKA_SSL_CAFILE"] = cafile
    return out


def build(stack: Stack) -> list[Manifest]:
    kafka = stack.spec.kafka
    out: list[Manifest] = []
    if kafka.mode == "managed":
        out += _managed(stack)
    if kafka.ui.enabled:
        out += _kafdrop(stack)
    return out


def server_properties(
    stack: Stack,
    *,
    bind_host: str = "",
    client_port: int = CLIENT_PORT,
    controller_port: int = CONTROLLER_PORT,
    voters: str | None = None,
    log_dirs: str = f"{DATA_DIR}/logs",
) -> str:
    """The managed broker's server.properties (a ConfigMap): no secret in it. Node id, advertised host
    and passwords are `${env:...}`, resolved by Kafka's EnvVarConfigProvider from the pod's env (the
    passwords by secretKeyRef). Every listener asks for a login: clients and brokers SCRAM-SHA-512 on
    CLIENT, the controllers PLAIN on CONTROLLER (KRaft controllers cannot use SCRAM: its credentials
    live in the metadata log they serve). The keyword arguments exist for the test that starts a real
    Kafka with this same file on 127.0.0.1."""
    n = stack.spec.kafka.replicas
    scram_module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain_module = "org.apache.kafka.common.security.plain.PlainLoginModule"
    controller_pw = "${env:CONTROLLER_PASSWORD}"
    lines = {
        "config.providers": "env",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "process.roles": "broker,controller",
        "node.id": "${env:NODE_ID}",
        "controller.quorum.voters": voters if voters is not None else quorum_voters(stack),
        "listeners": f"CLIENT://{bind_host}:{client_port},CONTROLLER://{bind_host}:{controller_port}",
        "advertised.listeners": f"CLIENT://${{env:ADVERTISED_HOST}}:{client_port}",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "CLIENT",
        "controller.listener.names": "CONTROLLER",
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
        "listener.name.client.scram-sha-512.sasl.jaas.config": (
            f'{scram_module} required username="{BROKER_USER}"'
            f' password="${{env:{password_var(BROKER_USER)}}}";'
        ),
        # nothing without an ACL; the brokers and controllers themselves are super users
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{BROKER_USER};User:{CONTROLLER_USER}",
        "allow.everyone.if.no.acl.found": "false",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            f'{plain_module} required username="{CONTROLLER_USER}" password="{controller_pw}"'
            f' user_{CONTROLLER_USER}="{controller_pw}";'
        ),
        "log.dirs": log_dirs,
        "offsets.topic.replication.factor": str(min(3, n)),
        "transaction.state.log.replication.factor": str(min(3, n)),
        "transaction.state.log.min.isr": str(min(2, n)),
        "share.coordinator.state.topic.replication.factor": str(min(3, n)),
        "share.coordinator.state.topic.min.isr": str(min(2, n)),
        "min.insync.replicas": str(min(2, n)),
        "default.replication.factor": str(min(3, n)),
        "auto.create.topics.enable": "true",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def password_var(user: str) -> str:
    """The broker pod's env var holding a SCRAM user's password (from the users Secret)."""
    return f"SCRAM_PASSWORD_{user.upper()}"


def admin_properties() -> str:
    """The ACL job's client settings: the broker user (a super user), its password from the pod's env."""
    return client_properties(BROKER_USER, password_var(BROKER_USER))


def client_properties(user: str, password_env: str) -> str:
    """A Kafka client's settings for a SCRAM login whose password the client's EnvVarConfigProvider
    resolves from the env var `password_env` (set by secretKeyRef), so none sits in a ConfigMap."""
    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return (
        "security.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism={SASL_MECHANISM}\n"
        "config.providers=env\n"
        "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider\n"
        f'sasl.jaas.config={module} required username="{user}" password="${{env:{password_env}}}";\n'
    )


def acl_commands(bin_dir: str, admin_config: str, bootstrap: str) -> list[str]:
    out = []
    for user, resources, operations in ACLS:
        ops = " ".join(f"--operation {op}" for op in operations)
        target = " ".join(f"'{part}'" if part == "*" else part for part in resources)
        out.append(
            f"{bin_dir}/kafka-acls.sh --bootstrap-server {bootstrap} --command-config {admin_config}"
            f" --add --allow-principal User:{user} {ops} {target}"
        )
    return out


def user_commands(bin_dir: str, admin_config: str, bootstrap: str) -> list[str]:
    """Each client user's SCRAM credential, added to the running cluster where it has none. A log
    formatted by an older operator version lacks the users added since (`--ignore-formatted` adds none
    to it); a user that has one keeps it (its password is never set again: no rotation). One describe
    of every user (a JVM start each costs seconds), then an alter only for those missing from it."""
    tool = f"{bin_dir}/kafka-configs.sh --bootstrap-server {bootstrap} --command-config {admin_config}"
    out = [f'users="$({tool} --describe --entity-type users)"']
    for user in CLIENT_USERS:
        add = (
            f"{tool} --alter --entity-type users --entity-name {user}"
            f' --add-config "{SASL_MECHANISM}=[password=${password_var(user)}]"'
        )
        out.append(f'{{ echo "$users" | grep -q "user-principal \'{user}\' .*{SASL_MECHANISM}=" || {add}; }}')
    return out


def start_script(
    stack: Stack,
    *,
    bin_dir: str = BIN_DIR,
    config_dir: str = CONFIG_DIR,
    client_port: int = CLIENT_PORT,
) -> str:
    """Format the log dir once with every SCRAM user (KIP-900: credentials exist before the first
    broker does, so inter-broker SCRAM works from the start), then run the broker, with a job beside it
    that, once the broker answers, adds the client users the cluster lacks (a log formatted by an older
    version: see user_commands) and the ACLs (again on every start: adding one twice changes nothing).
    The node id is the pod's ordinal: kafka-2 is voter 2 in the quorum list."""
    config = f"{config_dir}/server.properties"
    scram = " ".join(
        f'--add-scram "{SASL_MECHANISM}=[name={u},password=${password_var(u)}]"' for u in SCRAM_USERS
    )
    admin, at = f"{config_dir}/admin.properties", f"$ADVERTISED_HOST:{client_port}"
    job = " && ".join([*user_commands(bin_dir, admin, at), *acl_commands(bin_dir, admin, at)])
    return (
        'set -e; export NODE_ID="${POD_NAME##*-}"; '
        f'{bin_dir}/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config {config}'
        f" --ignore-formatted {scram}; "
        f"(until {job}; do sleep 5; done; echo '{ACLS_DONE}') & "
        f"exec {bin_dir}/kafka-server-start.sh {config}"
    )


def users_secret_name(stack: Stack) -> str:
    return stack.child(USERS_COMPONENT)


def generated_users_secret(stack: Stack, password: Callable[[], str]) -> Manifest:
    """The managed Kafka's logins, one password per key (the key is the user name), made once when
    missing and never overwritten: the broker stored them when it formatted its log. A user a newer
    version adds gets its key added to the existing Secret (reconcile, children.secret_additions) and
    its credential by the start script's job (user_commands)."""
    users = (*SCRAM_USERS, CONTROLLER_USER)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, USERS_COMPONENT, users_secret_name(stack)),
        "type": "Opaque",
        "stringData": {u: password() for u in users},
    }


def client_login(stack: Stack, user: str) -> list[dict[str, Any]]:
    """CELLCELLY_KAFKA_USERNAME/PASSWORD of one service on the managed Kafka (the password by
    secretKeyRef, never in the manifest); nothing for an external Kafka (its Secret: services.py)."""
    if stack.spec.kafka.mode != "managed" or user not in SCRAM_USERS:
        return []
    secret = {"secretKeyRef": {"name": users_secret_name(stack), "key": user}}
    return [
        {"name": "CELLCELLY_KAFKA_USERNAME", "value": user},
        {"name": "CELLCELLY_KAFKA_PASSWORD", "valueFrom": secret},
    ]


def _managed(stack: Stack) -> list[Manifest]:
    kafka = stack.spec.kafka
    n = kafka.replicas
    headless = headless_name(stack, COMPONENT)
    config_name = f"{stack.child(COMPONENT)}-config"
    users = users_secret_name(stack)

    def from_users(var: str, user: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": users, "key": user}}}

    env = [
        *pod_env_identity(),
        {"name": "CLUSTER_ID", "value": cluster_id(stack)},
        {"name": "ADVERTISED_HOST", "value": f"$(POD_NAME).{headless}.$(POD_NAMESPACE).svc.cluster.local"},
        *(from_users(password_var(u), u) for u in SCRAM_USERS),
        from_users("CONTROLLER_PASSWORD", CONTROLLER_USER),
    ]
    container = {
        "name": "kafka",
        "image": stack.spec.images.kafka,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "command": ["sh", "-c", start_script(stack)],
        "env": env,
        "ports": [
            {"name": "client", "containerPort": CLIENT_PORT},
            {"name": "controller", "containerPort": CONTROLLER_PORT},
        ],
        "readinessProbe": tcp_probe("client"),
        "livenessProbe": tcp_probe("controller", failures=6, initial=30),
        "resources": kafka.resources.manifest(),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    pod_spec = {
        "securityContext": pod_security(KAFKA_UID),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_name}}],
    }
    ports = [("client", CLIENT_PORT, "TCP"), ("controller", CONTROLLER_PORT, "TCP")]
    return [
        config_map(
            stack,
            COMPONENT,
            config_name,
            {"server.properties": server_properties(stack), "admin.properties": admin_properties()},
        ),
        service(stack, COMPONENT, ports, headless=True, name=headless),
        service(stack, COMPONENT, [("client", CLIENT_PORT, "TCP")]),
        statefulset(
            stack,
            COMPONENT,
            replicas=n,
            pod_spec=pod_spec,
            claims=[pvc_template(stack, COMPONENT, kafka.storage)],
        ),
        # losing more than one voter of three stops the controller quorum
        pdb(stack, COMPONENT, 1),
    ]


def kafdrop_properties() -> str:
    """Kafdrop's client settings on the managed Kafka: its own SCRAM login, the password resolved from
    its env (by secretKeyRef) by the Kafka client's EnvVarConfigProvider, so none sits in the ConfigMap."""
    return client_properties("kafdrop", "KAFDROP_KAFKA_PASSWORD")


def _kafdrop(stack: Stack) -> list[Manifest]:
    component = "kafdrop"
    meta = metadata(stack, component)
    container: dict[str, Any] = {
        "name": "kafdrop",
        "image": stack.spec.images.kafdrop,
        "imagePullPolicy": stack.spec.images.pull_policy,
        "env": [{"name": "KAFKA_BROKERCONNECT", "value": bootstrap(stack)}],
        "ports": [{"name": "http", "containerPort": 9000}],
        "readinessProbe": http_probe("/actuator/health", "http"),
        "livenessProbe": http_probe("/actuator/health", "http", failures=6),
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security(),
    }
    pod_spec: dict[str, Any] = {"securityContext": pod_security(1000), "containers": [container]}
    out: list[Manifest] = []
    if stack.spec.kafka.mode == "managed":
        config_name = stack.child(component)
        out.append(config_map(stack, component, config_name, {"kafka.properties": kafdrop_properties()}))
        secret = {"secretKeyRef": {"name": users_secret_name(stack), "key": "kafdrop"}}
        container["env"] += [
            {"name": "KAFKA_PROPERTIES_FILE", "value": "/etc/kafdrop/kafka.properties"},
            {"name": "KAFDROP_KAFKA_PASSWORD", "valueFrom": secret},
        ]
        container["volumeMounts"] = [{"name": "config", "mountPath": "/etc/kafdrop", "readOnly": True}]
        pod_spec["volumes"] = [{"name": "config", "configMap": {"name": config_name}}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(stack, component)},
            "template": {"metadata": {"labels": meta["labels"]}, "spec": pod_spec},
        },
    }
    return [*out, deployment, service(stack, component, [("http", 9000, "TCP")])]
