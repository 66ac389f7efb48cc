"""`make bench`: charging throughput and latency, each beside a baseline measured in the same run.

In-process: the charging service on the embedded store, against the raw store committing a
trivial change (what the store costs without rating and charging); the same two on a VoltDB
server started for the run (`scripts/voltdb.sh`; skipped, with the reason, where it cannot run).
Over HTTP: the OCS in its own process (pinned to one core) driven by a lean keep-alive HTTP/1.1
load generator (pinned to the other), against the same server's /noop route, which parses the
same request and encodes an answer the same way, without charging.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.application.charging import ChargingService
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.provisioning import open_account
from cellcelly.domain.units import Service
from cellcelly.ports.balance_store import BalanceStore, Commit
from cellcelly.runtime import tune_gc
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly.traffic.generator import BEHIND_LIMIT_MS
from cellcelly_dev import benchcheck, benchplot, with_tools_path
from cellcelly_dev.benchcheck import link_baseline
from cellcelly_dev.benchhttp import drive
from cellcelly_dev.benchstats import host_ticks, machine_pace, steal_pct, summarise
from cellcelly_dev.devservers import free_port
from cellcelly_dev.procs import cellcelly_children, command_of


def msisdn(i: int) -> str:
    return f"5{i:09d}"


def session_script(i: int) -> Iterator[tuple[RequestType, tuple[ServiceUsage, ...]]]:
    """The traffic mix: a voice call (I, U, U, T), a data session (I, U, U, T) and an SMS event."""
    kind = i % 3
    if kind == 2:
        yield RequestType.EVENT, (ServiceUsage(1, Service.SMS, 1, 0, "905551112233"),)
        return
    service, rg, quota = (Service.VOICE, 1, 60) if kind == 0 else (Service.DATA, 2, 1024 * 1024)
    dest = "905551112233" if service is Service.VOICE else ""
    yield RequestType.INITIAL, (ServiceUsage(rg, service, quota, 0, dest),)
    for _ in range(2):
        yield RequestType.UPDATE, (ServiceUsage(rg, service, quota, quota, dest),)
    yield RequestType.TERMINATE, (ServiceUsage(rg, service, 0, quota // 2, dest),)


def provision(store: BalanceStore, catalogue: CatalogueHolder, subscribers: int) -> None:
    now = int(time.time())
    for i in range(subscribers):

        def fn(acc: Account | None, i: int = i) -> tuple[None, Commit | None]:
            change = open_account(msisdn(i), catalogue.current, "ANKARA", now)
            return None, Commit(change.account, events=change.events)

        store.transact(msisdn(i), fn)


@contextlib.contextmanager
def provisioned_data_dir(subscribers: int) -> Iterator[Path]:
    """A data directory whose balance store holds `subscribers` ANKARA subscribers, for a server
    process to open; deleted afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        store = EmbeddedBalanceStore(data / "balances", fsync="never")
        provision(store, CatalogueHolder.from_file(DEFAULT_CATALOGUE), subscribers)
        store.close()
        yield data


def touch(acc: Account | None) -> tuple[None, Commit | None]:
    """The baselines' commit: a trivial change of one account, so only the store's own cost is timed."""
    assert acc is not None
    new = acc.copy()
    new.revision += 1
    return None, Commit(new)


def bench_in_process(seconds: float, subscribers: int) -> list[dict[str, Any]]:
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedBalanceStore(Path(tmp) / "b", fsync="interval")
        provision(store, catalogue, subscribers)

        # baseline: the store alone, committing a trivial change (`touch`) with its journal write
        service = ChargingService(store, catalogue)
        requests = interleaved_requests(WARM_UP + int(seconds * 50_000), subscribers)
        tune_gc()  # as the services do at start-up

        def baseline(i: int) -> bool:
            store.transact(msisdn(i % subscribers), touch)
            return True

        def charging(i: int) -> bool:
            return service.charge(requests[i]).result_code is ResultCode.SUCCESS

        results.append(_loop("in-process baseline: raw store commit", seconds, baseline))
        results.append(
            _loop("in-process charging (OCS engine + embedded store)", seconds, charging, len(requests))
        )
        link_baseline(results[1], results[0])
        store.close()
    return results


# Provisioning goes at the server's one-caller commit rate (~3,000/s): 10,000 take a few seconds.
# Not fewer: at ~10,000 charges/s, 2,000 subscribers each open ~1.2 sessions a second and keep every
# finished one for its retransmissions (300 s): an account grew by ~10 sessions in an 8 s row (the
# OCS held 10,801 sessions 5 s in, 28,184 at 10 s), and a charge's cost with it.
VOLTDB_SUBSCRIBERS = 10_000
CONCURRENCY = 32  # requests in flight in the VoltDB rows at 32 (a DGW's pipelined connection)


