"""The operator's managed Kafka and VoltDB security, run for real: the broker config, start script and
Secret the operator generates start the locally cached Kafka 4.4.0 (every listener SASL, the SCRAM users
made at format time), and the operator's deployment.xml security section with its user secures a real
VoltDB 10.1.1. A service's adapter built from the env the operator gives that service (the ConfigMap
plus the Secret values behind its secretKeyRefs) works; a client without the login is refused.

Only the addresses differ from a pod's: 127.0.0.1 and free ports instead of pod DNS and 9092/9093.
The image's own scripts (kafka-storage.sh, kafka-server-start.sh, kafka-acls.sh) are stood in for by
a line each running the same Java classes (kafka-tools from `scripts/kafka.sh fetch-tools`). Skipped
where Java/Maven are missing; a failure under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from cellcelly_operator import children, kafka, services, spec, voltdb
from test_bus_kafka import drain, events

from cellcelly.adapters.bus_kafka import KafkaBus, KafkaBusError, KafkaSecurity
from cellcelly.deploy.backends import build_bus
from cellcelly.notifier.service import GROUP as NOTIFIER_GROUP
from cellcelly.ports.event_bus import DEAD_LETTER, LEDGER, NOTIFICATIONS, USAGE
from cellcelly.settings import Settings
from cellcelly.sf.sync import GROUP as SF_GROUP
from cellcelly_dev.devservers import KAFKA_SCRIPT, KafkaUnavailable, fetch_kafka, free_port, run_script
from cellcelly_testing import DOWNLOADS, require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

UID = "6f1c2a9e-0d4b-4c1e-9a57-2b3c4d5e6f70"


def stack(extra: dict[str, Any] | None = None) -> spec.Stack:
    body = {
        "metadata": {"name": "demo", "namespace": "telco", "uid": UID},
        "spec": {"kafka": {"replicas": 1}, "voltdb": {"replicas": 1, "kfactor": 0}, **(extra or {})},
    }
    return spec.from_body(body)


def by_name(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def resolve_env(container: dict[str, Any], secret: dict[str, Any], **override: str) -> dict[str, str]:
    """A container's env as the kubelet gives it: secretKeyRefs to the generated Secret read from it,
    downward-API fields for a pod demo-kafka-0; `override` for the addresses."""
    out: dict[str, str] = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            if ref["secretKeyRef"]["name"] == secret["metadata"]["name"]:  # other Secrets: not ours here
                out[item["name"]] = secret["stringData"][ref["secretKeyRef"]["key"]]
        elif "fieldRef" in ref:
            out[item["name"]] = {"metadata.name": "demo-kafka-0", "metadata.namespace": "telco"}[
                ref["fieldRef"]["fieldPath"]
            ]
        else:
            out[item["name"]] = item["value"]
    out.update(override)
    return out


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def kafka_lib() -> Path:
    return Path(os.environ.get("KAFKA_LIB", DOWNLOADS / "kafka-4.4.0" / "lib"))


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    def __init__(self, root: Path, client: int, controller: int, process: subprocess.Popen[bytes]) -> None:
        self.root, self.client, self.controller, self.process = root, client, controller, process

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client}"

    def log(self) -> str:
        path = self.root / "kafka.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture(scope="module")
def users() -> dict[str, Any]:
    """The users Secret as the operator generates it (reconcile: token_urlsafe passwords)."""
    return kafka.generated_users_secret(stack(), lambda: secrets.token_urlsafe(24))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, users: dict[str, Any]) -> Iterator[Broker]:
    with running_broker(tmp_path_factory.mktemp("operator-kafka"), users) as server:
        yield server


@contextlib.contextmanager
def running_broker(
    root: Path, users: dict[str, Any], formatted_with: tuple[str, ...] | None = None
) -> Iterator[Broker]:
    """The operator's start script run on a local Kafka; `formatted_with`: the log formatted beforehand
    with only these SCRAM users (as an older operator version left it, before a user was added)."""
    require(shutil.which("java") is not None, "java not found: Kafka needs a JDK 17+")
    try:
        fetch_kafka()
        run_script(KAFKA_SCRIPT, KafkaUnavailable, "fetch-tools", timeout=600)
    except KafkaUnavailable as exc:
        require(False, f"Kafka cannot run here: {exc}")
    lib = kafka_lib()
    (root / "log4j2.properties").write_text(
        "status = warn\nappender.f.type = File\nappender.f.name = F\n"
        f"appender.f.fileName = {root}/kafka.log\nappender.f.layout.type = PatternLayout\n"
        "appender.f.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\nrootLogger.appenderRef.f.ref = F\n"
    )
    classpath = f"{lib}/*:{lib.parent / 'tools'}/*"
    java = f'java -Xms128m -Xmx512m -Dlog4j2.configurationFile={root}/log4j2.properties -cp "{classpath}"'
    bin_dir = root / "bin"
    bin_dir.mkdir()
    mains = (
        ("kafka-storage.sh", "kafka.tools.StorageTool"),
        ("kafka-server-start.sh", "kafka.Kafka"),
        ("kafka-acls.sh", "org.apache.kafka.tools.AclCommand"),
        ("kafka-configs.sh", "org.apache.kafka.tools.ConfigCommand"),
    )
    for script, main in mains:
        (bin_dir / script).write_text(f'#!/bin/sh\nexec {java} {main} "$@"\n')
        (bin_dir / script).chmod(0o755)
    client, controller = free_port(), free_port()
    the_stack = stack()
    built = children.build(the_stack)
    sts = by_name(built, "StatefulSet", "demo-kafka")
    data = by_name(built, "ConfigMap", "demo-kafka-config")["data"]
    config = data["server.properties"]
    # the operator's file with only the addresses made local
    local = kafka.server_properties(
        the_stack,
        bind_host="127.0.0.1",
        client_port=client,
        controller_port=controller,
        voters=f"0@127.0.0.1:{controller}",
        log_dirs=str(root / "data"),
    )
    addresses = {"listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs"}
    assert {k: v for k, v in properties(local).items() if k not in addresses} == {
        k: v for k, v in properties(config).items() if k not in addresses
    }
    (root / "server.properties").write_text(local)
    (root / "admin.properties").write_text(data["admin.properties"])
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = resolve_env(container, users, ADVERTISED_HOST="127.0.0.1")
    script = kafka.start_script(the_stack, bin_dir=str(bin_dir), config_dir=str(root), client_port=client)
    assert container["command"] == ["sh", "-c", kafka.start_script(the_stack)]
    if formatted_with is not None:
        scram = [
            arg
            for u in formatted_with
            for arg in (
                "--add-scram",
                f"{kafka.SASL_MECHANISM}=[name={u},password={env[kafka.password_var(u)]}]",
            )
        ]
        subprocess.run(
            [str(bin_dir / "kafka-storage.sh"), "format", "--cluster-id", env["CLUSTER_ID"]]
            + ["--config", str(root / "server.properties"), *scram],
            env={"PATH": os.environ["PATH"], "HOME": str(root), **env, "NODE_ID": "0"},
            check=True,
            capture_output=True,
            timeout=120,
        )
    with (root / "stdout.log").open("wb") as out:
        process = subprocess.Popen(
            ["sh", "-c", script],
            env={"PATH": os.environ["PATH"], "HOME": str(root), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Broker(root, client, controller, process)
    try:
        deadline = time.monotonic() + 180
        # up, and the start script's ACL job done (until then each client would be refused)
        while not port_open(client) or kafka.ACLS_DONE not in (root / "stdout.log").read_text():
            assert process.poll() is None, f"Kafka exited: {(root / 'stdout.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"Kafka or its ACLs not ready in 180 s: {server.log()}"
            time.sleep(0.3)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def service_settings(svc: str, users: dict[str, Any], bootstrap: str) -> Settings:
    """Settings as `cellcelly <svc>` reads them in its pod: the stack ConfigMap plus its own env."""
    the_stack = stack()
    built = children.build(the_stack)
    config = dict(by_name(built, "ConfigMap", "demo-config")["data"])
    container = by_name(built, "Deployment", f"demo-{svc}")["spec"]["template"]["spec"]["containers"][0]
    env = {k: v for k, v in resolve_env(container, users).items() if k.startswith("CELLCELLY_KAFKA")}
    values = {**config, **env, "CELLCELLY_KAFKA_BOOTSTRAP": bootstrap}
    kafka_keys = {k: v for k, v in values.items() if k.startswith("CELLCELLY_KAFKA")}
    return Settings(
        event_bus="kafka", **{k.removeprefix("CELLCELLY_").lower(): v for k, v in kafka_keys.items()}
    )


def bus_of(svc: str, users: dict[str, Any], bootstrap: str) -> KafkaBus:
    settings = service_settings(svc, users, bootstrap)
    assert settings.kafka_security_protocol == "SASL_PLAINTEXT" and settings.kafka_username == svc
    bus = build_bus(settings)
    assert isinstance(bus, KafkaBus)
    return bus


async def test_each_service_does_its_job_with_its_own_login(broker: Broker, users: dict[str, Any]) -> None:
    """The OCS writes usage and notifications; the SF reads usage in its group and writes dead letters;
    the notifier reads notifications in its group: each with its own user, under its ACLs."""
    ocs, sf, notifier = (bus_of(s, users, broker.bootstrap) for s in ("ocs", "sf", "notifier"))
    try:
        await ocs.publish(events(USAGE, 10) + events(NOTIFICATIONS, 5))
        usage = sf.consumer(SF_GROUP, [USAGE, LEDGER])
        got = await drain(usage, 10, deadline=60.0)
        await usage.commit(got)
        assert sorted(r.key for r in got) == sorted(e.key for e in events(USAGE, 10))
        await sf.publish(events(DEAD_LETTER, 1))
        notices = notifier.consumer(NOTIFIER_GROUP, [NOTIFICATIONS])
        assert len(await drain(notices, 5, deadline=60.0)) == 5
    finally:
        for bus in (ocs, sf, notifier):
            await bus.close()


async def test_the_dgw_tails_the_ledger_with_its_own_login_and_reads_nothing_else(
    broker: Broker, users: dict[str, Any]
) -> None:
    """Every DGW replica reads the whole ledger with no group (cellcelly.application.changes: RAR and
    ASR after changes made by any process); its login reads notifications in no way."""
    ocs, dgw = bus_of("ocs", users, broker.bootstrap), bus_of("dgw", users, broker.bootstrap)
    try:
        tail = dgw.tail([LEDGER])
        await tail.start()
        await ocs.publish(events(LEDGER, 6))
        got = await drain(tail, 6, deadline=60.0)
        assert sorted(r.key for r in got) == sorted(e.key for e in events(LEDGER, 6))
        await ocs.publish(events(NOTIFICATIONS, 3))
        notices: list[Any] = []
        try:
            other = dgw.tail([NOTIFICATIONS])
            await other.start()
            end = time.monotonic() + 5
            while time.monotonic() < end:
                notices += await other.poll(timeout=0.5)
        except (KafkaBusError, KafkaError) as exc:
            assert "Authorization" in repr(exc) or "authoriz" in str(exc).lower(), exc
        assert notices == []
    finally:
        await ocs.close()
        await dgw.close()


@pytest.mark.parametrize("svc", ["sf", "notifier", "dgw"])
async def test_only_the_ocs_writes_charging_events(broker: Broker, users: dict[str, Any], svc: str) -> None:
    bus = bus_of(svc, users, broker.bootstrap)
    try:
        for topic in (USAGE, NOTIFICATIONS):
            with pytest.raises(KafkaBusError):
                await bus.publish(events(topic, 1))
    finally:
        await bus.close()


@pytest.mark.parametrize(("svc", "group"), [("ocs", "ocs"), ("notifier", "someone-else"), ("sf", SF_GROUP)])
async def test_a_service_reads_nothing_outside_its_acls(
    broker: Broker, users: dict[str, Any], svc: str, group: str
) -> None:
    """Notifications are there to read, but not for the OCS (no Read), not in a group that is not the
    notifier's, not for the SF (usage and ledger only)."""
    writer = bus_of("ocs", users, broker.bootstrap)
    bus = bus_of(svc, users, broker.bootstrap)
    consumer = bus.consumer(group, [NOTIFICATIONS])
    got: list[Any] = []
    try:
        await writer.publish(events(NOTIFICATIONS, 3))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            got += await consumer.poll(timeout=0.5)
    except (KafkaBusError, KafkaError) as exc:
        assert "Authorization" in repr(exc) or "authoriz" in str(exc).lower(), exc
    finally:
        await writer.close()
        await bus.close()
    assert got == []


