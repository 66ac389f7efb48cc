"""Process-level tuning and event-loop helpers shared by every long-running CellCelly service."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import platform
import re
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable

log = logging.getLogger(__name__)

# When a process returns its frozen objects to the collector for one full collection: when its
# live small objects (`sys.getallocatedblocks`, checked every `CELLCELLY_GC_CHECK_S`) reach
# `CELLCELLY_GC_FULL_GROWTH` times what they were after the last one (0: never), at a quiet moment:
# a check interval in which the process used less than `CELLCELLY_GC_QUIET_CPU` of a core. It
# bounds a leak through a reference cycle that the freezing below would otherwise keep for good,
# and costs no pause while the process's memory stays flat: not a timer. Not under load either: a
# full collection of an OCS keeping 150,000 sessions paused it 1.1 s at 10,000 CCR/s (200,000:
# 1.7 s), the one stall of a 70 s run. Grown `CELLCELLY_GC_FULL_FORCE` times (0, the default:
# never), it comes even under load, so a leak stays bounded in a process that is never quiet, at
# the price of that pause: sixteenfold, in an OCS keeping ~570,000 sessions at 10,000 CCR/s, it took
# 4.4 s, found nothing, and 5,000 CCRs were answered 3002 by the DGW meanwhile.
DEFAULT_FULL_GROWTH = 4.0
DEFAULT_FULL_FORCE = 0.0
DEFAULT_QUIET_CPU = 0.25
DEFAULT_CHECK_S = 10.0
# ... and never below this many blocks (~100 MB): a process's first minutes grow its heap from its
# start-up size, and a full collection then would pause charging under load (the likely stall
# behind a 3004 in one CI run of the stack-apart test)
FULL_FLOOR_BLOCKS = 1_000_000
# held while a full collection is under way: young collections' survivors stay unfrozen
_full_under_way = threading.Lock()
_tuned = threading.Lock()
_started: dict[int, threading.Thread] = {}  # by process: a forked child inherits this, not the thread


def tune_gc(*, young: bool = True) -> None:
    """Keep the cyclic garbage collector's pauses short, and off what lives long.

    Charging allocates many short-lived objects (requests, copies, answers, events) while its
    state lives long: accounts, the sessions kept 300 s for retransmissions. CPython's collector
    walks what survives young collections again in its older generations: at 10,000 subscribers a
    middle-generation collection paused an OCS 260-750 ms, and the full ones walk every kept
    session. The charging paths make no reference cycles (the tests check), so each young
    collection's survivors are frozen instead (`gc.freeze`): never walked again, still freed by
    their reference counts. Young collections come every 2,000 net allocations
    (`CELLCELLY_GC_THRESHOLD`; 0 leaves CPython's defaults, and freezes nothing): in `make bench`'s
    e2e rows the longest took 3-15 ms in a gateway and 7-24 ms in an OCS, where 20,000 and the
    older generations paused them 16-87 and 44-68 ms (a slow phase of the machine: 2-3x its usual
    CPU a CCR). What start-up built is frozen at once.

    The cost: a cycle among objects that outlived a young collection is only found by a full
    collection, made when the process's live objects have grown `CELLCELLY_GC_FULL_GROWTH`-fold
    since the last one, and from at least a million blocks, at a quiet moment (or, where
    `CELLCELLY_GC_FULL_FORCE` is set and they have grown that much, at once): one pause, logged
    with what it found.

    `young=False`: no young collections at all, only that full one (the traffic generator: it is
    the network, and its pauses would be counted as the path's latency).
    """
    threshold = int(os.environ.get("CELLCELLY_GC_THRESHOLD", "2000"))
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 20, 20)
    if not young:
        gc.disable()  # gc.collect() still runs: the full collections on growth
    with _tuned:
        if _freeze_survivors not in gc.callbacks:
            gc.callbacks.append(_freeze_survivors)
        growth = float(os.environ.get("CELLCELLY_GC_FULL_GROWTH", str(DEFAULT_FULL_GROWTH)))
        if growth > 0 and os.getpid() not in _started:
            policy = FullCollections(
                growth,
                float(os.environ.get("CELLCELLY_GC_FULL_FORCE", str(DEFAULT_FULL_FORCE))),
                float(os.environ.get("CELLCELLY_GC_QUIET_CPU", str(DEFAULT_QUIET_CPU))),
            )
            every = float(os.environ.get("CELLCELLY_GC_CHECK_S", str(DEFAULT_CHECK_S)))
            thread = threading.Thread(
                target=_full_collections, args=(policy, every), name="gc-full", daemon=True
            )
            _started[os.getpid()] = thread
            thread.start()


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    # called by the collector itself: after a young collection its lists are consistent. The
    # lock, not a flag: a flag checked here could be set by the full collection's thread between
    # the check and the freeze, and freeze back what it had just unfrozen
    if phase == "stop" and info["generation"] == 0 and _full_under_way.acquire(blocking=False):
        try:
            gc.freeze()
        finally:
            _full_under_way.release()


def full_collection() -> int:
    """Everything frozen back to the collector, one full collection, frozen again: the number of
    unreachable objects it found (a reference cycle that outlived a young collection)."""
    with _full_under_way:
        started = time.perf_counter()
        gc.unfreeze()
        found = _collect_oldest()
        gc.freeze()
    log.info(
        "full garbage collection",
        extra={"took_ms": round((time.perf_counter() - started) * 1000, 1), "unreachable": found},
    )
    return found


def _collect_oldest() -> int:
    # gc.collect() returns 0 at once, collecting nothing, while another thread's collection is
    # under way (its callbacks run Python code and let the GIL go): so a full collection is
    # known by the oldest generation's count, and tried again until it has happened
    oldest = gc.get_stats()[-1]
    for _ in range(1000):  # a collection takes ms; a second of them is no longer a race
        found = gc.collect()
        now = gc.get_stats()[-1]
        if now["collections"] > oldest["collections"]:
            return max(found, int(now["collected"]) - int(oldest["collected"]))
        time.sleep(0.001)
    log.warning("no full garbage collection: another one stayed under way (called from a collection?)")
    return 0


class FullCollections:
    """When the watcher makes a full collection: `due` after each check interval."""

    def __init__(self, growth: float, force: float, quiet_cpu: float) -> None:
        self.growth, self.force, self.quiet_cpu = growth, force, quiet_cpu
        self.baseline = FULL_FLOOR_BLOCKS

    def due(self, blocks: int, cpu_share: float) -> bool:
        """`blocks` live now, `cpu_share` of a core used over the interval: collect now?"""
        if self.force > 0 and blocks >= self.force * self.baseline:
            return True
        return blocks >= self.growth * self.baseline and cpu_share < self.quiet_cpu

    def collected(self, blocks: int) -> None:
        self.baseline = max(blocks, FULL_FLOOR_BLOCKS)


def _full_collections(policy: FullCollections, every: float) -> None:
    policy.collected(sys.getallocatedblocks())
    while True:
        # the load of each interval alone (a collection's own CPU, between two, is not counted)
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(every)
        share = (time.process_time() - cpu) / max(time.monotonic() - wall, 1e-9)
        if policy.due(sys.getallocatedblocks(), share):
            full_collection()
            policy.collected(sys.getallocatedblocks())


def background_priority() -> None:
    """Run this process only on CPU time the others leave: SCHED_IDLE where the OS has it (Linux),
    else the lowest niceness. For a helper process that holds nothing the others wait for (the
    balance store's checkpointer): at niceness 0 its second of serialising took a core from
    charging (a 70 s run at 10,000 CCR/s: p99 11.5 ms, against 3.2 with SCHED_IDLE)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):  # where neither is allowed it runs as it is
            os.nice(19)


class CpuShare:
    """Spreads a background process's work thin: called often as it works, it sleeps whenever the
    process has used `step` seconds of CPU, so that it uses at most `share` of a core at any
    moment. SCHED_IDLE (`background_priority`) orders only this machine's processes: on a VM whose
    host shares its cores, a background process working flat out competes with charging all the
    same (five-minute runs at 10,000 CCR/s: the checkpointer at 40-71% of a core for seconds at a
    time late in the run, the machine then at ~190% of its 200%, docs/performance-log.md). The same
    CPU a little at a time is a small, steady share instead of a long spell of it."""

    def __init__(
        self,
        share: float,
        step: float = 0.01,
        clock: Callable[[], float] = time.process_time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"a CPU share is in (0, 1], not {share}")
        self.share, self.step = share, step
        self._clock, self._sleep = clock, sleep
        self._since = clock()
        self.slept = 0.0  # seconds, in all

    def __call__(self) -> None:
        if self.share >= 1:
            return
        used = self._clock() - self._since
        if used >= self.step:
            pause = used * (1 / self.share - 1)
            self._sleep(pause)
            self.slept += pause
            self._since = self._clock()


# sched_setattr and sched_getattr (Linux); elsewhere a slice is not asked for
_SCHED_ATTR_CALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}


class _SchedAttr(ctypes.Structure):
    """`struct sched_attr` (linux/sched/types.h), up to `sched_util_max`."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("policy", ctypes.c_uint32),
        ("flags", ctypes.c_uint64),
        ("nice", ctypes.c_int32),
        ("priority", ctypes.c_uint32),
        ("runtime", ctypes.c_uint64),  # for a SCHED_OTHER task (Linux 6.12+): its slice, in ns
        ("deadline", ctypes.c_uint64),
        ("period", ctypes.c_uint64),
        ("util_min", ctypes.c_uint32),
        ("util_max", ctypes.c_uint32),
    ]


def _sched_attr_calls() -> tuple[int, int] | None:
    """(sched_setattr, sched_getattr) here, or None."""
    return _SCHED_ATTR_CALLS.get(platform.machine()) if sys.platform.startswith("linux") else None


def slices_supported() -> bool:
    """Whether this kernel gives a SCHED_OTHER thread the slice it asks for (Linux 6.12+)."""
    version = re.match(r"(\d+)\.(\d+)", platform.release())
    return (
        _sched_attr_calls() is not None
        and version is not None
        and (int(version[1]), int(version[2])) >= (6, 12)
    )


def _sched_attr(pid: int) -> _SchedAttr | None:
    calls = _sched_attr_calls()
    attr = _SchedAttr()
    if calls is None or _libc().syscall(calls[1], pid, ctypes.byref(attr), ctypes.sizeof(attr), 0):
        return None
    return attr


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def sched_slice_ns(pid: int = 0) -> int | None:
    """The CPU slice the kernel gives `pid`'s main thread (0: this thread), in ns; None where it
    cannot be read (not Linux, or a kernel without sched_getattr)."""
    attr = _sched_attr(pid)
    return None if attr is None else int(attr.runtime)


def ask_for_slice(microseconds: int) -> bool:
    """Ask the scheduler (Linux 6.12+, EEVDF) to run this thread, and the threads and processes it
    starts after, in slices of `microseconds` (0: the kernel's default, 0.7-3 ms). True when the
    kernel now says so.

    A short slice is an early virtual deadline: when a charging process wakes with a request, the
    scheduler picks it over a task in the middle of a longer slice, instead of letting that task
    run the slice out first (1.4 ms on this 2-core machine). In `make run` that task is the SF
    child writing the record: its niceness lowers its share of the cores, not that wait. Measured
    in `docs/performance-log.md`. Called before the process starts its threads: a slice is per
    thread, and inherited.
    """
    calls, attr = _sched_attr_calls(), _sched_attr(0)
    if calls is None or attr is None:
        return False
    attr.size = ctypes.sizeof(_SchedAttr)
    attr.runtime = microseconds * 1000  # the policy and the niceness stay as they are
    if _libc().syscall(calls[0], 0, ctypes.byref(attr), 0):
        log.debug("no scheduler slice asked for", extra={"errno": ctypes.get_errno()})
        return False
    # an older kernel takes the call and ignores the runtime of a SCHED_OTHER task; 6.12+ clamps
    # it to 0.1-100 ms
    wanted = min(max(microseconds * 1000, 100_000), 100_000_000)
    return (now := sched_slice_ns()) is not None and (microseconds == 0 or now == wanted)


async def until_loop_ends(on_end: Callable[[], None]) -> AsyncGenerator[None, None]:
    """An async generator that calls `on_end` when its loop finishes: asyncio.run and uvloop.run
    close every async generator before they close the loop. Started with `anext`, it ties
    resources made on a loop (sockets) to that loop's end. Here, not beside its users: mypyc
    compiles those, and it cannot compile an async generator."""
    try:
        yield
    finally:
        on_end()