def bench_voltdb(seconds: float, subscribers: int) -> list[dict[str, Any]]:
    """The in-process pair on VoltDB: one caller, so each figure is latency-bound (a read and a
    commit, two round trips, per request), beside the same pair on the embedded store. Then the
    same server at 32 requests in flight: the store's raw commit on an event loop, and the OCS
    (`cellcelly ocs`, its own process) charging over its wire transport, driven like a DGW."""
    from cellcelly_dev.devservers import VoltDBUnavailable, voltdb_server

    names = (
        "in-process baseline on VoltDB: raw store commit",
        "in-process charging on VoltDB",
        f"baseline at {CONCURRENCY} in flight: raw VoltDB commit on the loop",
        f"OCS on VoltDB over its wire transport, {CONCURRENCY} in flight",
    )
    try:
        with voltdb_server() as servers:
            from cellcelly.adapters.balance_voltdb import VoltBalanceStore

            subscribers = min(subscribers, VOLTDB_SUBSCRIBERS)
            catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
            with VoltBalanceStore(servers) as store:
                provision(store, catalogue, subscribers)

                service = ChargingService(store, catalogue)
                requests = interleaved_requests(WARM_UP + int(seconds * 5_000), subscribers)

                def baseline(i: int) -> bool:
                    store.transact(msisdn(i % subscribers), touch)
                    return True

                def charging(i: int) -> bool:
                    return service.charge(requests[i]).result_code is ResultCode.SUCCESS

                results = [
                    _loop(names[0], seconds, baseline),
                    _loop(f"{names[1]} (OCS engine + VoltDB store)", seconds, charging, len(requests)),
                ]

                async def raw(worker: int, n: int) -> bool:
                    # each worker its own subscribers: no waiting on another's lock
                    await store.transact_async(msisdn((worker + n * CONCURRENCY) % subscribers), touch)
                    return True

                import uvloop

                voltdb = listener_pid(int(servers.rsplit(":", 1)[1]))
                server = {"VoltDB": voltdb} if voltdb is not None else {}
                results.append(uvloop.run(_concurrently(names[2], seconds, raw, store.leave_loop, server)))
            results.append(_bench_wire_ocs(names[3], servers, seconds, subscribers, server))
            link_baseline(results[1], results[0])
            link_baseline(results[3], results[2])
            return results
    except VoltDBUnavailable as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "unavailable"
        return [summarise(f"skipped: {name} ({reason})", 0, 0.0, []) for name in names]


async def _concurrently(
    name: str,
    seconds: float,
    fn: Callable[[int, int], Awaitable[bool]],
    finish: Callable[[], Awaitable[None]] | None = None,
    cpu_of: dict[str, int] | None = None,
) -> dict[str, Any]:
    """CONCURRENCY workers calling fn(worker, 0), fn(worker, 1), ... for `seconds` after a
    one-second warm-up; fn says if it succeeded."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    errors = 0
    counts = [0] * CONCURRENCY

    async def work(worker: int, until: int, record: bool) -> None:
        nonlocal errors
        while True:
            t0 = clock()
            ok = await fn(worker, counts[worker])
            t1 = clock()
            counts[worker] += 1
            if record:
                latencies.append(t1 - t0)
                errors += not ok
            if t1 >= until:
                return

    try:
        await asyncio.gather(*(work(w, clock() + 1_000_000_000, False) for w in range(CONCURRENCY)))
        cpu = _cpu_seconds(cpu_of)
        start = clock()
        until = start + int(seconds * 1e9)
        await asyncio.gather(*(work(w, until, True) for w in range(CONCURRENCY)))
        result = summarise(name, len(latencies), (clock() - start) / 1e9, latencies, errors)
        spent = _cpu_seconds(cpu_of)
        # where the time goes: CPU per operation of each process (the machine has two cores)
        result["cpu_us_per_op"] = {
            who: round((spent[who] - cpu[who]) / max(1, len(latencies)) * 1e6, 1) for who in cpu
        }
        return result
    finally:
        if finish is not None:
            await finish()


def _cpu_seconds(pids: dict[str, int] | None) -> dict[str, float]:
    """CPU seconds (user + system) so far of this process and the given ones."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(pid: int) -> float:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        return 0.0

    return {"bench": of(os.getpid()), **{who: of(pid) for who, pid in (pids or {}).items()}}


def _served_by(pids: list[int]) -> dict[str, int]:
    """The processes of a topology and their children (`make run`'s DGW and SF, the embedded store's
    checkpointer), each named by its `cellcelly` command or module: whose CPU a CCR costs."""
    named = {command: pid for pid in pids if (command := command_of(pid)) is not None}
    for pid in pids:
        named.update(cellcelly_children(pid, helpers=True))
    return named