@pytest.mark.parametrize(
    ("listener", "security"),
    [
        ("client", None),
        ("client", ("SCRAM-SHA-512", "ocs", "not-the-password")),
        ("client", ("SCRAM-SHA-512", "nobody", "x")),
        ("client", ("PLAIN", "ocs", "from-the-secret")),  # only SCRAM is enabled for clients
        ("controller", None),
        ("controller", ("PLAIN", "ocs", "from-the-secret")),  # a client's login is no controller's
    ],
    ids=[
        "no-login",
        "wrong-password",
        "unknown-user",
        "plain",
        "controller-anonymous",
        "controller-client-login",
    ],
)
async def test_no_listener_takes_a_client_without_the_right_login(
    broker: Broker, users: dict[str, Any], listener: str, security: tuple[str, str, str] | None
) -> None:
    port = broker.client if listener == "client" else broker.controller
    if security is None:
        login = KafkaSecurity()
    else:
        mechanism, user, password = security
        password = users["stringData"]["ocs"] if password == "from-the-secret" else password
        login = KafkaSecurity("SASL_PLAINTEXT", mechanism, user, password)  # type: ignore[arg-type]
    bus = KafkaBus(f"127.0.0.1:{port}", publish_timeout=5.0, security=login)
    try:
        with pytest.raises(KafkaBusError):
            await bus.publish(events(f"test.refused.{uuid.uuid4().hex[:8]}", 1))
    finally:
        await bus.close()


