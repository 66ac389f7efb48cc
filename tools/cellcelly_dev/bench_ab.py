"""Two or more builds of the package measured at the same time, each on its own processes.

On a shared two-core machine the same build, run alone twice a few minutes apart, gave figures 2-4x
apart (the host's other work), so builds compared one after the other tell nothing under ~20%. Here
every variant runs at once, from its own directory on `PYTHONPATH` (a `make compile` build, a
snapshot of a commit, or `''` for the source tree), with its own servers and its own load of the same
shape, so whatever the machine does it does to all of them; the figure to compare is each server's
CPU per request, read from /proc over the round.

    PYTHONPATH=tools .venv/bin/python -m cellcelly_dev.bench_ab voltdb pure=,compiled=build/compiled
    PYTHONPATH=tools .venv/bin/python -m cellcelly_dev.bench_ab noop pure=,compiled=build/compiled
    PYTHONPATH=tools .venv/bin/python -m cellcelly_dev.bench_ab wire pure=,compiled=build/compiled

`voltdb`: one VoltDB, an OCS per variant on it, driven over its wire at 32 in flight by `WireOcs`
(the `make bench` row of issue 14), each variant on its own subscribers. `noop` and `wire`: per
variant a `dgw --noop`, or an OCS and a DGW on their own embedded store, each driven by its own
`cellcelly traffic` at the same fixed offered load (the e2e rows of `make bench`). `run`: per variant
a whole `cellcelly run` (`make run`: the parent, its DGW and SF children), each process's CPU a CCR.
The order the variants start in rotates every round.

    PYTHONPATH=tools .venv/bin/python -m cellcelly_dev.bench_ab run before=build/a,after=build/b --rate 400

A variant may also set environment of its own, after its path: `'slow=build/b;CELLCELLY_SF_LINGER_SECONDS=2'`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import tempfile
from typing import Any

from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly_dev import bench
from cellcelly_dev.bench import CONCURRENCY, OCS_KEY
from cellcelly_dev.devservers import free_port

log = logging.getLogger(__name__)
SUBSCRIBERS = 2_000


def per_request(before: dict[str, float], pids: dict[str, int], requests: int) -> dict[str, float]:
    """CPU µs per request of each process since `before` (bench._cpu_seconds of the same pids)."""
    spent = bench._cpu_seconds(pids)
    return {who: round((spent[who] - before[who]) / max(1, requests) * 1e6, 1) for who in pids}


def _variant_env(spec: str) -> dict[str, str]:
    """`path[;NAME=value;...]`: the build on PYTHONPATH, and settings of this variant's own."""
    path, *settings = spec.split(";")
    own = dict(item.split("=", 1) for item in settings)
    return {**os.environ, "PYTHONPATH": os.path.abspath(path) if path else "", **own}