def cpu_before(cpu: dict[str, float], then: dict[str, int], now: dict[str, int]) -> dict[str, float]:
    """Each process's CPU seconds before a row, for the processes there at its end (`now`, by name):
    one started during the row (the embedded store's checkpointer, at its first snapshot), or
    started again under another pid, had none."""
    return {who: cpu[who] if then.get(who) == pid else 0.0 for who, pid in now.items()}


def _generator_cpu() -> float:
    """CPU seconds of this process's waited-for children so far: the generators, once they ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (this bench's VoltDB server, not another one
    that other tests run on the same machine: their CPU is not this run's)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def _bench_wire_ocs(
    name: str, servers: str, seconds: float, subscribers: int, server: dict[str, int] | None = None
) -> dict[str, Any]:
    """`cellcelly ocs` on the VoltDB server, its wire port driven by WireOcs (what a DGW uses) with
    CONCURRENCY requests in flight, each worker running whole sessions of the traffic mix in order."""
    import uvloop

    from cellcelly.dgw.ocs_client import WireOcs

    with tempfile.TemporaryDirectory() as tmp:
        wire, http = free_port(), free_port()
        proc = _start(["ocs"], voltdb_ocs_env(tmp, servers, wire, http), [wire, http])
        try:
            _drained(servers)
            # each worker's sessions: sid = worker, worker + CONCURRENCY, ... (a session's
            # requests in order, as a network sends them), built before timing starts
            per_worker = int(seconds * 12_000 / CONCURRENCY) + 1_000
            scripts = [_session_requests(w, per_worker, subscribers) for w in range(CONCURRENCY)]
            tune_gc()  # the scripts are this process's: its collector does not walk them, timed

            async def drive() -> dict[str, Any]:
                ocs = WireOcs([("127.0.0.1", wire)], api_key=OCS_KEY, timeout=10.0)

                async def charge(worker: int, n: int) -> bool:
                    answer = await ocs.charge(scripts[worker][n])
                    return answer.result_code is ResultCode.SUCCESS

                try:
                    return await _concurrently(
                        name, seconds, charge, cpu_of={"OCS": proc.pid, **(server or {})}
                    )
                finally:
                    await ocs.close()

            procedure_profile(servers)  # from here: the profile since the last call
            result = uvloop.run(drive())
            result["server_us_per_call"] = procedure_profile(servers)
            return result
        finally:
            _stop(proc)


def procedure_profile(servers: str) -> dict[str, dict[str, float]]:
    """VoltDB's own time in each procedure since the last call (`@Statistics PROCEDUREPROFILE`,
    delta): calls and mean µs a call, inside the server, which says which procedure a charge's
    server time goes to. Like every figure here they stretch when the host takes the CPU away
    (`steal` beside the row)."""
    from cellcelly.adapters.balance_voltdb import parse_servers
    from cellcelly.adapters.voltdb_blocking import VoltConnection

    host, port = parse_servers(servers)[0]
    conn = VoltConnection(host, port, 30.0)
    try:
        tables = conn.call("@Statistics", ["PROCEDUREPROFILE", 1]).tables or []
    finally:
        conn.close()
    profile = {}
    for row in tables[0].tuples if tables else []:
        columns = dict(zip((c.name for c in tables[0].columns), row, strict=True))
        profile[str(columns["PROCEDURE"]).rsplit(".", 1)[-1]] = {
            "calls": int(columns["INVOCATIONS"]),
            "mean_us": round(int(columns["AVG"]) / 1000, 1),
        }
    return profile


def voltdb_ocs_env(data: str, servers: str, wire: int, http: int) -> dict[str, str]:
    """The environment of a `cellcelly ocs` on the VoltDB `servers`, its wire on `wire`."""
    return {
        **os.environ,
        "CELLCELLY_DATA_DIR": data,
        "CELLCELLY_LOG_LEVEL": "WARNING",
        "CELLCELLY_DATABASE_URL": f"sqlite:///{data}/sor.db",
        "CELLCELLY_BALANCE_STORE": "voltdb",
        "CELLCELLY_VOLTDB_SERVERS": servers,
        "CELLCELLY_OCS_PORT": str(http),
        "CELLCELLY_OCS_WIRE_PORT": str(wire),
        "CELLCELLY_OCS_API_KEY": OCS_KEY,
    }


def _drained(servers: str, timeout: float = 60.0) -> None:
    """Wait for the OCS's relay to move the events the rows before left in the outbox (sign-ups,
    one-caller charges: ~15,000): timed, that backlog was OCS CPU charged to the charges."""
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore

    with VoltBalanceStore(servers) as store:
        deadline = time.monotonic() + timeout
        while store.outbox_size() > 100 and time.monotonic() < deadline:
            time.sleep(0.2)


def _session_requests(worker: int, count: int, subscribers: int) -> list[ChargeRequest]:
    requests: list[ChargeRequest] = []
    sid = worker
    while len(requests) < count:
        for number, (kind, usage) in enumerate(session_script(sid)):
            requests.append(ChargeRequest(f"v{sid}", kind, number, msisdn(sid % subscribers), usage))
        sid += CONCURRENCY
    return requests


def interleaved_requests(count: int, subscribers: int, live: int = 64) -> list[ChargeRequest]:
    """`count` requests of the traffic mix, 64 sessions interleaved as a network would send them.
    Built before timing starts, so the figures are the engine's, not the generator's."""
    requests: list[ChargeRequest] = []
    scripts: list[tuple[int, Iterator[tuple[RequestType, tuple[ServiceUsage, ...]]]]] = []
    next_sid = 0
    numbers: dict[int, int] = {}
    while len(requests) < count:
        while len(scripts) < live:
            scripts.append((next_sid, session_script(next_sid)))
            numbers[next_sid] = 0
            next_sid += 1
        slot = len(requests) % live
        sid, script = scripts[slot]
        step = next(script, None)
        if step is None:
            scripts[slot] = (next_sid, session_script(next_sid))
            numbers[next_sid] = 0
            next_sid += 1
            continue
        kind, usage = step
        requests.append(ChargeRequest(f"b{sid}", kind, numbers[sid], msisdn(sid % subscribers), usage))
        numbers[sid] += 1
    return requests


WARM_UP = 2000


def _loop(name: str, seconds: float, fn: Callable[[int], bool], limit: int | None = None) -> dict[str, Any]:
    """Call fn(0), fn(1), ... (each index once) for `seconds` after a warm-up; fn says if it succeeded."""
    latencies: list[int] = []
    clock = time.perf_counter_ns
    for i in range(WARM_UP):
        fn(i)
    start = clock()
    deadline = start + int(seconds * 1e9)
    i = WARM_UP
    errors = 0
    while limit is None or i < limit:
        t0 = clock()
        ok = fn(i)
        t1 = clock()
        latencies.append(t1 - t0)
        errors += not ok
        i += 1
        if t1 >= deadline:
            break
    return summarise(name, i - WARM_UP, (clock() - start) / 1e9, latencies, errors)


# --- over HTTP ----------------------------------------------------------------------------------

API = "/nchf-convergedcharging/v3"


# the OCS API key of the bench's servers (CELLCELLY_OCS_API_KEY): every charging client shows it
OCS_KEY = f"bench-{secrets.token_hex(16)}"


def _http_request(path: str, body: dict[str, Any]) -> bytes:
    payload = orjson.dumps(body)
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {OCS_KEY}\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def _http_script(sid: int, subscribers: int, noop: bool) -> Iterator[bytes]:
    msisdn_ = msisdn(sid % subscribers)
    number = 0
    for kind, usages in session_script(sid):
        units = []
        for u in usages:
            field = {"voice": "time", "sms": "serviceSpecificUnits", "data": "totalVolume"}[u.service.value]
            item: dict[str, Any] = {"ratingGroup": u.rating_group, "serviceType": u.service.value}
            if u.destination:
                item["destination"] = u.destination
            if u.requested:
                item["requestedUnit"] = {field: u.requested}
            if u.used:
                item["usedUnitContainer"] = [{field: u.used}]
            units.append(item)
        body = {
            "subscriberIdentifier": f"msisdn-{msisdn_}",
            "invocationSequenceNumber": number,
            "sessionId": f"h{sid}",
            "multipleUnitUsage": units,
        }
        if kind is RequestType.EVENT:
            body["oneTimeEvent"] = True
            body["oneTimeEventType"] = "IEC"
        path = {
            RequestType.INITIAL: f"{API}/chargingdata",
            RequestType.EVENT: f"{API}/chargingdata",
            RequestType.UPDATE: f"{API}/chargingdata/h{sid}/update",
            RequestType.TERMINATE: f"{API}/chargingdata/h{sid}/release",
        }[kind]
        yield _http_request(f"{API}/noop" if noop else path, body)
        number += 1


def _sessions(subscribers: int, noop: bool, first_sid: int) -> Callable[[int], Iterator[bytes]]:
    """Session i of a run: the requests of charging session first_sid + i."""
    return lambda i: _http_script(first_sid + i, subscribers, noop)


def _pin(cpu: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})


def bench_http(seconds: float, subscribers: int, connections: int) -> list[dict[str, Any]]:
    allowed = os.sched_getaffinity(0)
    with provisioned_data_dir(subscribers) as data:
        port = free_port()
        env = {
            **os.environ,
            "CELLCELLY_DATA_DIR": str(data),
            "CELLCELLY_LOG_LEVEL": "WARNING",
            "CELLCELLY_DATABASE_URL": f"sqlite:///{data / 'sor.db'}",
            "CELLCELLY_OCS_API_KEY": OCS_KEY,
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "cellcelly_dev.bench", "--serve", str(port)],
            env=with_tools_path(env),
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for(port)
            import uvloop

            _pin(1)
            results = []
            for noop, name in (
                (True, "HTTP baseline: same stack, /noop without charging"),
                (False, "HTTP charging (Nchf-style JSON API)"),
            ):
                uvloop.run(
                    drive(port, 1.0, connections, _sessions(subscribers, noop, 10_000_000 * (2 + noop)))
                )  # warm-up
                ops, errors, lat, secs = uvloop.run(
                    drive(port, seconds, connections, _sessions(subscribers, noop, 10_000_000 * noop))
                )
                results.append(summarise(name, ops, secs, lat, errors))
            link_baseline(results[1], results[0])
            return results
        finally:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, allowed)  # what runs after (and its children) gets every core
            server.terminate()
            server.wait(10)


def _wait_for(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("the OCS did not start")


def serve(port: int) -> None:
    """The OCS's HTTP app as `make run` serves it, pinned to core 0 (the load generator gets core
    1). Its outbox relay does not run: a run's events stay in the store's memory."""

    from cellcelly.deploy.backends import open_backends
    from cellcelly.deploy.ocs import ocs_app
    from cellcelly.logs import setup_logging
    from cellcelly.settings import Settings
    from cellcelly.web import http_server

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    _pin(0)
    app = ocs_app(settings, open_backends(settings))
    tune_gc()
    http_server(app, "127.0.0.1", port, loop="uvloop").run()


# --- end to end through the gateway ---------------------------------------------------------------


def _start(args: list[str], env: dict[str, str], ports: list[int]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellcelly.cli", *args], env=env, stdout=subprocess.DEVNULL
    )
    for port in ports:
        _wait_for(port)
    return proc


def _wait_sf_drained(port: int, timeout: float = 60.0) -> None:
    """Until the SF serving /metrics on `port` has written everything on the bus: its lag 0 and no
    batch for longer than its wait for more (the lag is refreshed when a poll finds nothing, and a
    poll comes at the latest that long after the last batch)."""
    import urllib.request

    from cellcelly.settings import Settings

    quiet_for = Settings().sf_linger_seconds + 1.0
    deadline = time.monotonic() + timeout
    last_batches, since = None, time.monotonic()
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            lines = answer.read().decode().splitlines()
        figures = dict(line.rsplit(" ", 1) for line in lines if line.startswith("cellcelly_sf_"))
        lag, batches = float(figures["cellcelly_sf_lag_records"]), figures["cellcelly_sf_batches_total"]
        now = time.monotonic()
        if batches != last_batches:
            last_batches, since = batches, now
        elif lag == 0 and now - since >= quiet_for:
            return
        if now > deadline:
            raise TimeoutError(f"the SF on :{port} still lags {lag:.0f} records after {timeout:.0f} s")
        time.sleep(0.25)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _compiled() -> bool:
    import cellcelly.diameter.codec

    return (cellcelly.diameter.codec.__file__ or "").endswith(".so")


def e2e_env(data: Path, dgw: int, wire: int, http: int) -> dict[str, str]:
    """The environment of the e2e servers (and the generator) on the provisioned `data`: the DGW on
    `dgw` charging through the OCS's wire transport on `wire`, the OCS's HTTP API on `http`."""
    return {
        **os.environ,
        "CELLCELLY_DATA_DIR": str(data),
        "CELLCELLY_LOG_LEVEL": "WARNING",
        "CELLCELLY_OCS_PORT": str(http),
        "CELLCELLY_OCS_WIRE_PORT": str(wire),
        "CELLCELLY_DGW_PORT": str(dgw),
        "CELLCELLY_DGW_OCS_ENDPOINTS": f"127.0.0.1:{wire}",
        "CELLCELLY_OCS_API_KEY": OCS_KEY,  # the OCS and the DGW share it
        "CELLCELLY_DGW_ALLOWED_PEERS": "traffic.cellcelly.local",  # `cellcelly traffic`
        "CELLCELLY_ADMIN_TOKEN": "bench",
        "CELLCELLY_TRAFFIC_SUBSCRIBERS": "0",  # the store is provisioned above; nothing else at start
    }


def traffic_command(dgw: int, rate: float, seconds: float, subscribers: int, processes: int = 1) -> list[str]:
    """`cellcelly traffic` at a fixed offered load (sessions/s) on the provisioned subscribers,
    from `processes` processes, printing its report as JSON."""
    args = ["traffic", "--port", str(dgw), "--rate", str(rate), "--duration", str(seconds)]
    args += ["--processes", str(processes)]
    args += [
        "--subscribers",
        str(subscribers),
        "--first-msisdn",
        "5000000000",
        "--connections",
        "4",
        "--json",
    ]
    return [sys.executable, "-m", "cellcelly.cli", *args]


def bench_e2e(
    seconds: float, subscribers: int, rates: tuple[float, ...], generators: int = 1
) -> list[dict[str, Any]]:
    """CCRs through DGW → OCS → store with `cellcelly traffic`'s generator (`generators` processes
    of its own) as the network, at fixed offered loads (sessions/s; about 4.2 CCRs a session with
    the default mix). A row where the generator fell behind its schedule is marked: its figures
    are the generator's, not the path's."""
    results: list[dict[str, Any]] = []
    with provisioned_data_dir(subscribers) as provisioned:
        dgw, wire, http = free_port(), free_port(), free_port()
        topologies: list[tuple[str, list[tuple[list[str], list[int]]]]] = [
            ("baseline: the same DGW answering without charging (dgw --noop)", [(["dgw", "--noop"], [dgw])]),
            ("DGW -> OCS (wire) -> store, two processes", [(["ocs"], [wire, http]), (["dgw"], [dgw])]),
            (
                "embedded stack (make run): OCS + self-care, its DGW, SF and notifier child processes",
                [(["run"], [dgw, http])],
            ),
        ]
        for name, processes in topologies:
            # each path from the same provisioned state: on one directory the embedded stack's SF
            # began by writing every event the two processes had put on the bus (no SF ran there)
            data = Path(tempfile.mkdtemp(prefix="cellcelly-e2e-"))
            shutil.copytree(provisioned, data, dirs_exist_ok=True)
            env = e2e_env(data, dgw, wire, http)
            sf_metrics = free_port() if processes[0][0] == ["run"] else None
            if sf_metrics is not None:
                env["CELLCELLY_SF_METRICS_PORT"] = str(sf_metrics)
            procs = [_start(args, env, ports) for args, ports in processes]
            try:
                pids = [p.pid for p in procs]
                served = _served_by(pids)
                for rate in rates:
                    cpu, generator = _cpu_seconds(served), _generator_cpu()
                    # the generator in a process of its own, as the network would be
                    done = subprocess.run(
                        traffic_command(dgw, rate, seconds, subscribers, generators),
                        env=env,
                        capture_output=True,
                        check=True,
                    )
                    report = json.loads(done.stdout)
                    if sf_metrics is not None:
                        # the SF writes a batch after waiting for more (`CELLCELLY_SF_LINGER_SECONDS`):
                        # the row's last records are its CPU too, not the next row's
                        _wait_sf_drained(sf_metrics)
                    # the processes there now, those started during the row too
                    served, then = _served_by(pids), served
                    cpu = cpu_before(cpu, then, served)
                    spent, answers = _cpu_seconds(served), max(1, report["answers"])
                    # where a CCR's time goes, process by process (the generator's share too: the
                    # two cores are all of theirs)
                    cpu_us = {who: (spent[who] - cpu[who]) / answers * 1e6 for who in served}
                    cpu_us["generator"] = (_generator_cpu() - generator) / answers * 1e6
                    results.append(
                        {
                            "name": f"Diameter e2e, {name}, offered {rate:.0f} sessions/s",
                            "ops": report["answers"],
                            "seconds": report["duration_s"],
                            "ops_per_s": report["ccr_per_s"],
                            "p50_us": round(report["latency_ms"]["p50"] * 1000, 1),
                            "p99_us": round(report["latency_ms"]["p99"] * 1000, 1),
                            # 4012 and the like are charging outcomes, not failures of the path
                            "errors": report["timeouts"] + report["errors"],
                            "shed_sessions": report["sessions_shed"],
                            # new sessions the overloaded gateway refused (dgw/overload.py)
                            "too_busy": report["result_counts"].get("3004", 0),
                            # and those the generator held back, told to by its DOIC reports
                            "abated": report.get("sessions_abated", 0),
                            "result_counts": report["result_counts"],
                            "offered_sessions_per_s": rate,
                            "sessions_started": report["sessions_started"],
                            "generator_processes": report["processes"],
                            "generator_behind_p99_ms": report["behind_p99_ms"],
                            "generator_bound": report["generator_bound"],
                            "cpu_us_per_op": {who: round(us, 1) for who, us in cpu_us.items()},
                        }
                    )
            finally:
                _stop(*procs)
                shutil.rmtree(data, ignore_errors=True)
    # each path beside the `dgw --noop` baseline at the same offered load (the check's figure)
    baseline = {r["offered_sessions_per_s"]: r for r in results[: len(rates)]}
    for row in results[len(rates) :]:
        link_baseline(row, baseline.get(row["offered_sessions_per_s"]))
    return results


def ccrs_per_session() -> float:
    """CCRs a session of `cellcelly traffic`'s default mix, which the e2e rows run: voice and data
    send an initial, 2-4 updates and a terminate, SMS one event (4.2 with 40:40:20)."""
    from cellcelly.traffic.generator import SERVICES, TrafficConfig

    config = TrafficConfig()
    low, high = config.updates
    each = {service: 1.0 if service == "sms" else 2 + (low + high) / 2 for service in SERVICES}
    return round(sum(w * each[s] for s, w in zip(SERVICES, config.mix, strict=True)) / sum(config.mix), 3)


def _shown_name(r: dict[str, Any]) -> str:
    """A row's name with what qualifies its figures: sessions the gateway refused, those the
    generator held back on its overload reports (DOIC), a generator behind."""
    name = str(r["name"]) + (f" ({r['too_busy']} x 3004)" if r.get("too_busy") else "")
    name += f" ({r['abated']} abated)" if r.get("abated") else ""
    return name + (" *" if r.get("generator_bound") else "")


def _table(results: list[dict[str, Any]]) -> str:
    width = max(58, *(len(_shown_name(r)) for r in results)) + 2
    head = f"{'benchmark':{width}} {'ops/s':>10} {'p50 µs':>9} {'p99 µs':>9} {'errors':>7}"
    lines = [f"{head} {'steal %':>7} {'pace µs':>7}"]
    for r in results:
        figures = f"{r['ops_per_s']:>10.0f} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f} {r['errors']:>7}"
        figures += f" {r.get('host_steal_pct', 0.0):>7.1f} {r.get('machine_pace_us', 0.0):>7.0f}"
        lines.append(f"{_shown_name(r):{width}} {figures}")
    if any(r.get("generator_bound") for r in results):
        lines.append(
            "* the generator fell behind its schedule (its lateness p99 over "
            f"{BEHIND_LIMIT_MS:g} ms): it did not offer this load, so the row is no figure of the path"
        )
    return "\n".join(lines)


def _codec(seconds: float) -> list[dict[str, Any]]:
    from cellcelly_dev.bench_codec import bench_codec

    codec = bench_codec(min(seconds, 2.0))
    _link_codec(codec)
    return codec


def _events(seconds: float) -> list[dict[str, Any]]:
    from cellcelly_dev.bench_events import bench_events

    return bench_events(seconds)


def _selfcare(seconds: float) -> list[dict[str, Any]]:
    from cellcelly_dev.bench_selfcare import bench_selfcare

    return bench_selfcare(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellcelly_dev.bench")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--only",
        choices=["in-process", "voltdb", "http", "codec", "e2e", "events", "selfcare"],
        default=None,
    )
    parser.add_argument(
        "--rates",
        default="500,750,1000,1500,2000,2500,3000,4000,5000,6000,7000",
        help="e2e offered loads, sessions/s (~4.2 CCRs a session): the charging paths' knee lies near "
        "2500 here, the noop baseline's near 7000 (where the generator's own limit is close)",
    )
    parser.add_argument(
        "--generator-processes",
        type=int,
        default=1,
        help="`cellcelly traffic --processes` of the e2e rows (one offers the most on 2 cores)",
    )
    parser.add_argument(
        "--e2e-seconds",
        type=float,
        default=None,
        help="seconds of each e2e load (default: --seconds, at most 6, as the reference was measured)",
    )
    parser.add_argument("--output", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument(
        "--check",
        action="store_true",
        help="after the run, exit non-zero if a row fell more than 25%% below the reference",
    )
    parser.add_argument("--reference", type=Path, default=Path("bench/reference.json"))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    # read before the run: a missing or broken reference should not cost a whole run
    reference = json.loads(args.reference.read_text()) if args.check else None
    results: list[dict[str, Any]] = []

    def run(group: str, rows: Callable[[], list[dict[str, Any]]]) -> None:
        # how the host treated each group of rows, kept beside them: its steal, and the slower of the
        # paces measured before and after
        if args.only not in (None, group):
            return
        before, pace = host_ticks(), machine_pace()
        measured = rows()
        steal, pace = steal_pct(before, host_ticks()), max(pace, machine_pace())
        for row in measured:
            row["host_steal_pct"] = steal
            row["machine_pace_us"] = pace
        results.extend(measured)

    run("in-process", lambda: bench_in_process(args.seconds, args.subscribers))
    run("voltdb", lambda: bench_voltdb(args.seconds, args.subscribers))
    run("http", lambda: bench_http(args.seconds, args.subscribers, args.connections))
    run("codec", lambda: _codec(args.seconds))
    rates = tuple(float(r) for r in args.rates.split(","))
    e2e_seconds = args.e2e_seconds if args.e2e_seconds is not None else min(args.seconds, 6.0)
    subscribers = min(args.subscribers, 10_000)
    run("e2e", lambda: bench_e2e(e2e_seconds, subscribers, rates, args.generator_processes))
    run("events", lambda: _events(args.seconds))
    run("selfcare", lambda: _selfcare(args.seconds))
    by_name = {r["name"].split(":")[0]: r for r in results}
    ratios = {}
    if "in-process baseline" in by_name:
        ratios["in-process charging / raw store"] = round(
            results[1]["ops_per_s"] / by_name["in-process baseline"]["ops_per_s"], 3
        )
    volt = [r for r in results if r["name"].startswith("in-process") and "on VoltDB" in r["name"]]
    if len(volt) == 2 and volt[0]["ops_per_s"]:
        ratios["in-process charging on VoltDB / raw VoltDB commit"] = round(
            volt[1]["ops_per_s"] / volt[0]["ops_per_s"], 3
        )
    loaded = [r for r in results if f"{CONCURRENCY} in flight" in r["name"] and "skipped" not in r["name"]]
    if len(loaded) == 2 and loaded[0]["ops_per_s"]:
        ratios[f"OCS on VoltDB over the wire / raw VoltDB commit, {CONCURRENCY} in flight"] = round(
            loaded[1]["ops_per_s"] / loaded[0]["ops_per_s"], 3
        )
    # by its row's own ratio: the self-care rows' /healthz baseline also starts with "HTTP"
    http = next((r for r in results if r["name"].startswith("HTTP charging")), {})
    if http.get("ratio_to_baseline") is not None:
        ratios["HTTP charging / HTTP baseline"] = http["ratio_to_baseline"]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        # which build ran: the mypyc-compiled charging path (`make compile`) or the pure-Python tree
        "compiled": _compiled(),
        "results": results,
        "ratios": ratios,
    }
    if any(r["name"].startswith("Diameter e2e") for r in results):
        report["e2e"] = {"ccrs_per_session": ccrs_per_session()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    picture = benchplot.page(report)
    sys.stdout.write(f"the charging path: {'compiled (mypyc)' if report['compiled'] else 'pure Python'}\n")
    sys.stdout.write(_table(results) + "\n")
    for r in results:
        if "cpu_us_per_op" in r:
            spent = ", ".join(f"{who} {us:.0f}" for who, us in r["cpu_us_per_op"].items())
            sys.stdout.write(f"CPU µs per op, {r['name']}: {spent}\n")
        if r.get("server_us_per_call"):
            inside = ", ".join(
                f"{p} {v['mean_us']:.1f} µs x {v['calls']}" for p, v in r["server_us_per_call"].items()
            )
            sys.stdout.write(f"inside VoltDB, a call, {r['name']}: {inside}\n")
    for k, v in ratios.items():
        sys.stdout.write(f"ratio {k}: {v}\n")
    sys.stdout.write(f"(written to {args.output})\n")
    if picture is not None:
        html = args.output.with_name("latency.html")
        html.write_text(picture)
        sys.stdout.write(f"latency picture: {html}\n")
    if reference is not None:
        findings = benchcheck.compare(report, reference)
        held = benchcheck.describe(reference, benchcheck.build_of(report))
        sys.stdout.write(f"\nagainst {args.reference}, {held}:\n{benchcheck.render(findings)}\n")
        return 1 if any(f.failed for f in findings) else 0
    return 0


def _link_codec(rows: list[dict[str, Any]]) -> None:
    """Each of our codec rows beside python-diameter's decode or encode of the same bytes."""

    def kind(row: dict[str, Any]) -> str:
        return "decode" if "decode" in row["name"] else "encode"

    theirs = {kind(r): r for r in rows if r["name"].startswith("codec baseline")}
    for row in rows:
        # the gateway's round does more than decode or encode: it has no python-diameter twin
        if row["name"].startswith("codec: cellcelly "):
            link_baseline(row, theirs.get(kind(row)))


if __name__ == "__main__":
    raise SystemExit(main())