def test_the_broker_logged_the_refusals_as_authentication_failures(broker: Broker) -> None:
    """The refusals above were the broker saying no to the login (not a port that was never open)."""
    assert re.search(r"[Ff]ailed authentication", broker.log()), broker.log()


def test_a_log_formatted_with_every_user_has_no_password_set_again(broker: Broker) -> None:
    """The start script's job adds only the users the cluster lacks (it describes each first): on a log
    formatted with all of them it sets none (kafka-configs prints a line for each one it sets)."""
    out = (broker.root / "stdout.log").read_text()
    assert kafka.ACLS_DONE in out and "Completed updating config for user" not in out, out[-3000:]


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory, users: dict[str, Any]) -> Iterator[Broker]:
    """A broker whose log an operator version before the DGW's login formatted (no `dgw` user), started
    by this version's start script with the Secret the reconcile completed (the `dgw` entry added)."""
    before = tuple(u for u in kafka.SCRAM_USERS if u != "dgw")
    with running_broker(tmp_path_factory.mktemp("operator-kafka-upgrade"), users, before) as server:
        yield server


async def test_a_user_added_by_a_newer_version_reaches_a_formatted_log(
    upgraded: Broker, users: dict[str, Any]
) -> None:
    """`--ignore-formatted` adds no user to a formatted log: the job beside the broker adds `dgw`, whose
    tail of the ledger then works, and sets no other password (the OCS still logs in with its own)."""
    out = (upgraded.root / "stdout.log").read_text()
    set_again = re.findall(r"Completed updating config for user (\S+)\.?", out)
    assert [u.rstrip(".") for u in set_again] == ["dgw"], out[-3000:]
    ocs, dgw = bus_of("ocs", users, upgraded.bootstrap), bus_of("dgw", users, upgraded.bootstrap)
    try:
        tail = dgw.tail([LEDGER])
        await tail.start()
        await ocs.publish(events(LEDGER, 4))
        got = await drain(tail, 4, deadline=60.0)
        assert sorted(r.key for r in got) == sorted(e.key for e in events(LEDGER, 4))
    finally:
        await ocs.close()
        await dgw.close()


