"""Chaos: the OCS, the SF and the DGW are killed (SIGKILL) at random while Gy traffic runs, and
every debit still yields exactly one usage record in the system of record.

Real parts only: `cellcelly ocs` (embedded balance store, outbox relay to Kafka), `cellcelly sf`
(Kafka → PostgreSQL) and `cellcelly dgw` run as processes; `cellcelly traffic` is the network;
the broker is the session's real Kafka and the record a real PostgreSQL. The killer draws its
victims and pauses from a seeded `random.Random`, so a failing run can be replayed.

After the storm every process is running again, the outbox drains, and the processes stop. A last
SF pass (a restarted SF, in this process) catches the group up. Then, for every subscriber, the
account the system of record implies (`account_from_record`: ledger minus usage, grants minus
consumption) must equal the balance store's account exactly. A lost usage record leaves the record
richer than the store, a doubled one poorer; the event-id primary key rules out exact copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from kafka_server import KafkaServer

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_kafka import KafkaBus
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.reconcile import account_from_record
from cellcelly.deploy.backends import open_backends
from cellcelly.domain.account import Account
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly.sf.sync import SyncFunction
from cellcelly_dev.devservers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

SUBSCRIBERS = 40
FIRST = 5390000000
PACKAGES = ["ANKARA", "RIZE", ""]  # with buckets, and wallet only
ROUNDS = 2  # every process is killed this many times, however slowly the machine starts them
SEED = 20261125


@dataclass
class Proc:
    """One `cellcelly` service process that the killer may kill and then starts again."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None  # a port that answers once the process serves; None: nothing to wait for
    log: Path
    proc: asyncio.subprocess.Process | None = None
    kills: int = 0

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cellcelly.cli", *self.args, env=self.env, stdout=out, stderr=out
            )
        if self.port is not None:
            await wait_for_port(self.port, self)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def wait_for_port(port: int, owner: Proc, seconds: float = 30.0, *, starting: bool = True) -> None:
    """Wait for `owner` to serve on `port`; while `starting`, its exit is a failure (otherwise the
    killer may have killed it and will start it again)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if starting and owner.proc is not None and owner.proc.returncode is not None:
            raise AssertionError(f"{owner.name} exited with {owner.proc.returncode}: see {owner.log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{owner.name} did not open port {port} within {seconds}s: see {owner.log}")


@dataclass
class Traffic:
    runs: int = 0
    answered: int = 0
    results: dict[str, int] = field(default_factory=dict)  # Result-Code -> answers


async def drive(env: dict[str, str], dgw: Proc, over: asyncio.Event, traffic: Traffic, log: Path) -> None:
    """`cellcelly traffic` against the DGW, in runs of a few seconds, until the storm is over; a run
    cut short by a killed DGW is followed by a new one (new session ids) once the DGW is back."""
    while not over.is_set():
        assert dgw.port is not None
        await wait_for_port(dgw.port, dgw, starting=False)
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "cellcelly.cli", "traffic", "--json"],
                *["--port", str(dgw.port), "--rate", "60", "--duration", "5"],
                *["--subscribers", str(SUBSCRIBERS), "--first-msisdn", str(FIRST), "--connections", "2"],
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=out,
            )
            stdout, _ = await proc.communicate()
        traffic.runs += 1
        with contextlib.suppress(ValueError):  # a run that never connected prints no report
            report = orjson.loads(stdout)
            traffic.answered += int(report["answers"])
            traffic.results.update(
                {k: traffic.results.get(k, 0) + v for k, v in report["result_counts"].items()}
            )


async def storm(procs: list[Proc], rng: random.Random, over: asyncio.Event) -> None:
    """Kill one process at a time and start it again, each of them ROUNDS times in a random order.
    A count, not a time: on a loaded machine slow starts left a 24-second storm one kill short."""
    try:
        for _ in range(ROUNDS):
            for victim in rng.sample(procs, len(procs)):
                await asyncio.sleep(rng.uniform(1.0, 2.5))
                await victim.kill()
                await asyncio.sleep(rng.uniform(0.1, 1.0))
                await victim.start()
    finally:
        over.set()


def outbox_pending(ocs_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ocs_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("cellcelly_outbox_pending "):
                return int(float(line.split()[1]))
    raise AssertionError("no cellcelly_outbox_pending in /metrics")


def view(account: Account | None) -> tuple[int, dict[str, int]]:
    assert account is not None
    return account.wallet, {b.id: b.remaining for b in account.buckets.values()}


async def test_every_debit_yields_exactly_one_usage_record_after_random_kills(
    kafka: KafkaServer, postgres_schema_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    http, wire, diameter = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "CELLCELLY_DATA_DIR": str(tmp_path / "data"),
        "CELLCELLY_DATABASE_URL": postgres_schema_url,
        "CELLCELLY_EVENT_BUS": "kafka",
        "CELLCELLY_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "CELLCELLY_SF_GROUP": f"chaos-sf-{tag}",  # the broker is shared: a group of its own
        "CELLCELLY_OCS_PORT": str(http),
        "CELLCELLY_OCS_WIRE_PORT": str(wire),
        "CELLCELLY_DGW_PORT": str(diameter),
        "CELLCELLY_DGW_OCS_ENDPOINTS": f"127.0.0.1:{wire}",
        "CELLCELLY_OCS_API_KEY": f"chaos-{uuid.uuid4().hex}",  # the OCS and the DGW share it
        "CELLCELLY_DGW_ALLOWED_PEERS": "traffic.cellcelly.local",  # `cellcelly traffic`
        "CELLCELLY_LOG_LEVEL": "WARNING",
    }
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_schema_url, sf_group=f"chaos-sf-{tag}"
    )
    msisdns = [str(FIRST + i) for i in range(SUBSCRIBERS)]
    components = open_backends(settings)  # provisioned before the storm; the ledger events wait in the outbox
    for i, msisdn in enumerate(msisdns):
        package = PACKAGES[i % len(PACKAGES)]
        components.accounts.open(
            SubscriberRecord(msisdn, "Deniz", "Kaya", f"{msisdn}@example.com", "active", package)
        )
    components.close()

    logs = tmp_path / "logs"
    logs.mkdir()
    ocs = Proc("ocs", ["ocs"], env, http, logs / "ocs.log")
    sf = Proc("sf", ["sf"], env, None, logs / "sf.log")
    dgw = Proc("dgw", ["dgw"], env, diameter, logs / "dgw.log")
    procs = [ocs, sf, dgw]
    traffic = Traffic()
    try:
        for proc in procs:
            await proc.start()
        over = asyncio.Event()
        await asyncio.gather(
            storm(procs, random.Random(SEED), over), drive(env, dgw, over, traffic, logs / "traffic.log")
        )
        # the storm is over and every process runs: let the relay empty the outbox
        deadline = time.monotonic() + 60
        while (pending := await asyncio.to_thread(outbox_pending, http)) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert pending == 0, f"{pending} events still in the outbox"
    finally:
        for proc in procs:
            await proc.stop()

    assert all(p.kills == ROUNDS for p in procs), {p.name: p.kills for p in procs}
    assert traffic.answered >= 1000, traffic

    # a restarted SF of the same group catches up whatever the killed ones left uncommitted
    records = SqlRecords(postgres_schema_url)
    bus = KafkaBus(kafka.bootstrap, client_id=f"chaos-{tag}")
    try:
        # (members killed without leaving hold their partitions until their session times out)
        last = SyncFunction(bus, records, group=f"chaos-sf-{tag}")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not await last.sync_once(timeout=1.0) and await last.consumer.lag() == 0:
                break
        assert await last.consumer.lag() == 0
        await last.close()

        store = EmbeddedBalanceStore(tmp_path / "data" / "balances", fsync="never")
        try:
            assert store.outbox() == []
            now = int(time.time())
            usage = 0
            for msisdn in msisdns:
                subscriber = records.get_subscriber(msisdn)
                assert subscriber is not None
                rebuilt = account_from_record(records, msisdn, subscriber.status, now)
                assert view(rebuilt) == view(store.get(msisdn)), msisdn
                usage += len(records.usage_for(msisdn, limit=100_000))
        finally:
            store.close()
    finally:
        await bus.close()
        records.close()
    # enough happened for the check to mean something
    assert usage >= 500, usage
