"""The generator over several processes, started together, their reports merged into one.

One process's loop offered 25,000–28,000 CCR/s on this project's 2-core machine before its ticker
fell behind (`TrafficReport.generator_bound`); past that, the figures would be the generator's.
There, one process offered more than two (a third busy process takes the server's core); the split
is for machines with cores to spare.
`run_processes` splits the offered rate, the connections and the in-flight bound over N processes
(spawned: no event loop or socket is inherited), each with a seed of its own. They open their
connections, meet at a barrier, then start their schedules at once; the report's percentiles are
exact (every latency comes back), its counts summed, its lateness the worst process's.

The progress line is a sum of the processes' latest snapshots, except its p99, which is the
highest of theirs (an upper bound; the final report's is exact).
"""

from __future__ import annotations

import array
import asyncio
import multiprocessing
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cellcelly.traffic.generator import Snapshot, TrafficConfig, TrafficReport, latency_fields, run_traffic

READY_SECONDS = 60.0  # for every process to start and connect (a compiled import under load takes seconds)
_SNAPSHOT = (
    "elapsed", "requests", "answers", "rate", "p99_ms", "in_flight", "sessions_started", "shed",
    "timeouts", "errors",
)  # fmt: skip
_REPORT = (
    "requests", "answers", "sessions_started", "sessions_completed", "sessions_aborted",
    "sessions_shed", "duration", "ccr_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
    "result_counts", "mscc_result_counts", "timeouts", "errors", "target_rate", "connections",
    "behind_ms", "service_counts", "behind_p99_ms", "sessions_abated",
)  # fmt: skip


def shares(config: TrafficConfig, processes: int) -> list[TrafficConfig]:
    """Each process's part of `config`: the rate and in-flight bound divided, the connections
    spread (at least one each), and a seed of its own (one seed still fixes the whole run)."""
    if processes < 1:
        raise ValueError("processes must be >= 1")
    base, extra = divmod(config.connections, processes)
    bound, bound_extra = divmod(config.max_in_flight, processes)
    return [
        replace(
            config,
            rate=config.rate / processes,
            connections=max(1, base + (k < extra)),
            max_in_flight=max(1, bound + (k < bound_extra)) if config.max_in_flight else 0,
            seed=config.seed * 1_000_003 + k,
        )
        for k in range(processes)
    ]


def merge(parts: list[tuple[TrafficReport, list[int]]], rate: float) -> TrafficReport:
    """One report of processes that ran at once: counts summed, percentiles from every latency,
    the duration and the ticker's lateness the longest process's."""
    p50, p95, p99, top = latency_fields(sorted(ns for _, lat in parts for ns in lat))
    reports = [r for r, _ in parts]

    def total(name: str) -> int:
        return sum(int(getattr(r, name)) for r in reports)

    def counts(name: str) -> dict[Any, int]:
        summed: Counter[Any] = Counter()
        for r in reports:
            summed.update(getattr(r, name))
        return dict(summed)

    duration = max(r.duration for r in reports)
    answers = total("answers")
    return TrafficReport(
        requests=total("requests"),
        answers=answers,
        sessions_started=total("sessions_started"),
        sessions_completed=total("sessions_completed"),
        sessions_aborted=total("sessions_aborted"),
        sessions_shed=total("sessions_shed"),
        duration=duration,
        ccr_per_s=answers / duration if duration > 0 else 0.0,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=top,
        result_counts=counts("result_counts"),
        mscc_result_counts=counts("mscc_result_counts"),
        timeouts=total("timeouts"),
        errors=total("errors"),
        target_rate=rate,
        connections=total("connections"),
        behind_ms=max(r.behind_ms for r in reports),
        service_counts=counts("service_counts"),
        behind_p99_ms=max(r.behind_p99_ms for r in reports),
        processes=len(reports),
        sessions_abated=total("sessions_abated"),
    )


def combined(snapshots: list[Snapshot]) -> Snapshot:
    """The progress of the whole run from each process's latest snapshot."""
    return Snapshot(
        elapsed=max(s.elapsed for s in snapshots),
        requests=sum(s.requests for s in snapshots),
        answers=sum(s.answers for s in snapshots),
        rate=sum(s.rate for s in snapshots),
        p99_ms=max(s.p99_ms for s in snapshots),
        in_flight=sum(s.in_flight for s in snapshots),
        sessions_started=sum(s.sessions_started for s in snapshots),
        shed=sum(s.shed for s in snapshots),
        timeouts=sum(s.timeouts for s in snapshots),
        errors=sum(s.errors for s in snapshots),
    )


def run_processes(
    config: TrafficConfig, processes: int, progress: Callable[[Snapshot], None] | None = None
) -> TrafficReport:
    """Run `config` over `processes` processes and merge their reports (see the module's text).
    Raises ConnectionError (as one process does) when one of them cannot connect or dies; the
    others are stopped."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    barrier = context.Barrier(processes)
    children = [
        context.Process(target=_child, args=(k, part, results, barrier), daemon=True)
        for k, part in enumerate(shares(config, processes))
    ]
    for child in children:
        child.start()
    latest: dict[int, Snapshot] = {}
    done: dict[int, tuple[TrafficReport, list[int]]] = {}
    try:
        while len(done) < processes:
            try:
                message = results.get(timeout=1.0)
            except queue.Empty:
                dead = [c for k, c in enumerate(children) if k not in done and c.exitcode is not None]
                if dead:
                    raise ConnectionError(f"a generator process exited with {dead[0].exitcode}") from None
                continue
            kind, k = message[0], message[1]
            if kind == "failed":
                raise ConnectionError(message[2])
            if kind == "snapshot":
                latest[k] = Snapshot(**dict(zip(_SNAPSHOT, message[2], strict=True)))
                if progress is not None and k == 0 and len(latest) == processes and not done:
                    progress(combined(list(latest.values())))
            else:
                fields = dict(zip(_REPORT, message[2], strict=True))
                done[k] = (TrafficReport(**fields), array.array("q", message[3]).tolist())
    finally:
        barrier.abort()  # a process still waiting to start gives up
        for child in children:
            child.join(5.0)
            if child.exitcode is None:
                child.kill()
                child.join()
        results.close()
    if progress is not None:  # each process's last snapshot came before its report: the totals
        progress(combined(list(latest.values())))
    return merge([done[k] for k in range(processes)], config.rate)


def _child(
    k: int,
    config: TrafficConfig,
    results: multiprocessing.Queue[tuple[Any, ...]],
    barrier: threading.Barrier,
) -> None:
    """One process of a run: connect, wait for the others, run, send back the report and every
    latency (the parent merges the percentiles)."""
    import uvloop

    from cellcelly.runtime import tune_gc

    tune_gc(young=False)

    async def ready() -> None:
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait, READY_SECONDS)

    def progress(snap: Snapshot) -> None:
        results.put(("snapshot", k, tuple(getattr(snap, name) for name in _SNAPSHOT)))

    latencies: list[int] = []
    try:
        report = uvloop.run(run_traffic(config, progress, ready=ready, latencies=latencies))
    except threading.BrokenBarrierError:
        results.put(("failed", k, f"process {k}: another process of the run failed before the start"))
        return
    except (OSError, TimeoutError) as exc:
        barrier.abort()
        where = f"{config.host}:{config.port}"
        results.put(("failed", k, f"process {k}: cannot open Diameter to {where}: {exc!r}"))
        return
    fields = tuple(getattr(report, name) for name in _REPORT)
    results.put(("report", k, fields, array.array("q", latencies).tobytes()))


__all__ = ["combined", "merge", "run_processes", "shares"]