# --- VoltDB ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def volt_login() -> dict[str, Any]:
    return voltdb.generated_secret(stack(), secrets.token_urlsafe(24))


@pytest.fixture(scope="module")
def secured_voltdb(tmp_path_factory: pytest.TempPathFactory, volt_login: dict[str, Any]) -> Iterator[str]:
    """VoltDB started with the operator's security section, its placeholder replaced by the start
    script's own command (the same sed the pod runs)."""
    from cellcelly_dev.devservers import VoltDBUnavailable, voltdb_missing, voltdb_server

    missing = voltdb_missing()
    require(missing is None, f"VoltDB cannot run here: {missing}")
    root = tmp_path_factory.mktemp("operator-voltdb")
    built = children.build(stack())
    template = by_name(built, "ConfigMap", "demo-voltdb-deployment")["data"]["deployment.xml"]
    (root / "template.xml").write_text(template)
    sts = by_name(built, "StatefulSet", "demo-voltdb")
    env = resolve_env(sts["spec"]["template"]["spec"]["containers"][0], volt_login)
    assert (
        voltdb.materialise("/etc/voltdb/deployment.xml", f"{voltdb.ROOT}/deployment.xml")
        in (sts["spec"]["template"]["spec"]["containers"][0]["command"][-1])
    )
    subprocess.run(
        ["sh", "-c", voltdb.materialise(str(root / "template.xml"), str(root / "deployment.xml"))],
        env={"PATH": os.environ["PATH"], **env},
        check=True,
    )
    rendered = (root / "deployment.xml").read_text()
    security = rendered[rendered.index("  <security") : rendered.index("</deployment>")]
    assert volt_login["stringData"]["password"] in security and voltdb.PASSWORD_PLACEHOLDER not in rendered
    try:
        with voltdb_server(
            username=volt_login["stringData"]["username"],
            password=volt_login["stringData"]["password"],
            security_xml=security,
        ) as servers:
            yield servers
    except VoltDBUnavailable as exc:
        require(False, f"VoltDB cannot run here: {exc}")