def ab_voltdb(variants: dict[str, str], rounds: int, seconds: float) -> None:
    import uvloop

    from cellcelly.adapters.balance_voltdb import VoltBalanceStore
    from cellcelly.catalogue_store import CatalogueHolder
    from cellcelly.dgw.ocs_client import WireOcs
    from cellcelly.domain.charging import ChargeRequest, ResultCode
    from cellcelly_dev.devservers import voltdb_server

    names = list(variants)
    with voltdb_server() as servers, contextlib.ExitStack() as stack:
        with VoltBalanceStore(servers) as store:
            bench.provision(store, CatalogueHolder.from_file(DEFAULT_CATALOGUE), SUBSCRIBERS)
        ocs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        for name in names:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            wire, http = free_port(), free_port()
            env = {**bench.voltdb_ocs_env(tmp, servers, wire, http), **_variant_env(variants[name])}
            ocs[name] = (bench._start(["ocs"], env, [wire, http]), wire)
            stack.callback(bench._stop, ocs[name][0])
        bench._drained(servers)
        n = len(names)

        def script(round_: int, idx: int, worker: int) -> list[ChargeRequest]:
            """Sessions of the traffic mix on the variant's own subscribers (index ≡ idx mod n)."""
            requests: list[ChargeRequest] = []
            sid = (round_ * 1_000_003 + worker) * n + idx
            while len(requests) < int(seconds * 12_000 / CONCURRENCY) + 1_000:
                owner = bench.msisdn((sid * 7919) % SUBSCRIBERS // n * n + idx)
                for number, (kind, usage) in enumerate(bench.session_script(sid)):
                    requests.append(ChargeRequest(f"ab{round_}-{idx}-{sid}", kind, number, owner, usage))
                sid += CONCURRENCY * n
            return requests

        for round_ in range(rounds):

            async def drive(order: list[str], round_: int = round_) -> dict[str, dict[str, Any]]:
                results: dict[str, dict[str, Any]] = {}

                async def one(name: str) -> None:
                    proc, wire = ocs[name]
                    client = WireOcs([("127.0.0.1", wire)], api_key=OCS_KEY, timeout=10.0)
                    scripts = [script(round_, names.index(name), w) for w in range(CONCURRENCY)]

                    async def charge(worker: int, k: int) -> bool:
                        answer = await client.charge(scripts[worker][k])
                        return answer.result_code is ResultCode.SUCCESS

                    try:
                        results[name] = await bench._concurrently(
                            name, seconds, charge, cpu_of={"OCS": proc.pid}
                        )
                    finally:
                        await client.close()

                await asyncio.gather(*(one(name) for name in order))
                return results

            order = names[round_ % n :] + names[: round_ % n]
            results = uvloop.run(drive(order))
            _report(round_, {name: _row(results[name], results[name]["cpu_us_per_op"]) for name in names})


def ab_diameter(mode: str, variants: dict[str, str], rounds: int, seconds: float, rate: float) -> None:
    names = list(variants)
    with contextlib.ExitStack() as stack:
        setups: dict[str, tuple[dict[str, int], int, dict[str, str]]] = {}
        pids: dict[str, list[int]] = {}  # each variant's processes, as started
        for name in names:
            data = stack.enter_context(bench.provisioned_data_dir(SUBSCRIBERS))
            dgw, wire, http = free_port(), free_port(), free_port()
            generator_env = bench.e2e_env(data, dgw, wire, http)
            env = {**generator_env, **_variant_env(variants[name])}
            if mode == "run":  # the rest of `make run`'s listeners, apart for each variant
                env |= {f"CELLCELLY_{what}_PORT": str(free_port()) for what in ("MW", "IVR", "SMSC")}
            processes = {
                "noop": {"dgw": (["dgw", "--noop"], [dgw])},
                "wire": {"ocs": (["ocs"], [wire, http]), "dgw": (["dgw"], [dgw])},
                "run": {"run": (["run"], [dgw, http])},
            }[mode]
            started = {who: bench._start(args, env, ports) for who, (args, ports) in processes.items()}
            stack.callback(bench._stop, *started.values())
            # `run`'s DGW and SF children too, each by its command
            pids[name] = [p.pid for p in started.values()]
            # the generator: the source tree, the same for all
            setups[name] = (bench._served_by(pids[name]), dgw, generator_env)
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            before = {name: bench._cpu_seconds(setups[name][0]) for name in names}
            generators = {
                name: subprocess.Popen(
                    bench.traffic_command(setups[name][1], rate, seconds, SUBSCRIBERS),
                    env=setups[name][2],
                    stdout=subprocess.PIPE,
                )
                for name in order
            }
            reports = {name: json.loads(g.communicate()[0]) for name, g in generators.items()}
            rows = {}
            for name in names:
                # a helper started during the round (the store's checkpointer) counts from its start
                then, port, traffic_env = setups[name]
                served = bench._served_by(pids[name])
                before[name] = bench.cpu_before(before[name], then, served)
                setups[name] = (served, port, traffic_env)
                report = reports[name]
                spent = per_request(before[name], setups[name][0], report["answers"])
                latency = report["latency_ms"]
                rows[name] = (
                    f"{report['ccr_per_s']:,.0f} CCR/s, p50 {latency['p50']:.1f} ms,"
                    f" p99 {latency['p99']:.1f} ms, {report['timeouts']} timeouts, CPU µs a CCR {spent}"
                )
            _report(round_, rows)


def _row(result: dict[str, Any], cpu: dict[str, float]) -> str:
    return (
        f"{result['ops_per_s']:,.0f}/s, p99 {result['p99_us'] / 1000:.1f} ms,"
        f" CPU µs a charge { ({k: v for k, v in cpu.items() if k != 'bench'}) }"
    )


def _report(round_: int, rows: dict[str, str]) -> None:
    load = os.getloadavg()[0]
    log.info("round %d (load %.1f): %s", round_, load, " | ".join(f"{n}: {r}" for n, r in rows.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("voltdb", "noop", "wire", "run"))
    parser.add_argument("variants", help="name=PYTHONPATH[;VAR=value...],... ('' for the source tree)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=250.0, help="sessions/s offered to each variant")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    variants = dict(item.split("=", 1) for item in args.variants.split(","))
    if args.what == "voltdb":
        ab_voltdb(variants, args.rounds, args.seconds)
    else:
        ab_diameter(args.what, variants, args.rounds, args.seconds, args.rate)


if __name__ == "__main__":
    main()