@pytest.mark.parametrize("svc", services.BACKEND_USERS["voltdb"])
def test_each_voltdb_user_logs_in_with_the_stack_login(
    secured_voltdb: str, volt_login: dict[str, Any], svc: str
) -> None:
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore

    built = children.build(stack())
    container = by_name(built, "Deployment", f"demo-{svc}")["spec"]["template"]["spec"]["containers"][0]
    env = resolve_env(container, volt_login)
    settings = Settings(
        balance_store="voltdb",
        voltdb_servers=secured_voltdb,
        voltdb_username=env["CELLCELLY_VOLTDB_USERNAME"],
        voltdb_password=env["CELLCELLY_VOLTDB_PASSWORD"],
    )
    with VoltBalanceStore(
        settings.voltdb_servers,
        username=settings.voltdb_username,
        password=settings.voltdb_password.get_secret_value(),
    ) as store:
        list(store.msisdns())


@pytest.mark.parametrize(
    ("username", "password"), [("", ""), (voltdb.USER, "not-it")], ids=["no-login", "wrong-password"]
)
def test_voltdb_refuses_a_client_without_the_login(secured_voltdb: str, username: str, password: str) -> None:
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore, VoltUnavailable

    with pytest.raises(VoltUnavailable, match="Authentication failed"):
        VoltBalanceStore(secured_voltdb, username=username, password=password, timeout=5.0)
